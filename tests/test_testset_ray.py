"""`compare --dataset ... --ray`: the same work as actors on a Ray cluster, here a local one the
test starts. The same set gives the same per-clip results (timing aside) as local workers give."""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from speechport.core.conversion import open_sides
from speechport.core.proof.datasets import read_dataset
from speechport.core.proof.testset import run_testset
from speechport.core.proof.testset_clip import ClipOptions, OpenModels

from conftest import S3PRL
from support import checkpoint_path
from testset_support import assert_same, build_clip_set, kill_process_on, results, without_timing

ray = pytest.importorskip("ray", reason="the ray extra (pip install 'speechport[ray]') is part of the test extras")

SOURCE = checkpoint_path("cs_s64")
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs, started by this test; its actors can import the tests' helpers."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                       runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    folder = tmp_path_factory.mktemp("ray") / "cs_s64"
    assert main(["convert", str(SOURCE), "--out", str(folder), "--quiet"]) == 0
    return folder


def test_ray_actors_give_the_results_local_workers_give(run_cli, cluster, converted, tmp_path):
    clips = build_clip_set(tmp_path / "set")
    code, out, _ = run_cli("compare", SOURCE, converted, "--dataset", clips, "--report", tmp_path / "local",
                           "--workers", "2", "--json")
    assert code == 0
    local = json.loads(out)
    code, out, _ = run_cli("compare", SOURCE, converted, "--dataset", clips, "--report", tmp_path / "ray", "--ray",
                           "--workers", "2", "--json")
    assert code == 0
    on_ray = json.loads(out)
    assert on_ray["run"]["backend"] == "ray" and local["run"]["backend"] == "processes"
    assert on_ray["run"]["workers"] == 2 and len(on_ray["run"]["worker_peak_memory_bytes"]) == 2
    ours, theirs = results(tmp_path / "local"), results(tmp_path / "ray")
    assert set(ours) == set(theirs) and len(ours) == 10
    for key in ours:
        assert_same(without_timing(theirs[key]), without_timing(ours[key]), key)
    for name in ("verdict", "clips", "passed", "failed", "unreadable", "max_abs_diff", "models"):
        assert_same(on_ray[name], local[name], name)


def test_a_driver_elsewhere_reaches_the_cluster_by_its_address(cluster, converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    for name in ("fox_16k", "go_short_16k"):
        shutil.copy(S3PRL / f"audio/{name}.wav", clips / f"{name}.wav")
    done = subprocess.run([sys.executable, "-m", "speechport", "compare", str(SOURCE), str(converted), "--dataset",
                           str(clips), "--report", str(tmp_path / "r"), "--ray", cluster, "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["run"]["backend"] == "ray" and summary["passed"] == 2
    assert set(results(tmp_path / "r")) == {"fox_16k.wav", "go_short_16k.wav"}


def test_an_actor_that_dies_has_its_clip_given_to_another(cluster, converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    for name in ("fox_16k", "go_short_16k", "commands_44k_stereo"):
        shutil.copy(S3PRL / f"audio/{name}.wav", clips / f"{name}.wav")
    opener = functools.partial(kill_process_on, "go_short_16k.wav", tmp_path / "killed once", open_sides)
    outcome = run_testset(OpenModels(opener, str(SOURCE), str(converted)), read_dataset(clips), tmp_path / "r",
                          options=ClipOptions(), workers=1, ray=True)
    assert (tmp_path / "killed once").exists()
    assert outcome.summary["passed"] == 3 and outcome.summary["run"]["workers"] == 2  # a fresh actor took over
    assert results(tmp_path / "r")["go_short_16k.wav"]["verdict"] == "pass"


def test_without_ray_installed_the_flag_says_how_to_get_it(run_cli, converted, tmp_path, monkeypatch):
    clips = tmp_path / "set"
    clips.mkdir()
    shutil.copy(S3PRL / "audio/fox_16k.wav", clips / "fox.wav")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, out, err = run_cli("compare", SOURCE, converted, "--dataset", clips, "--report", tmp_path / "r", "--ray")
    assert code == 2 and out == ""
    assert err == ("speechport: error: running on Ray needs Ray, which is not installed here; install it with: "
                   'pip install "speechport[ray]"\n')
    assert not (tmp_path / "r").exists()


def test_a_cluster_that_cannot_be_reached_is_bad_input_with_nothing_written(run_cli, converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    shutil.copy(S3PRL / "audio/fox_16k.wav", clips / "fox.wav")
    code, out, err = run_cli("compare", SOURCE, converted, "--dataset", clips, "--report", tmp_path / "r",
                             "--ray", "127.0.0.1:9")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("speechport: error: cannot start or reach the Ray cluster at 127.0.0.1:9 (nothing answers there: ")
    assert not (tmp_path / "r").exists()
