"""The genuine fairseq2 as a witness, in an interpreter of its own.

Two kinds of tests. Those of the witness itself need it installed (`speechport witness install
fairseq2`; CI's setup installs it): its outputs equal the fixtures' reference outputs, made with the
same library, stage by stage. The hostile ones need no fairseq2: a witness that is missing, broken,
killed, hung, talking nonsense or refusing is played by small stand-in interpreters built here, and
each must end in one sentence and exit 2 with nothing written.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import threading
import venv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from speechport.core.errors import Cancelled
from speechport.core.progress import Progress
from speechport.core.witnesses import channel, environments

from conftest import CONFORMER_SHAW
from support import checkpoint_path, leftovers, load_fs2

CLIPS = ("s_speech_16k_mono", "s_short_0p3s_16k", "s_noise_8k_mono")
SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
FIXTURE_TOLERANCE = 1e-5


def reference_inputs(clip: str) -> dict[str, torch.Tensor]:
    return load_file(CONFORMER_SHAW / "refs" / "inputs" / f"{clip}.safetensors")


def reference_outputs(model: str, clip: str) -> dict[str, torch.Tensor]:
    return load_file(CONFORMER_SHAW / "refs" / f"{model}__fs2__{clip}.safetensors")


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and stderr.startswith("speechport: error: "), stderr
    assert "Traceback" not in stderr
    return stderr.removeprefix("speechport: error: ").rstrip("\n")


# -- the witness itself (installed by the setup in CI) ------------------------------------------------


@pytest.fixture(scope="session")
def fairseq2_witness():
    witness = environments.find("fairseq2")
    found = environments.health(witness) if witness is not None else None
    if found is None or not found.works:
        # CI installs it (.ci/setup), so there the genuine library's tests must run.
        assert not os.environ.get("CI"), f"CI must install the fairseq2 witness: {found.problem if found else 'absent'}"
        pytest.skip("the fairseq2 witness is not installed (speechport witness install fairseq2)")
    return witness


@pytest.fixture(scope="session")
def witness_sides(fairseq2_witness):
    from speechport.core.families.conformer_shaw.fairseq2_backend import Fairseq2WitnessSide

    sides = {model: Fairseq2WitnessSide(checkpoint_path(model)) for model in ("cs_s64", "cs_s48")}
    yield sides
    for side in sides.values():
        side.close()


@pytest.mark.parametrize("model", ["cs_s64", "cs_s48"])
@pytest.mark.parametrize("clip", CLIPS)
def test_the_witness_reproduces_the_fixtures_at_every_stage(witness_sides, model, clip):
    side = witness_sides[model]
    inputs, expected = reference_inputs(clip), reference_outputs(model, clip)
    tensors, answer = side.run_batch([inputs["waveform_16k_0"][0]])
    assert answer["fbank_seq_lens"] == inputs["fbank_seq_lens"].tolist()
    assert answer["seq_lens"] == expected["output_seq_lens"].tolist()
    layers = sum(1 for name in expected if name.startswith("layer_") and name.endswith("_output"))
    assert answer["stages"] == ["input_features", "feature_projection",
                                *(f"encoder.layers.{i}" for i in range(layers)), "output"]
    pairs = [("fbank", inputs["fbank"]), ("feature_projection", expected["frontend_output"]),
             *((f"encoder.layers.{i}", expected[f"layer_{i}_output"]) for i in range(layers)),
             ("output", expected["last_hidden_state"])]
    for stage, reference in pairs:
        assert tensors[stage].shape == reference.shape, stage
        assert float((tensors[stage] - reference).abs().max()) <= FIXTURE_TOLERANCE, stage


def test_a_padded_batch_of_two_clips_gives_each_clip_its_own_outputs(witness_sides):
    side = witness_sides["cs_s64"]
    long, short = (reference_inputs(clip)["waveform_16k_0"][0] for clip in ("s_speech_16k_mono", "s_short_0p3s_16k"))
    tensors, answer = side.run_batch([long, short])
    lengths = answer["seq_lens"]
    assert lengths == [207, 14] and tensors["output"].shape[:2] == (2, 207)
    for index, clip in enumerate(("s_speech_16k_mono", "s_short_0p3s_16k")):
        expected = reference_outputs("cs_s64", clip)["last_hidden_state"][0]
        got = tensors["output"][index, : lengths[index]]
        assert float((got - expected).abs().max()) <= FIXTURE_TOLERANCE, clip


def test_the_witness_and_the_reference_agree_on_every_fixture(witness_sides):
    from speechport.core.families.conformer_shaw.sides import ReferenceSide
    from speechport.core.proof.audio import load_clip

    for model, side in witness_sides.items():
        reference = ReferenceSide(load_fs2(model))
        for clip in CLIPS:
            path = next((CONFORMER_SHAW / "audio").glob(f"{clip}.*"))
            loaded = load_clip(path)
            ours, theirs = reference(loaded), side(loaded)
            assert [name for name, _ in ours.stages] == [name for name, _ in theirs.stages]
            assert float((ours.primary - theirs.primary).abs().max()) <= 5e-3, (model, clip)


def test_compare_with_the_witness_names_it_and_passes(fairseq2_witness, tmp_path, run_cli):
    out = tmp_path / "converted"
    assert run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--quiet")[0] == 0
    code, stdout, stderr = run_cli("compare", checkpoint_path("cs_s64"), out, "--audio", SPEECH,
                                   "--original-backend", "fairseq2", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["verdict"] == "pass"
    assert result["original_backend"] == "fairseq2 0.2.1 (torch 2.2.2, built with fairseq2 building blocks)"
    assert result["clips"][0]["max_abs_diff"] < 1e-4


def test_a_checkpoint_in_fairseq1_names_is_refused_without_seamless(fairseq2_witness, tmp_path, run_cli):
    from support import to_fairseq1

    source = tmp_path / "fairseq1.pt"
    torch.save({"model": to_fairseq1(load_fs2("cs_s64"))}, source)
    out = tmp_path / "converted"
    assert run_cli("convert", source, "--out", out, "--quiet")[0] == 0
    code, _, stderr = run_cli("compare", source, out, "--audio", SPEECH, "--original-backend", "fairseq2")
    assert code == 2
    assert "refuses it: its keys are fairseq1's names, which only seamless_communication's own key converter reads" \
        in one_line(stderr)


# -- a witness misbehaving: stand-in interpreters ------------------------------------------------------


def stand_in(home: Path, body: str) -> Path:
    """A witness folder whose interpreter is a small Python program run in the witness's place: it gets
    the same arguments (`-I`, the script, the answer pipe's descriptor) and does what `body` says."""
    folder = home / "fairseq2"
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f"#!{sys.executable}\nimport json, os, signal, sys, time\n"
                      "answers = os.fdopen(int(sys.argv[3]), 'w')\n"
                      "def say(answer):\n    answers.write(answer + '\\n')\n    answers.flush()\n"
                      + textwrap.dedent(body))
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    (folder / environments.MANIFEST).write_text(json.dumps({"name": "fairseq2", "versions": {}}))
    return folder


HELLO = "say(json.dumps({'ok': True, 'versions': {'fairseq2': '0.2.1', 'torch': '2.2.2'}}))\n"
READ = "sys.stdin.readline()\n"


@pytest.fixture
def witness_home(tmp_path, monkeypatch):
    home = tmp_path / "witnesses"
    home.mkdir()
    monkeypatch.setenv(environments.WITNESS_HOME_ENV, str(home))
    return home


@pytest.fixture(scope="module")
def converted_cs64(tmp_path_factory):
    from speechport.cli import main

    out = tmp_path_factory.mktemp("witness") / "cs_s64"
    assert main(["convert", str(checkpoint_path("cs_s64")), "--out", str(out), "--quiet"]) == 0
    return out


def compare_with_witness(run_cli, converted, tmp_path, *extra):
    saved = tmp_path / "saved"
    code, stdout, stderr = run_cli("compare", checkpoint_path("cs_s64"), converted, "--audio", SPEECH,
                                   "--original-backend", "fairseq2", "--save-outputs", saved, *extra)
    assert not saved.exists()  # nothing written
    return code, stdout, stderr


def test_a_missing_witness_says_how_to_install_it(witness_home, converted_cs64, tmp_path, run_cli):
    code, _, stderr = compare_with_witness(run_cli, converted_cs64, tmp_path)
    assert code == 2
    assert one_line(stderr) == ("the genuine fairseq2 0.2.1 is not installed as a witness (about 5.1 GB, 2 minutes); "
                                "to install it: speechport witness install fairseq2")


def test_a_broken_witness_names_what_is_missing_and_the_fix(witness_home, converted_cs64, tmp_path, run_cli):
    # A real interpreter of the witness's kind whose fairseq2 was deleted: the script starts, torch is there
    # (a stub), fairseq2 is not.
    folder = witness_home / "fairseq2"
    venv.create(folder, with_pip=False)
    site = next((folder / "lib").glob("python*/site-packages"))
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("__version__ = '2.2.2'\ndef get_num_threads():\n    return 1\n"
                                                "def set_num_threads(n):\n    pass\n")
    (folder / environments.MANIFEST).write_text("{}")
    code, _, stderr = compare_with_witness(run_cli, converted_cs64, tmp_path)
    assert code == 2
    assert one_line(stderr) == ("the fairseq2 witness is broken: ModuleNotFoundError: No module named 'fairseq2'; "
                                "to install it afresh: speechport witness install fairseq2")
    listed = environments.listing()[0]
    assert listed["installed"] and listed["works"] is False and "No module named 'fairseq2'" in listed["problem"]


def test_a_witness_killed_mid_run_is_bad_input(witness_home, converted_cs64, tmp_path, run_cli):
    stand_in(witness_home, HELLO + READ + "os.kill(os.getpid(), signal.SIGKILL)\n")
    code, _, stderr = compare_with_witness(run_cli, converted_cs64, tmp_path)
    assert code == 2
    assert one_line(stderr).startswith("the fairseq2 witness was killed by signal SIGKILL")


def test_a_hanging_witness_is_stopped_at_its_limit(witness_home, converted_cs64, tmp_path, run_cli, monkeypatch):
    pid_file = tmp_path / "witness.pid"
    stand_in(witness_home, HELLO + READ + f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n")
    from speechport.core.families.conformer_shaw import fairseq2_backend

    monkeypatch.setattr(fairseq2_backend, "LOAD_TIMEOUT_S", 0.5)
    code, _, stderr = compare_with_witness(run_cli, converted_cs64, tmp_path)
    assert code == 2
    assert one_line(stderr) == ("the fairseq2 witness did not answer within 0.5 s and was stopped; to install it "
                                "afresh: speechport witness install fairseq2")
    with pytest.raises(ProcessLookupError):  # stopped, not left sleeping
        os.kill(int(pid_file.read_text()), 0)


def test_garbage_on_the_answer_channel_is_bad_input(witness_home, converted_cs64, tmp_path, run_cli):
    stand_in(witness_home, "print('lots of words on stdout', flush=True)\nsay('Loading model...')\ntime.sleep(600)\n")
    code, _, stderr = compare_with_witness(run_cli, converted_cs64, tmp_path)
    assert code == 2
    assert one_line(stderr).startswith("the fairseq2 witness answered with something that is not an answer "
                                       "('Loading model...'), and was stopped")


def test_a_checkpoint_the_witness_refuses_is_bad_input_with_its_reason(witness_home, converted_cs64, tmp_path,
                                                                       run_cli):
    refusal = "say(json.dumps({'ok': False, 'kind': 'refused', 'message': 'torch cannot load it'}))\n"
    stand_in(witness_home, HELLO + READ + refusal + "time.sleep(600)\n")
    code, _, stderr = compare_with_witness(run_cli, converted_cs64, tmp_path, "--json")
    assert code == 2
    assert one_line(stderr) == "the genuine fairseq2 0.2.1 refuses it: torch cannot load it"


def test_cancel_kills_the_witness(witness_home):
    stand_in(witness_home, HELLO + READ + "time.sleep(600)\n")
    progress = Progress()
    process = channel.WitnessProcess(environments.required("fairseq2"), progress=progress)
    threading.Timer(0.2, progress.cancel).start()  # Cancel pressed while the witness works
    with pytest.raises(Cancelled):
        process.ask({"op": "load", "checkpoint": "x"}, timeout=600)
    assert process.process.poll() is not None  # killed, not left running
    assert not process.folder.exists()


# -- installing, listing, removing ---------------------------------------------------------------------


def test_list_says_what_is_installed_and_s3prl_in_process(witness_home, run_cli):
    code, stdout, _ = run_cli("witness", "list", "--json")
    assert code == 0
    entries = {entry["name"]: entry for entry in json.loads(stdout)["witnesses"]}
    assert entries["fairseq2"]["installed"] is False and entries["fairseq2"]["folder"] == str(witness_home / "fairseq2")
    import importlib.util

    assert entries["s3prl"]["installed"] is (importlib.util.find_spec("s3prl") is not None)


def test_an_unsupported_python_is_refused_naming_the_versions(witness_home, tmp_path, run_cli):
    python = tmp_path / "python3.12"
    python.write_text("#!/bin/sh\necho 3 12\n")
    python.chmod(0o755)
    code, _, stderr = run_cli("witness", "install", "fairseq2", "--python", python)
    assert code == 2
    assert one_line(stderr) == (f"{python} is Python 3.12; the genuine fairseq2 0.2.1 installs on Python 3.8 or 3.9 "
                                "or 3.10 or 3.11 only")
    assert list(witness_home.iterdir()) == []


def test_too_little_disk_space_is_refused_before_anything_is_made(witness_home, run_cli, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(environments.shutil, "disk_usage", lambda path: real(path)._replace(free=2 * 10**9))
    code, _, stderr = run_cli("witness", "install", "fairseq2")
    assert code == 2
    assert one_line(stderr).endswith(": 2.0 GB free, but the genuine fairseq2 0.2.1 needs about 5.6 GB (torch 2.2.2's "
                                     "wheels bring their CUDA libraries, though only the CPU is used); free some space "
                                     "or set SPEECHPORT_WITNESS_HOME to another disk")
    assert list(witness_home.iterdir()) == []


def test_a_failed_install_leaves_nothing(witness_home, run_cli, monkeypatch, tmp_path):
    empty = tmp_path / "no-packages"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    code, _, stderr = run_cli("witness", "install", "fairseq2", "--quiet")
    assert code == 2
    assert one_line(stderr).startswith("installing the packages failed (exit status 1)")
    assert leftovers(witness_home) == [] and list(witness_home.iterdir()) == []


def test_cancel_during_the_install_stops_pip_and_leaves_nothing(witness_home, monkeypatch):
    real_run = environments._run

    def slow_pip(command, progress_, what, count_packages=False):
        if "pip" not in command:
            return real_run(command, progress_, what, count_packages)
        # pip printing its first line, then working for a long time: Cancel is pressed meanwhile.
        return real_run([sys.executable, "-c", "print('Collecting torch==2.2.2', flush=True); import time; "
                         "time.sleep(600)"], progress_, what, count_packages)

    monkeypatch.setattr(environments, "_run", slow_pip)
    progress = Progress(lambda event: progress.cancel() if event.message.startswith("Collecting") else None)
    with pytest.raises(Cancelled):
        environments.install("fairseq2", progress=progress)
    assert leftovers(witness_home) == [] and list(witness_home.iterdir()) == []


def test_remove_takes_away_only_a_witness(witness_home, run_cli, tmp_path):
    stand_in(witness_home, HELLO)
    code, stdout, _ = run_cli("witness", "remove", "fairseq2", "--json")
    assert code == 0 and json.loads(stdout)["removed"] == str(witness_home / "fairseq2")
    assert not (witness_home / "fairseq2").exists()
    assert run_cli("witness", "remove", "fairseq2")[1] == "no fairseq2 witness is installed\n"
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    (witness_home / "fairseq2").symlink_to(elsewhere)
    code, _, stderr = run_cli("witness", "remove", "fairseq2")
    assert code == 2 and "is a symbolic link, not a witness Speechport installed" in one_line(stderr)
    assert (elsewhere / "keep.txt").read_text() == "mine"
