"""Which clips a model of the wav2vec 2.0 family can be compared on: the frames its convolutions give
for a clip, and the refusal of a clip too short for them. Shared by the upstream recipes and the
S3PRL heads, and free of any renaming rule, so the witnesses may use it too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BadInput
from ..proof.audio import MODEL_RATE

if TYPE_CHECKING:
    from ..proof.audio import Clip


CNN_NEEDS = "the upstream's convolutions need at least one output frame"


def upstream_frames(samples: int, conv_kernel, conv_stride) -> int:
    """Frames the wav2vec2-style CNN gives for `samples` (no padding: (L - kernel) // stride + 1 per layer)."""
    length = samples
    for kernel, stride in zip(conv_kernel, conv_stride):
        if length < kernel:
            return 0
        length = (length - kernel) // stride + 1
    return length


def refuse_short_clip(clip: Clip, frames_of, needed: int, why: str) -> None:
    """Refuse (BadInput) a clip whose `frames_of(samples)` is under `needed`, saying `why` and how many
    samples the shortest clip that works has."""
    samples = len(clip.waveform)
    frames = frames_of(samples)
    if frames >= needed:
        return
    shortest = samples + 1
    while frames_of(shortest) < needed:
        shortest += 1
    raise BadInput(
        f"{clip.path}: the clip is too short for this model: {samples} samples ({samples / MODEL_RATE * 1000:.1f} ms "
        f"at 16 kHz) give {frames} upstream frame{'s' if frames != 1 else ''}, and {why}; the clip needs at least "
        f"{shortest} samples ({shortest / MODEL_RATE * 1000:.0f} ms)"
    )
