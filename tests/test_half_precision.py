"""Checkpoints stored in half, double or mixed precision convert and are proven on audio: both
sides run in float32 whatever the file stores, and the result says what it stores."""

import argparse
import json

import pytest
import torch
from safetensors import safe_open

from conftest import CONFORMER_SHAW, S3PRL
from support import checkpoint_path

SPEECH = CONFORMER_SHAW / "audio/s_speech_16k_mono.wav"


def cast_copy(path, dtype_of):
    """The cs_s64 fixture checkpoint with every floating tensor cast by `dtype_of(index, key)`."""
    content = torch.load(checkpoint_path("cs_s64"), weights_only=True)
    model = {}
    for index, (key, tensor) in enumerate(content["model"].items()):
        model[key] = tensor.to(dtype_of(index, key)) if tensor.is_floating_point() else tensor
    torch.save({**content, "model": model}, path)
    return path


VARIANTS = {
    "bfloat16": (lambda i, k: torch.bfloat16, {"BF16"}, "the weights are stored as bfloat16, as the source stores them;"),
    "float16": (lambda i, k: torch.float16, {"F16"}, "the weights are stored as float16, as the source stores them;"),
    "float64": (lambda i, k: torch.float64, {"F64"}, "the weights are stored as float64, as the source stores them;"),
    "mixed fp16/fp32": (lambda i, k: torch.float16 if i % 2 else torch.float32, {"F16", "F32"},
                        "the weights are stored as float16 and float32 (mixed precision), as the source stores them;"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_conversion_of_any_precision_is_verified_and_written(run_cli, tmp_path, variant):
    dtype_of, stored, note = VARIANTS[variant]
    source = cast_copy(tmp_path / "source.pt", dtype_of)
    out = tmp_path / "converted"
    code, stdout, stderr = run_cli("convert", source, "--out", out, "--verify", SPEECH, "--json")
    assert code == 0, stderr
    verification = json.loads(stdout)["verification"]
    assert verification["verdict"] == "pass"
    clip = verification["clips"][0]
    assert clip["frames"] == 207 and clip["max_abs_diff"] < 1e-4  # float32 on both sides: no precision loss
    assert [n for n in clip["notes"] if n.startswith(note) and "both models ran in float32" in n]
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:  # stored as the source stores it
        assert {handle.get_slice(k).get_dtype() for k in handle.keys()} == stored
    report = json.loads((out / "speechport_report.json").read_text())
    assert report["verification"]["verdict"] == "pass"
    code, stdout, _ = run_cli("compare", source, out, "--audio", SPEECH, "--json")
    assert code == 0 and json.loads(stdout)["clips"][0]["max_abs_diff"] < 1e-4


def test_a_float32_checkpoint_gets_no_precision_note(run_cli, tmp_path):
    code, stdout, _ = run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "out", "--verify", SPEECH,
                              "--json")
    assert code == 0
    assert not [n for n in json.loads(stdout)["verification"]["clips"][0]["notes"] if "the weights are stored as" in n]


def test_a_half_precision_s3prl_head_is_verified(run_cli, tmp_path):
    with torch.serialization.safe_globals([argparse.Namespace]):
        content = torch.load(S3PRL / "ks/dev-best.ckpt", weights_only=True)
    content["Downstream"] = {k: v.half() if v.is_floating_point() else v for k, v in content["Downstream"].items()}
    source = tmp_path / "ks-fp16.ckpt"
    torch.save(content, source)
    code, stdout, stderr = run_cli("convert", source, "--base-model", S3PRL / "base_model", "--out", tmp_path / "out",
                                   "--verify", S3PRL / "audio/fox_16k.wav", "--json")
    assert code == 0, stderr
    clip = json.loads(stdout)["verification"]["clips"][0]
    assert clip["verdict"] == "pass" and clip["max_abs_diff"] < 1e-4
    # the head is float16, the base model's weights float32
    assert [n for n in clip["notes"] if n.startswith("the weights are stored as float16 and float32 (mixed")]
