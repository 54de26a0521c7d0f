"""Hostile inputs through the command line: the bytes written are the bytes torch and safetensors
read, or nothing is written; no input hangs; every refusal is exit 2 with one line."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_checkpoint import (
    HOSTILE_SAFETENSORS,
    pickle_naming_a_module_that_is_not_installed,
    safetensors_bytes,
    torch_load,
)

from conftest import CONFORMER_SHAW
from support import (
    CraftedStorage,
    CraftedTensor,
    checkpoint_path,
    craft_torch_zip,
    leftovers,
    load_fs2,
    recompress,
)

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"


def assert_refused(code, stdout, stderr, out, expected):
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("speechport: error: ") and expected in stderr
    assert "Traceback" not in stdout + stderr
    assert not out.exists() and leftovers(out.parent) == []


@pytest.mark.parametrize("case", list(HOSTILE_SAFETENSORS))
def test_hostile_safetensors_source_is_refused_and_nothing_is_written(tmp_path, run_cli, case):
    header, data, expected = HOSTILE_SAFETENSORS[case]
    source = tmp_path / "model.safetensors"
    source.write_bytes(safetensors_bytes(header, data))
    out = tmp_path / "out"
    assert_refused(*run_cli("convert", source, "--out", out), out, expected)


def test_storage_past_its_record_is_refused_by_convert_and_by_verify(tmp_path, run_cli):
    # A real model whose first layer-norm storage claims more floats than its record holds: with a
    # memory map the missing values would be the next record's bytes, on both sides of a comparison.
    state = load_fs2("cs_s64")
    path = tmp_path / "good.pt"
    torch.save({"model": state}, path)
    crafted = tmp_path / "crafted.pt"
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(crafted, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.endswith("/data/0"):
                data = data[:-8]  # two float32 values short
            new.writestr(info, data)
    with pytest.raises(RuntimeError):
        torch_load(crafted)
    for extra in ([], ["--verify", SPEECH]):
        out = tmp_path / "out"
        code, stdout, stderr = run_cli("convert", crafted, "--out", out, *extra)
        assert_refused(code, stdout, stderr, out, "its storage needs 640 bytes but its record good/data/0 holds 632")


def test_view_past_its_storage_is_refused_by_inspect(tmp_path, run_cli):
    path = craft_torch_zip(tmp_path / "view.pt", {"model": {"w": CraftedTensor(CraftedStorage("0", 6), 4, (2, 3), (3, 1))}},
                           {"0": np.arange(6, dtype=np.float32).tobytes()})
    code, _, stderr = run_cli("inspect", path)
    assert code == 2 and "tensor 'model.w': the view needs 40 bytes" in stderr


def test_deflated_source_converts_to_exactly_the_tensors_torch_load_reads(tmp_path, run_cli):
    source = recompress(checkpoint_path("cs_s64"), tmp_path / "deflated.pt", zipfile.ZIP_DEFLATED)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", source, "--out", out, "--json", "--verify", SPEECH)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["verification"]["verdict"] == "pass"
    expected = torch_load(source)["model"]
    written = load_file(out / "model.safetensors")
    report = json.loads((out / "speechport_report.json").read_text())
    assert report["output"]["tensors_copied_file_to_file"] == 0  # compressed bytes are never copied
    mapped = [row for row in report["plan"]["rows"] if row["status"] == "mapped"]
    assert len(mapped) == len(written) == 69
    for row in mapped:
        assert torch.equal(written[row["target_key"]], expected[row["source_key"]]), row["source_key"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_stored_dtype_is_kept_and_reported(tmp_path, run_cli, dtype):
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_fs2("cs_s64").items()}
    source = tmp_path / "model.pt"
    torch.save({"model": state}, source)
    out = tmp_path / "out"
    code, _, stderr = run_cli("convert", source, "--out", out)
    assert code == 0, stderr
    written = load_file(out / "model.safetensors")
    assert {t.dtype for t in written.values()} == {dtype}
    report = json.loads((out / "speechport_report.json").read_text())
    name = str(dtype).removeprefix("torch.")
    assert report["source"]["stored_dtypes"] == {name: 76, "int64": 1}
    assert json.loads((out / "config.json").read_text())["dtype"] == name


# -- never hang ---------------------------------------------------------------------------------------


def run_speechport(*args, timeout=120):
    """The CLI in a child process: a hang fails the test by timing out instead of hanging the suite."""
    done = subprocess.run([sys.executable, "-m", "speechport", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("role", ["checkpoint", "config", "mapping", "labels", "audio"])
def test_a_fifo_is_refused_without_opening_it(tmp_path, role):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    source = fifo if role == "checkpoint" else checkpoint_path("cs_s64")
    extra = {"checkpoint": [], "config": ["--config", fifo], "mapping": ["--mapping", fifo], "labels": ["--labels", fifo],
             "audio": ["--out", tmp_path / "out", "--verify", fifo]}[role]
    code, _, stderr = run_speechport("convert" if role == "audio" else "inspect", source, *extra, timeout=60)
    assert code == 2
    assert f"{fifo}: is a named pipe (FIFO), not a regular file" in stderr


def test_a_device_is_refused_as_a_checkpoint(tmp_path, run_cli):
    code, _, stderr = run_cli("inspect", "/dev/zero")
    assert code == 2 and "/dev/zero: is a character device, not a regular file" in stderr


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("^(a+)+$", "rules[1]: the regular expression '^(a+)+$' repeats a repetition (as (a+)+ does)"),
        ("^(a|aa)+$", "rules[1]: the regular expression '^(a|aa)+$' repeats a group that can split a key among its "
                      "repetitions in more than one way"),
    ],
    ids=["nested repetition, refused up front", "overlapping alternatives, refused up front"],
)
def test_a_catastrophically_backtracking_rule_is_refused_by_name(tmp_path, pattern, expected):
    # One key of forty 'a's and a '!': such a pattern tries about 2**40 ways to match it.
    state = load_fs2("cs_s64")
    state["a" * 40 + "!"] = torch.zeros(1)
    source = tmp_path / "model.pt"
    torch.save({"model": state}, source)
    mapping = tmp_path / "fixes.toml"
    mapping.write_text(f"[[rules]]\nmatch = 'unrelated'\ndrop = 'x'\n[[rules]]\nmatch = '{pattern}'\ndrop = 'padding'\n")
    code, _, stderr = run_speechport("inspect", source, "--mapping", mapping, timeout=60)
    assert code == 2 and stderr.count("\n") == 1
    assert expected in stderr


def test_an_invalid_rule_is_refused_naming_it(tmp_path, run_cli):
    mapping = tmp_path / "fixes.json"
    mapping.write_text(json.dumps({"rules": [{"match": "ok", "drop": "x"}, {"match": "(", "drop": "y"}]}))
    code, _, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", mapping)
    assert code == 2 and "rules[1]: invalid regular expression '('" in stderr


# -- exit codes ---------------------------------------------------------------------------------------


def test_a_global_whose_module_is_not_installed_is_a_refusal_naming_it(tmp_path, run_cli):
    source = pickle_naming_a_module_that_is_not_installed(tmp_path / "cfg.pt")
    code, stdout, stderr = run_cli("inspect", source, "--json")
    assert code == 2 and "it needs speechport_absent_module.Config" in stderr
    assert json.loads(stdout)["error"]["kind"] == "unsafe_pickle"
    # With consent the class that is not installed is a stand-in: the pickle loads, and what follows
    # is about the checkpoint's content, never the pickle.
    code, stdout, stderr = run_cli("inspect", source, "--trust-pickle", "--json")
    assert "refused to unpickle" not in stderr and "not installed" not in stderr and "--trust-pickle" not in stderr
    assert code == 0 or json.loads(stdout)["error"]["kind"] not in ("unsafe_pickle", "internal")


@pytest.mark.parametrize("size", ["abc", "0", "-5", "5XB", "nan"])
def test_bad_shard_size_is_refused_up_front(tmp_path, run_cli, size):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--max-shard-size", size, "--json")
    assert code == 2 and "argument --max-shard-size" in stderr
    assert json.loads(stdout)["error"]["kind"] == "bad_input"
    assert not out.exists()


def test_shard_size_with_a_unit_shards_the_weights(tmp_path, run_cli):
    out = tmp_path / "out"
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--max-shard-size", "0.2MB")
    assert code == 0, stderr
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1


def test_an_unexpected_error_is_exit_4_with_a_json_error(tmp_path, run_cli, monkeypatch):
    from speechport.core import conversion

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(conversion, "_build_plan", broken)
    code, stdout, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--json")
    assert code == 4
    assert stderr.strip() == ("speechport: internal error: ZeroDivisionError: a bug "
                              "(set SPEECHPORT_DEBUG=1 to see the traceback)")
    assert json.loads(stdout) == {"error": {"kind": "internal", "message": "ZeroDivisionError: a bug"}}


# -- a folder that is not this checkpoint's conversion ---------------------------------------------


def test_comparing_with_another_models_folder_is_bad_input_in_one_line(tmp_path, run_cli):
    other = tmp_path / "cs_s48-hf"
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s48"), "--out", other, "--quiet")
    assert code == 0, stderr
    code, stdout, stderr = run_cli("compare", checkpoint_path("cs_s64"), other, "--audio", SPEECH, "--json")
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith(f"speechport: error: {other}: not a conversion of "
                                                         "conformer_shaw_fs2.pt: encoder_frontend.model_dim_proj.weight [64, 160]")
    assert json.loads(stdout)["error"]["kind"] == "bad_input"


def test_comparing_a_head_with_another_heads_folder_is_bad_input(run_cli):
    from conftest import S3PRL

    code, _, stderr = run_cli("compare", S3PRL / "sid" / "dev-best.ckpt", S3PRL / "er" / "hf_converted",
                              "--base-model", S3PRL / "base_model", "--audio", S3PRL / "audio" / "fox_16k.wav")
    assert code == 2 and stderr.count("\n") == 1
    assert "not a conversion of dev-best.ckpt: Downstream.projector.weight [16, 32] would be projector.weight, " \
           "which is [12, 32] there" in stderr


def test_a_source_truncated_while_verify_reads_it_is_bad_input_not_sigbus(tmp_path):
    # The source is cut short once written, just as the original model is about to read its
    # weights: with a memory map that read is a SIGBUS that kills the process mid-write.
    source = tmp_path / "model.pt"
    source.write_bytes(checkpoint_path("cs_s64").read_bytes())
    out = tmp_path / "out"
    harness = (
        "import os, sys\n"
        "from speechport.core.families.conformer_shaw import ConformerShawRecipe\n"
        "original_side = ConformerShawRecipe.original_side\n"
        "def truncating(self, **kwargs):\n"
        f"    os.truncate({str(source)!r}, 4096)\n"
        "    return original_side(self, **kwargs)\n"
        "ConformerShawRecipe.original_side = truncating\n"
        "from speechport.cli import main\n"
        f"sys.exit(main(['convert', {str(source)!r}, '--out', {str(out)!r}, '--verify', {str(SPEECH)!r}, '--quiet']))\n"
    )
    done = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, (done.returncode, done.stderr)  # -7 would be SIGBUS
    assert "the file ended early (was it truncated or replaced while in use?)" in done.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_command_line_flags_are_named_by_the_command_line_only(tmp_path, run_cli):
    import soundfile

    from speechport.core.errors import UnsafePickle
    from speechport.core.storage.checkpoint import load_checkpoint

    source = pickle_naming_a_module_that_is_not_installed(tmp_path / "cfg.pt")
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(source)
    assert "--" not in str(refused.value)  # what the window shows
    code, _, stderr = run_cli("inspect", source)
    assert code == 2 and stderr.rstrip().endswith("; to load it anyway: --trust-pickle")
    speech, rate = soundfile.read(SPEECH, dtype="float32")
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, np.stack([np.zeros_like(speech), speech], axis=1), rate)
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "out", "--verify", stereo)
    assert code == 2 and "(mix the channels down, or use a clip whose first channel holds the sound); " \
                          "to mix them down: --channels mean" in stderr
