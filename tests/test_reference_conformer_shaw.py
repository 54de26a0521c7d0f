"""The conformer_shaw reference against outputs of the genuine fairseq2 0.2.1 model."""

import json
from functools import cache

import pytest
import torch
from safetensors.torch import load_file

from speechport.core.families.conformer_shaw.reference import (
    ConformerShawDims,
    ConformerShawReference,
    dims_from_state_dict,
)
from speechport.core.proof.fbank import FRAME_LENGTH, FRAME_SHIFT

from conftest import CONFORMER_SHAW

MANIFEST = json.loads((CONFORMER_SHAW / "MANIFEST.json").read_text())
CASES = MANIFEST["cases"]
UPSTREAM_TOLERANCE = 5e-3
BATCH_TOLERANCE = 1e-4


@cache
def load_state_dict(checkpoint_file: str) -> dict:
    return torch.load(CONFORMER_SHAW / checkpoint_file, weights_only=True)["model"]


@cache
def load_reference(model: str) -> ConformerShawReference:
    checkpoint_file = MANIFEST["models"][model]["files"]["fs2"]["file"]
    return ConformerShawReference(load_state_dict(checkpoint_file))


def load_clip_waveform(clip: str) -> torch.Tensor:
    return load_file(CONFORMER_SHAW / "refs" / "inputs" / f"{clip}.safetensors")["waveform_16k_0"][0]


def named_outputs(output) -> dict[str, torch.Tensor]:
    tensors = {"frontend_output": output.frontend_output}
    tensors.update({f"layer_{i}_output": t for i, t in enumerate(output.layer_outputs)})
    tensors["last_hidden_state"] = output.last_hidden_state
    return tensors


def worst_diffs_on_valid_frames(output, expected: dict[str, torch.Tensor]) -> dict[str, float]:
    valid = expected["output_seq_lens"].tolist()
    diffs = {}
    for name, ours in named_outputs(output).items():
        reference = expected[name]
        assert ours.shape[0] == reference.shape[0] and ours.shape[2] == reference.shape[2], name
        diffs[name] = max(
            (ours[i, :n] - reference[i, :n]).abs().max().item() for i, n in enumerate(valid)
        )
    return diffs


def assert_within(diffs: dict[str, float], tolerance: float, label: str) -> None:
    report = ", ".join(f"{name}={value:.2e}" for name, value in diffs.items())
    print(f"{label}: {report}")
    worst = max(diffs.values())
    assert worst < tolerance, f"{label}: max|diff| {worst:.3e} >= {tolerance:g} ({report})"


@pytest.mark.parametrize("case_name", sorted(CASES))
@pytest.mark.parametrize("source", ["genuine_fbank", "waveform"])
def test_reference_matches_upstream(case_name, source):
    case = CASES[case_name]
    reference = ConformerShawReference(load_state_dict(case["checkpoint_file"]))
    expected = load_file(CONFORMER_SHAW / case["file"])
    inputs = load_file(CONFORMER_SHAW / case["inputs_file"])

    if source == "genuine_fbank":
        output = reference.forward(inputs["fbank"], inputs["fbank_seq_lens"])
    else:
        output = reference([inputs["waveform_16k_0"][0]])

    assert len(output.layer_outputs) == sum(key.startswith("layer_") for key in expected)
    assert output.output_seq_lens.tolist() == expected["output_seq_lens"].tolist() == case["output_seq_lens"]
    assert output.last_hidden_state.shape == expected["last_hidden_state"].shape
    diffs = worst_diffs_on_valid_frames(output, expected)
    assert_within(diffs, UPSTREAM_TOLERANCE, f"{case_name} [{source}]")


def trimmed(waveform: torch.Tensor, frames: int) -> torch.Tensor:
    return waveform[: FRAME_LENGTH + FRAME_SHIFT * (frames - 1)]


BATCHES = {
    # 414 + 28 fbank frames: even batch length.
    "speech+short": lambda: [load_clip_waveform("s_speech_16k_mono"), load_clip_waveform("s_short_0p3s_16k")],
    # 413 + 27 frames: the odd batch drops its last frame; the short clip has an odd length.
    "odd_batch": lambda: [
        trimmed(load_clip_waveform("s_speech_16k_mono"), 413),
        trimmed(load_clip_waveform("s_short_0p3s_16k"), 27),
    ],
    # The longest clip second: its padding sits in the first row.
    "noise+speech": lambda: [load_clip_waveform("s_noise_8k_mono"), load_clip_waveform("s_speech_16k_mono")],
}


@pytest.mark.parametrize("model", sorted(MANIFEST["models"]))
@pytest.mark.parametrize("batch_name", sorted(BATCHES))
def test_padded_batch_matches_single_clips(model, batch_name):
    reference = load_reference(model)
    waveforms = BATCHES[batch_name]()

    fbank, seq_lens = reference.fbank_batch(waveforms)
    assert len(set(seq_lens.tolist())) > 1, "the batch must be ragged to exercise the padding masks"
    for row, length in enumerate(seq_lens.tolist()):
        assert torch.all(fbank[row, length:] == 1.0), "collater pads fbank frames with 1.0"

    batch = reference.forward(fbank, seq_lens)
    batch_frames = fbank.shape[1] - fbank.shape[1] % 2
    expected_lens = [min(n, batch_frames) // 2 for n in seq_lens.tolist()]
    assert batch.output_seq_lens.tolist() == expected_lens
    assert batch.last_hidden_state.shape[1] == batch_frames // 2

    diffs: dict[str, float] = {}
    for row, waveform in enumerate(waveforms):
        single = reference([waveform])
        valid = int(batch.output_seq_lens[row])
        assert int(single.output_seq_lens[0]) == valid
        for name, batched in named_outputs(batch).items():
            alone = named_outputs(single)[name]
            diff = (batched[row, :valid] - alone[0, :valid]).abs().max().item()
            diffs[name] = max(diffs.get(name, 0.0), diff)
    assert_within(diffs, BATCH_TOLERANCE, f"{model} {batch_name} batch vs single")


EXPECTED_DIMS = {
    "cs_s64": ConformerShawDims(model_dim=64, num_layers=2, num_heads=4, ffn_dim=128, kernel_size=31),
}


@pytest.mark.parametrize("model", sorted(MANIFEST["models"]))
def test_dims_from_state_dict(model):
    spec = MANIFEST["models"][model]["spec"]
    dims = dims_from_state_dict(load_state_dict(MANIFEST["models"][model]["files"]["fs2"]["file"]))
    assert dims == ConformerShawDims(
        model_dim=spec["model_dim"],
        num_layers=spec["layers"],
        num_heads=spec["heads"],
        ffn_dim=spec["ffn"],
        kernel_size=spec["kernel"],
    )
    if model in EXPECTED_DIMS:
        assert dims == EXPECTED_DIMS[model]
    sdpa = MANIFEST["models"][model]["fairseq2_config"]["encoder_config"]["shaw_rel_pos_sdpa_config"]
    assert dims.max_left_rel_pos == sdpa["max_left_rel_pos"]
    assert dims.max_right_rel_pos == sdpa["max_right_rel_pos"]


def test_dims_of_the_cs_s48_spec():
    dims = dims_from_state_dict(load_state_dict("models/cs_s48/conformer_shaw_fs2.pt"))
    shape = (dims.model_dim, dims.num_layers, dims.num_heads, dims.ffn_dim, dims.kernel_size)
    assert shape == (48, 3, 4, 96, 7)
