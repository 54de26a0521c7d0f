"""Kaldi-compatible log-mel filterbanks, as computed by fairseq2 0.2.1.

fairseq2n's ``WaveformToFbankConverter`` hands the waveform to kaldi-native-fbank
(cbalioglu fork @740f131, default ``FbankOptions``) and optionally standardizes
the result. The defaults reproduced here (kaldi-native-fbank
csrc/feature-window.h, csrc/mel-computations.h):

* 16 kHz, 25 ms frames (400 samples), 10 ms shift (160), ``snip_edges`` on,
  so ``num_frames = 1 + (num_samples - 400) // 160``;
* per frame: DC offset removal, pre-emphasis 0.97, povey window, zero padding
  to 512 (``round_to_power_of_two``), power spectrum;
* 80 triangular mel bins between 20 Hz and Nyquist (HTK mel scale), applied to
  FFT bins 0..255 (the Nyquist bin is left out);
* ``log(max(energy, FLT_EPSILON))``; no dither, no energy coefficient.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

SAMPLE_RATE = 16_000
FRAME_LENGTH = 400  # 25 ms at 16 kHz
FRAME_SHIFT = 160  # 10 ms at 16 kHz
FFT_SIZE = 512  # frame length rounded up to a power of two
MEL_LOW_FREQ = 20.0  # MelBanksOptions.low_freq; high_freq 0 means Nyquist

# Kaldi stores these options as C floats; use the same float32 values.
PREEMPH_COEFF = float(np.float32(0.97))
LOG_FLOOR = float(np.finfo(np.float32).eps)  # std::numeric_limits<float>::epsilon()

# Frames processed at once: bounds the intermediate (frames, 512) buffers.
FRAMES_PER_BLOCK = 4096


def num_frames(num_samples: int) -> int:
    """Number of frames Kaldi extracts with ``snip_edges`` (0 when shorter than a frame)."""
    if num_samples < FRAME_LENGTH:
        return 0
    return 1 + (num_samples - FRAME_LENGTH) // FRAME_SHIFT


@cache
def _povey_window() -> torch.Tensor:
    # feature-window.cc: pow(0.5 - 0.5 cos(2 pi i / (N - 1)), 0.85) in double,
    # stored as float.
    i = np.arange(FRAME_LENGTH, dtype=np.float64)
    window = np.power(0.5 - 0.5 * np.cos(2.0 * np.pi * i / (FRAME_LENGTH - 1)), 0.85)
    return torch.from_numpy(window.astype(np.float32).astype(np.float64))


@cache
def _mel_filterbank(num_mel_bins: int) -> torch.Tensor:
    """(FFT_SIZE // 2, num_mel_bins) float64 weights, following
    MelBanks::InitKaldiMelBanks, which works in single precision."""
    f32 = np.float32

    def mel_scale(freq):
        return f32(1127.0) * np.log(f32(1.0) + np.asarray(freq, dtype=f32) / f32(700.0))

    num_fft_bins = FFT_SIZE // 2
    fft_bin_width = f32(SAMPLE_RATE) / f32(FFT_SIZE)
    mel_low = mel_scale(f32(MEL_LOW_FREQ))
    mel_high = mel_scale(f32(0.5) * f32(SAMPLE_RATE))
    mel_delta = (mel_high - mel_low) / f32(num_mel_bins + 1)

    fft_mels = mel_scale(fft_bin_width * np.arange(num_fft_bins, dtype=f32))

    weights = np.zeros((num_fft_bins, num_mel_bins), dtype=np.float32)
    for bin_index in range(num_mel_bins):
        left = mel_low + f32(bin_index) * mel_delta
        center = mel_low + f32(bin_index + 1) * mel_delta
        right = mel_low + f32(bin_index + 2) * mel_delta
        inside = (fft_mels > left) & (fft_mels < right)
        rising = (fft_mels - left) / (center - left)
        falling = (right - fft_mels) / (right - center)
        weights[:, bin_index] = np.where(inside, np.where(fft_mels <= center, rising, falling), f32(0.0))
    return torch.from_numpy(weights.astype(np.float64))


def _log_mel_of_frames(frames: torch.Tensor, num_mel_bins: int) -> torch.Tensor:
    """(F, 400) float64 raw frames -> (F, num_mel_bins) float64 log mel energies."""
    frames = frames - frames.mean(dim=1, keepdim=True)

    # Pre-emphasis with Kaldi's edge rule: the first sample is scaled by (1 - coeff).
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - PREEMPH_COEFF * previous

    frames = frames * _povey_window()

    spectrum = torch.fft.rfft(frames, n=FFT_SIZE, dim=1)
    power = spectrum.real.square() + spectrum.imag.square()

    mel_energies = power[:, : FFT_SIZE // 2] @ _mel_filterbank(num_mel_bins)
    return mel_energies.clamp_min(LOG_FLOOR).log()


def kaldi_fbank(
    waveform: torch.Tensor, num_mel_bins: int = 80, waveform_scale: float = 2**15
) -> torch.Tensor:
    """Log-mel filterbanks of a 1-D 16 kHz waveform. Returns (frames, num_mel_bins) float32."""
    if waveform.dim() != 1:
        raise ValueError(f"Expected a 1-D waveform, got shape {tuple(waveform.shape)}.")

    # fairseq2n scales the float32 waveform before handing it to Kaldi.
    samples = waveform.detach().to("cpu", torch.float32) * waveform_scale

    total = num_frames(samples.numel())
    output = torch.empty((total, num_mel_bins), dtype=torch.float32)
    if total == 0:
        return output

    # (total, 400) view over the samples; no copy until a block is processed.
    all_frames = samples.unfold(0, FRAME_LENGTH, FRAME_SHIFT)
    for start in range(0, total, FRAMES_PER_BLOCK):
        stop = min(start + FRAMES_PER_BLOCK, total)
        block = all_frames[start:stop].to(torch.float64)
        output[start:stop] = _log_mel_of_frames(block, num_mel_bins).to(torch.float32)
    return output


def standardize(fbank: torch.Tensor) -> torch.Tensor:
    """Per mel bin over time: (x - mean) / std, unbiased std and no epsilon.

    Matches ``at::std_mean(fbank, 0)`` in fairseq2n waveform_to_fbank_converter.cc
    (v0.2.1); a single frame therefore yields NaN, as upstream.
    """
    values = fbank.to(torch.float64)
    std, mean = torch.std_mean(values, dim=0, correction=1)
    return ((values - mean) / std).to(fbank.dtype)


def fairseq2_fbank(waveform: torch.Tensor) -> torch.Tensor:
    """``WaveformToFbankConverter(num_mel_bins=80, waveform_scale=2**15, standardize=True)``
    on a 1-D float32 16 kHz waveform in [-1, 1). Returns (frames, 80) float32."""
    if waveform.dim() == 1 and waveform.numel() < FRAME_LENGTH:
        raise ValueError(
            f"The waveform has {waveform.numel()} samples; at least {FRAME_LENGTH} "
            f"(25 ms at 16 kHz) are needed for one fbank frame."
        )
    return standardize(kaldi_fbank(waveform))
