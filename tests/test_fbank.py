"""The Kaldi / fairseq2 fbank front end against fbanks produced by fairseq2n 0.2.1."""

import pytest
import torch
from safetensors.torch import load_file

from speechport.core.proof.fbank import fairseq2_fbank, kaldi_fbank, num_frames, standardize

from conftest import CONFORMER_SHAW

INPUT_FILES = sorted((CONFORMER_SHAW / "refs" / "inputs").glob("*.safetensors"))
FBANK_TOLERANCE = 5e-3


def test_reference_inputs_are_present():
    assert INPUT_FILES, "no refs/inputs/*.safetensors fixtures found"


@pytest.mark.parametrize("path", INPUT_FILES, ids=lambda p: p.stem)
def test_fairseq2_fbank_matches_upstream(path):
    inputs = load_file(path)
    expected = inputs["fbank"][0]
    ours = fairseq2_fbank(inputs["waveform_16k_0"][0])

    assert ours.dtype == torch.float32
    assert ours.shape == expected.shape
    assert ours.shape[0] == int(inputs["fbank_seq_lens"][0])
    worst = (ours - expected).abs().max().item()
    print(f"{path.stem}: max|fbank diff| = {worst:.3e}")
    assert worst < FBANK_TOLERANCE, f"{path.stem}: max|fbank diff| = {worst:.3e}"


@pytest.mark.parametrize(
    ("num_samples", "frames"),
    [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16_000, 98), (66_584, 414)],
)
def test_frame_count_follows_snip_edges(num_samples, frames):
    assert num_frames(num_samples) == frames
    assert kaldi_fbank(torch.zeros(num_samples)).shape == (frames, 80)


def test_clip_shorter_than_one_frame_is_rejected():
    with pytest.raises(ValueError, match="400"):
        fairseq2_fbank(torch.zeros(399))
    assert fairseq2_fbank(torch.rand(400 + 160) - 0.5).shape == (2, 80)


def test_kaldi_fbank_floors_silence_at_float_epsilon():
    silent = kaldi_fbank(torch.zeros(1000))
    floor = torch.log(torch.tensor(torch.finfo(torch.float32).eps))
    torch.testing.assert_close(silent, floor.expand_as(silent))


def test_long_input_is_processed_in_blocks_consistently():
    waveform = (torch.rand(16_000 * 45, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.2
    whole = kaldi_fbank(waveform)
    head = kaldi_fbank(waveform[: 400 + 160 * 99])
    assert whole.shape == (num_frames(waveform.numel()), 80)
    torch.testing.assert_close(whole[:100], head, rtol=0, atol=1e-6)


def test_standardize_is_unbiased_per_bin_without_epsilon():
    fbank = torch.randn(57, 80, generator=torch.Generator().manual_seed(1)) * 3 + 5
    values = fbank.double()
    expected = (values - values.mean(0)) / values.std(0, correction=1)
    torch.testing.assert_close(standardize(fbank), expected.float(), rtol=0, atol=1e-6)
    biased = (values - values.mean(0)) / values.std(0, correction=0)
    assert (standardize(fbank) - biased.float()).abs().max() > 1e-3
