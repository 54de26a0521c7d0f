"""The `speechport inspect|convert|demo` contract: exit codes, one-line reasons, nothing left behind."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_checkpoint import RunsCode

from conftest import CONFORMER_SHAW
from support import checkpoint_path, config_path, leftovers, load_fs2, sha256


def save_variant(tmp_path, change) -> Path:
    state = load_fs2("cs_s64")
    change(state)
    path = tmp_path / "variant.pt"
    torch.save({"model": state}, path)
    return path


def rename_key(state):
    state["encoder.layers.1.self_attn.query.weight"] = state.pop("encoder.layers.1.self_attn.q_proj.weight")


def wrong_shape(state):
    state["encoder.layers.1.ffn2.inner_proj.weight"] = torch.zeros(127, 64)


def contradicting_config(tmp_path) -> Path:
    config = json.loads(config_path("cs_s64").read_text())
    config["num_attention_heads"] = 8
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


BAD_SOURCES = {
    "empty file": (lambda tmp: _write(tmp / "empty.pt", b""), "empty (0 bytes)"),
    "truncated checkpoint": (lambda tmp: _write(tmp / "cut.pt", checkpoint_path("cs_s64").read_bytes()[:400_000]), "truncated"),
    "wav renamed .pt": (lambda tmp: _copy(CONFORMER_SHAW / "audio/s_speech_16k_mono.wav", tmp / "audio.pt"), "WAV audio file"),
    "pickle that runs code": (
        lambda tmp: _save(tmp / "evil.pt", {"model": load_fs2("cs_s64"), "x": RunsCode(tmp / "code-ran")}),
        "refused to unpickle: it needs posix.system",
    ),
}


def _write(path, data):
    path.write_bytes(data)
    return path


def _copy(source, path):
    shutil.copy(source, path)
    return path


def _save(path, obj):
    torch.save(obj, path)
    return path


def assert_nothing_written(tmp_path, out):
    assert not out.exists()
    assert leftovers(out.parent) == []


@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_bad_source_files_exit_2_with_one_line(tmp_path, run_cli, case):
    make, expected = BAD_SOURCES[case]
    source = make(tmp_path)
    before = sha256(source)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", source, "--out", out)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("speechport: error: ") and expected in stderr
    assert "Traceback" not in stderr + stdout
    assert_nothing_written(tmp_path, out)
    assert sha256(source) == before
    assert not (tmp_path / "code-ran").exists()


@pytest.mark.parametrize(
    "change, expected",
    [
        (rename_key, ["unmapped source: encoder.layers.1.self_attn.query.weight",
                      "missing target: encoder.layers.1.self_attn.linear_q.weight"]),
        (wrong_shape, ["shape mismatch: encoder.layers.1.ffn2.inner_proj.weight -> "
                       "encoder.layers.1.ffn2.intermediate_dense.weight: checkpoint [127, 64] vs model [128, 64]"]),
    ],
    ids=["one key renamed", "one tensor of the wrong shape"],
)
def test_plan_problems_exit_3_and_name_every_problem(tmp_path, run_cli, change, expected):
    source = save_variant(tmp_path, change)
    before = sha256(source)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", source, "--out", out)
    assert code == 3
    for line in expected:
        assert line in stderr
    assert stderr.strip().splitlines()[-1].startswith("speechport: error: the mapping plan has")
    assert "Traceback" not in stderr
    assert_nothing_written(tmp_path, out)
    assert sha256(source) == before
    code, stdout, _ = run_cli("inspect", source, "--json")
    assert code == 3
    report = json.loads(stdout)
    problems = report["plan"]["problems"]
    assert report["ok"] is False and all(any(p.startswith(line) for p in problems) for line in expected)


def test_config_that_contradicts_the_checkpoint_is_a_plan_problem(tmp_path, run_cli):
    out = tmp_path / "out"
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--config", contradicting_config(tmp_path))
    assert code == 3
    assert "config conflict: config num_attention_heads=8" in stderr
    assert "checkpoint [73, 16] vs model [73, 8]" in stderr  # the distance embeddings show it too
    assert_nothing_written(tmp_path, out)


def test_config_of_another_model_type_is_bad_input(tmp_path, run_cli):
    config = tmp_path / "bert.json"
    config.write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "out", "--config", config)
    assert code == 2 and "model_type 'bert'" in stderr and stderr.count("\n") == 1


def unwritable_location(tmp_path) -> Path:
    if os.geteuid() == 0:  # permission bits do not stop root; sysfs refuses new folders to anyone
        return Path("/sys/speechport-test/out")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return locked / "out"


@pytest.mark.parametrize("kind", ["path is a file", "non-empty folder without --force", "unwritable location"])
def test_unusable_output_paths_exit_2_and_touch_nothing(tmp_path, run_cli, kind):
    if kind == "path is a file":
        out = tmp_path / "out"
        out.write_text("precious")
        expected = "is an existing file"
    elif kind == "non-empty folder without --force":
        out = tmp_path / "out"
        out.mkdir()
        (out / "precious.txt").write_text("keep me")
        expected = "exists and is not empty"
    else:
        out = unwritable_location(tmp_path)
        expected = "not writable"
    before = {p.name: p.read_bytes() for p in out.iterdir()} if out.is_dir() else None
    code, stdout, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out)
    assert code == 2 and stderr.count("\n") == 1 and expected in stderr, stderr
    if kind == "path is a file":
        assert out.read_text() == "precious"
    elif before is not None:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    else:
        assert not out.exists()


def test_inspect_reports_recipe_inferred_config_and_ready_plan(run_cli):
    code, stdout, _ = run_cli("inspect", checkpoint_path("cs_s48"), "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["recipe"] == "conformer_shaw" and report["layout"] == "fairseq2" and report["ok"]
    assert report["config"]["origin"] == "inferred"
    assert report["config"]["inferred"]["num_hidden_layers"].startswith("3:")
    assert report["config"]["inferred"]["conv_depthwise_kernel_size"].startswith("7:")
    assert report["plan"]["counts"]["mapped"] == 101 and report["plan"]["counts"]["dropped"] == 8
    code, stdout, _ = run_cli("inspect", checkpoint_path("cs_s48"))
    assert code == 0 and "no problems: ready to convert" in stdout and "hidden_size = 48" in stdout


def test_convert_json_and_mapping_file_fix(tmp_path, run_cli):
    source = save_variant(tmp_path, rename_key)
    fixes = tmp_path / "fixes.toml"
    fixes.write_text('[rename]\n"encoder.layers.1.self_attn.query.weight" = "encoder.layers.1.self_attn.linear_q.weight"\n')
    code, stdout, _ = run_cli("convert", source, "--out", tmp_path / "out", "--mapping", fixes, "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["plan"]["mapped"] == 69 and summary["files"] == ["model.safetensors"]
    report = json.loads((tmp_path / "out" / "speechport_report.json").read_text())
    assert report["mapping_file"] == str(fixes)
    row = next(r for r in report["plan"]["rows"] if r["source_key"] == "encoder.layers.1.self_attn.query.weight")
    assert row["rule"] == "mapping file: rename" and row["status"] == "mapped"


def test_demo_converts_and_reloads(run_cli, tmp_path):
    code, stdout, _ = run_cli("demo", "--out", tmp_path / "demo", "--json")
    assert code == 0
    outcome = json.loads(stdout)
    assert outcome["ok"] and outcome["loading_info"] == {k: [] for k in outcome["loading_info"]}
    assert (tmp_path / "demo" / "model.safetensors").exists()


def test_console_script_and_module_entry_points():
    console_script = str(Path(sys.executable).parent / "speechport")
    for command in ([console_script, "--help"], [sys.executable, "-m", "speechport", "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "inspect" in done.stdout and "convert" in done.stdout
        # --help must not pay for torch: the heavy imports wait for a command
    probe = subprocess.run([sys.executable, "-c", "import sys; from speechport.cli import build_parser; "
                            "build_parser(); print('torch' in sys.modules)"], capture_output=True, text=True)
    assert probe.stdout.strip() == "False"


def test_a_reader_that_stops_reading_ends_the_command_quietly_with_141():
    """`speechport inspect ... | head -1`: once the pipe closes, exit as SIGPIPE would, saying nothing."""
    import fcntl
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: the output is far larger than the pipe
    os.close(read_end)  # the reader is gone before a byte is written
    process = subprocess.run([sys.executable, "-m", "speechport", "inspect", str(checkpoint_path("cs_s64")),
                              "--rows", "--json"], stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    os.close(write_end)
    assert process.returncode == 141 and process.stderr == b""
