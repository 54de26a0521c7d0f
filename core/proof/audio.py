"""Reading clips: any rate, any channel count in; 16 kHz mono float32 out, with clear refusals.

Both sides of a comparison receive exactly this signal, so the resampler's choice cannot make them
differ. soundfile (libsndfile) reads WAV, FLAC, Ogg/Vorbis/Opus and MP3; soxr resamples with its
high-quality preset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..heavy_work import heavy
from ..storage.files import regular_file

MODEL_RATE = 16_000
MIN_SAMPLES = 400  # one 25 ms fbank window at 16 kHz: shorter clips give no frame at all
# The attention of both models grows with the square of the clip length (about 0.6 GB of attention
# scores per layer for 60 s at 16 heads), so comparisons are limited; callers may raise the limit.
DEFAULT_MAX_SECONDS = 120.0
CHANNEL_POLICIES = ("first", "mean")
# libsndfile reports 2**63 - 1 frames when a header does not state the length; no real clip comes near.
UNKNOWN_FRAMES = 2**62
BLOCK_FRAMES = 1 << 16  # frames decoded at once when the length is unknown


@dataclass(frozen=True)
class Clip:
    path: Path
    waveform: np.ndarray  # float32, mono, MODEL_RATE, in [-1, 1)
    source_rate: int
    source_channels: int
    channel_policy: str
    start: float = 0.0  # seconds into the file where `waveform` begins (a segment of a longer clip)
    whole: bool = True  # the waveform is the whole file, not a segment of it

    @property
    def seconds(self) -> float:
        return len(self.waveform) / MODEL_RATE

    @property
    def segment(self) -> tuple[float, float] | None:
        """(start, end) in seconds of the file when the clip is a segment of it."""
        return None if self.whole else (self.start, self.start + self.seconds)


@heavy("reading a clip")
def load_clip(
    path: str | Path,
    *,
    channels: str = "first",
    max_seconds: float = DEFAULT_MAX_SECONDS,
    start: float = 0.0,
    duration: float | None = None,
) -> Clip:
    """Read a clip (or the segment `start` + `duration` seconds of it) to compare models on: pick or
    mix its channels, resample to 16 kHz.

    `channels="first"` keeps channel 0, as fairseq2's fbank converter and transformers' conversion
    script do; `"mean"` mixes all channels down (as S3PRL's sox-based loading does). What is
    compared is limited to `max_seconds`. A clip that cannot show anything about a model is refused
    here, before any model runs: NaN or infinite samples, digital silence, a constant signal, a
    first channel that is silent while another is not.
    """
    check_max_seconds(max_seconds)
    start, duration = _check_segment(start, duration)
    data, rate, known_seconds, whole = _read(path, channels, start, duration, limit=max_seconds)
    path = Path(path)
    if len(data) / rate > max_seconds:
        if known_seconds is not None:
            rest = known_seconds - start
            length = f"{_seconds(rest if duration is None else min(duration, rest), lambda shown: shown > max_seconds)} s long"
        else:
            length = f"longer than {max_seconds:g} s (its header does not state its length)"
        subject = "the clip" if start == 0 and duration is None else "the segment"
        raise BadInput(
            f"{path}: {subject} is {length}; a comparison covers at most "
            f"{max_seconds:g} s, because attention memory grows with the square of the length",
            hint=f"choose a segment of at most {max_seconds:g} s to compare",
            cli_hint="--start S --duration S, or raise --max-seconds",
        )
    return _clip(path, data, rate, channels, start, whole)


@heavy("reading a recording")
def load_recording(path: str | Path, *, channels: str = "first") -> Clip:
    """The whole clip, however long, at 16 kHz: to draw and to play, and to choose a segment of."""
    data, rate, _, _ = _read(path, channels, 0.0, None, limit=None)
    path = Path(path)
    _check_finite(path, data, channels)
    mono = data[:, 0] if channels == "first" else data.mean(axis=1, dtype=np.float32)
    return Clip(path, np.ascontiguousarray(resample(mono, rate), dtype=np.float32), rate, data.shape[1], channels)


def _check_segment(start: float, duration: float | None) -> tuple[float, float | None]:
    if not isinstance(start, (int, float)) or not math.isfinite(start) or start < 0:
        raise BadInput(f"a segment must start at a finite number of seconds, 0 or more (not {start!r})")
    if duration is not None and (not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration <= 0):
        raise BadInput(f"a segment must last a finite number of seconds above 0 (not {duration!r})")
    return float(start), (float(duration) if duration is not None else None)


def _read(path: str | Path, channels: str, start: float, duration: float | None,
          limit: float | None) -> tuple[np.ndarray, int, float | None, bool]:
    """(frames, channels) float32 of the segment, the file's rate, the file's length in seconds
    (None when its header does not say), whether the segment is the whole file. Decodes at most
    `limit` seconds past the start plus one frame, so a clip too long is known without reading it all."""
    import soundfile

    path = Path(path)
    if channels not in CHANNEL_POLICIES:
        raise BadInput(f"unknown channel policy {channels!r}; use one of {', '.join(CHANNEL_POLICIES)}")
    regular_file(path, "audio file")  # a FIFO or a device would block soundfile forever
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadInput(f"{path}: not an audio file soundfile can read ({_reason(exc)})") from None
    if info.samplerate <= 0:
        raise BadInput(f"{path}: the clip states no sample rate")
    if info.frames <= 0:
        raise BadInput(f"{path}: the clip is empty (no audio samples)")
    rate = info.samplerate
    length_known = info.frames < UNKNOWN_FRAMES
    # In frames, never past UNKNOWN_FRAMES: `--start 1e308` is a start past the end, not an overflow.
    # The first frame is the one the start falls in, so a start before the clip's end is inside it.
    first = math.floor(min(start * rate, UNKNOWN_FRAMES))
    wanted = round(min(duration * rate, UNKNOWN_FRAMES)) if duration is not None else None
    if limit is not None:
        cap = math.floor(min(limit * rate, UNKNOWN_FRAMES)) + 1  # one frame more than allowed: enough to know it is too long
        wanted = cap if wanted is None else min(wanted, cap)
    if length_known and first >= info.frames:
        length = _seconds(info.frames / rate, lambda shown: shown <= start)
        raise BadInput(f"{path}: the segment starts at {seconds_as_given(start)} s, but the clip is {length} s long")
    try:
        if length_known:
            stop = info.frames if wanted is None else min(info.frames, first + wanted)
            data, _ = soundfile.read(str(path), start=first, stop=stop, dtype="float32", always_2d=True)
        else:
            # The header does not state the length (a streamed FLAC has 0 total samples; libsndfile then
            # reports 2**63 - 1 frames): decode block by block from the start and stop once past the end.
            data, _ = _read_until(path, first + wanted if wanted is not None else None)
            data = data[first:]
            if len(data) == 0:
                raise BadInput(f"{path}: the segment starts at {seconds_as_given(start)} s, past the end of the clip")
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadInput(f"{path}: the audio cannot be decoded ({_reason(exc)})") from None
    if len(data) == 0:
        raise BadInput(f"{path}: the clip is empty (no audio samples)")
    whole = first == 0 and (length_known and len(data) == info.frames)
    return data, rate, (info.frames / rate if length_known else None), whole


def _clip(path: Path, data: np.ndarray, rate: int, channels: str, start: float, whole: bool) -> Clip:
    _check_finite(path, data, channels)
    mono = data[:, 0] if channels == "first" else data.mean(axis=1, dtype=np.float32)
    waveform = resample(mono, rate)
    if len(waveform) < MIN_SAMPLES:
        raise BadInput(
            f"{path}: the clip is too short ({len(waveform) / MODEL_RATE * 1000:.1f} ms at 16 kHz); "
            f"it needs at least {MIN_SAMPLES} samples ({MIN_SAMPLES / MODEL_RATE * 1000:.0f} ms) for one feature frame"
        )
    _check_sound(path, data, mono, channels)
    return Clip(path, np.ascontiguousarray(waveform, dtype=np.float32), rate, data.shape[1], channels, start, whole)


def _seconds(value: float, keeps: Callable[[float], bool]) -> str:
    """`value` seconds with as few decimals (at least one) as keep the statement `keeps` makes of
    the number shown true: a clip 4.16 s long is not "4.2 s long" in a message about a start at
    4.1615 s, nor is a clip 120.04 s long "120.0 s long" beside a limit of 120 s."""
    for digits in range(1, 7):
        text = f"{value:.{digits}f}"
        if keeps(float(text)):
            return text
    return repr(value)


def seconds_as_given(value: float) -> str:
    """A number of seconds as given (`6`, `4.1615`, `1e+308`), never rounded."""
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def check_max_seconds(max_seconds: float) -> float:
    """The length limit must be a finite number of seconds above zero (NaN would disable it)."""
    if not isinstance(max_seconds, (int, float)) or not math.isfinite(max_seconds) or max_seconds <= 0:
        raise BadInput(f"the clip length limit must be a finite number of seconds above 0 (not {max_seconds!r})")
    return float(max_seconds)


def _check_finite(path: Path, data: np.ndarray, channels: str) -> None:
    """`data` is (frames, channels) float32; a float WAV can hold NaN or infinity."""
    used = data[:, :1] if channels == "first" else data
    bad = ~np.isfinite(used)
    if bad.any():
        raise BadInput(f"{path}: {int(bad.any(axis=1).sum())} of {len(used)} samples are NaN or infinite; "
                       "a clip must hold finite samples")


def _check_sound(path: Path, data: np.ndarray, mono: np.ndarray, channels: str) -> None:
    """Refuse a clip without sound to compare on: silence, a constant, a silent first channel."""
    silent = ~data.any(axis=0)  # per channel: every sample is 0
    if channels == "first" and silent[0] and not silent.all():
        other = int(np.flatnonzero(~silent)[0]) + 1
        raise BadInput(
            f"{path}: the first channel (channel 1 of {data.shape[1]}) is digital silence while channel {other} "
            "is not, and only the first channel would be compared",
            hint="mix the channels down, or use a clip whose first channel holds the sound",
            cli_hint="to mix them down: --channels mean",
        )
    if silent.all():
        raise BadInput(f"{path}: the clip is digital silence (every sample is 0): it cannot show whether two models agree")
    if (mono == mono[0]).all():
        raise BadInput(f"{path}: the clip is one constant value ({float(mono[0]):g}) throughout: there is no sound "
                       "to compare the models on")


def _read_until(path: Path, limit: int | None) -> tuple[np.ndarray, int]:
    """(frames, channels) float32, decoded block by block; stops after `limit` frames (None: the end)."""
    import soundfile

    with soundfile.SoundFile(str(path)) as sound:
        blocks, total = [], 0
        while limit is None or total < limit:
            block = _read_block(sound, BLOCK_FRAMES if limit is None else min(BLOCK_FRAMES, limit - total))
            if len(block) == 0:
                break
            blocks.append(block)
            total += len(block)
        data = np.concatenate(blocks) if blocks else np.zeros((0, sound.channels), dtype=np.float32)
        return data, sound.samplerate


def _read_block(sound, frames: int) -> np.ndarray:
    # SoundFile.read seeks to where it stopped after every read, and libsndfile cannot seek to the end
    # of a FLAC whose length is unknown; its own sf_readf_float reads on without seeking.
    import soundfile

    snd, ffi = getattr(soundfile, "_snd", None), getattr(soundfile, "_ffi", None)
    if snd is None or ffi is None:
        return sound.read(frames, dtype="float32", always_2d=True)
    buffer = np.empty((frames, sound.channels), dtype=np.float32)
    got = snd.sf_readf_float(sound._file, ffi.cast("float *", buffer.ctypes.data), frames)
    error = snd.sf_error(sound._file)
    if error:
        raise soundfile.LibsndfileError(error)
    return buffer[: max(int(got), 0)]


def resample(waveform: np.ndarray, rate: int) -> np.ndarray:
    if rate == MODEL_RATE:
        return waveform
    import soxr

    return soxr.resample(waveform, rate, MODEL_RATE, quality="HQ").astype(np.float32, copy=False)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:160] if text else type(exc).__name__
