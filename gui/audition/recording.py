"""Reading the clip to audition, on a worker: checked as a comparison checks it, its waveform
prepared for drawing at any zoom and its samples for playing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...core.errors import BadInput


@dataclass(frozen=True)
class Recording:
    """A clip read to audition: drawn, played, and compared whole or in part."""

    clip: Any  # core.audio.Clip: the whole file as the models receive it, 16 kHz mono float32
    comparable: bool  # checked as a comparison checks a clip: it can be compared whole as it is
    peaks: Any  # waveform_peaks.Peaks: to draw it at any zoom
    pcm: bytes  # its 16-bit samples: to play it


def load_recording_job(path: str, *, channels: str, max_seconds: float) -> Recording:
    """Read a clip whatever its length. One that a comparison may cover whole is read and checked as
    `compare` reads it (bad audio is refused now); a longer one is read whole to draw and play, and
    the part of it chosen to compare is checked when it is compared."""
    from ...core.proof.audio import MODEL_RATE, load_clip, load_recording
    from .audio_player import to_pcm16
    from .waveform_peaks import Peaks

    try:
        clip, comparable = load_clip(path, channels=channels, max_seconds=max_seconds), True
    except BadInput:
        clip, comparable = load_recording(path, channels=channels), False
        if clip.seconds <= max_seconds:
            raise  # not refused for its length: that refusal stands
    return Recording(clip, comparable, Peaks.of(clip.waveform, MODEL_RATE), to_pcm16(clip.waveform))
