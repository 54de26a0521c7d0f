"""Reading clips: any rate, any channel count in; 16 kHz mono float32 out, with clear refusals.

Both sides of a comparison receive exactly this signal, so the resampler's choice cannot make them
differ. soundfile (libsndfile) reads WAV, FLAC, Ogg/Vorbis/Opus and MP3; soxr resamples with its
high-quality preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BadInput

MODEL_RATE = 16_000
MIN_SAMPLES = 400  # one 25 ms fbank window at 16 kHz: shorter clips give no frame at all
# The attention of both models grows with the square of the clip length (about 0.6 GB of attention
# scores per layer for 60 s at 16 heads), so comparisons are limited; callers may raise the limit.
DEFAULT_MAX_SECONDS = 120.0
CHANNEL_POLICIES = ("first", "mean")


@dataclass(frozen=True)
class Clip:
    path: Path
    waveform: np.ndarray  # float32, mono, MODEL_RATE, in [-1, 1)
    source_rate: int
    source_channels: int
    channel_policy: str

    @property
    def seconds(self) -> float:
        return len(self.waveform) / MODEL_RATE


def load_clip(path: str | Path, *, channels: str = "first", max_seconds: float = DEFAULT_MAX_SECONDS) -> Clip:
    """Read a clip, pick or mix its channels, resample to 16 kHz.

    `channels="first"` keeps channel 0, as fairseq2's fbank converter and transformers' conversion
    script do; `"mean"` mixes all channels down (as S3PRL's sox-based loading does).
    """
    import soundfile

    path = Path(path)
    if channels not in CHANNEL_POLICIES:
        raise BadInput(f"unknown channel policy {channels!r}; use one of {', '.join(CHANNEL_POLICIES)}")
    if not path.exists():
        raise BadInput(f"{path}: no such audio file")
    if path.is_dir():
        raise BadInput(f"{path}: is a folder, not an audio file")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadInput(f"{path}: not an audio file soundfile can read ({_reason(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise BadInput(f"{path}: the clip is empty (no audio samples)")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise BadInput(
            f"{path}: the clip is {seconds:.1f} s long; comparisons are limited to {max_seconds:.0f} s "
            "because attention memory grows with the square of the length",
            hint="trim the clip, or raise the limit (--max-seconds)",
        )
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadInput(f"{path}: the audio cannot be decoded ({_reason(exc)})") from None
    mono = data[:, 0] if channels == "first" else data.mean(axis=1, dtype=np.float32)
    waveform = resample(mono, rate)
    if len(waveform) < MIN_SAMPLES:
        raise BadInput(
            f"{path}: the clip is too short ({len(waveform) / MODEL_RATE * 1000:.1f} ms at 16 kHz); "
            f"it needs at least {MIN_SAMPLES} samples ({MIN_SAMPLES / MODEL_RATE * 1000:.0f} ms) for one feature frame"
        )
    return Clip(path, np.ascontiguousarray(waveform, dtype=np.float32), rate, data.shape[1], channels)


def resample(waveform: np.ndarray, rate: int) -> np.ndarray:
    if rate == MODEL_RATE:
        return waveform
    import soxr

    return soxr.resample(waveform, rate, MODEL_RATE, quality="HQ").astype(np.float32, copy=False)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:160] if text else type(exc).__name__
