"""What an S3PRL downstream checkpoint holds and how S3PRL runs it: plain facts, shared by the recipe,
the reference implementation and the genuine S3PRL backend, so that none of the witnesses borrows
from the rules it checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._clips import CNN_NEEDS, refuse_short_clip, upstream_frames

if TYPE_CHECKING:
    from ...proof.audio import Clip

# The transformers head class for each kind of S3PRL head, after its base model's class prefix.
HEAD_CLASS_SUFFIX = {"cls": "ForSequenceClassification", "sd": "ForAudioFrameClassification", "asv": "ForXVector"}


def head_kind(architecture: str) -> str:
    """Which kind of head a transformers class is ("cls", "sd" or "asv")."""
    return next(kind for kind, suffix in HEAD_CLASS_SUFFIX.items() if architecture.endswith(suffix))


def read_modelrc(content: Mapping) -> Mapping:
    """The downstream's model settings, `Config.downstream_expert.modelrc` (empty when absent)."""
    config = content.get("Config") or {}
    return ((config.get("downstream_expert") or {}).get("modelrc")) or {}


# -- which clips a head can be compared on ------------------------------------------------------


def s3prl_frames(samples: int, conv_kernel, conv_stride) -> int:
    """The frames S3PRL keeps for one clip: Featurizer.tolist's round(samples / 320), capped at the
    frames the upstream produced (reference/s3prl.py s3prl_feature_lengths)."""
    from .reference import DOWNSAMPLE_RATE

    return min(round(samples / DOWNSAMPLE_RATE), upstream_frames(samples, conv_kernel, conv_stride))


def check_upstream_clip(clip: Clip, conv_kernel, conv_stride, kind: str) -> None:
    """Refuse a clip too short for the upstream's CNN, or for the x-vector head: its TDNN shrinks
    the sequence by 14 frames (S3PRL's ASV expert cannot process fewer than 15 frames, about 0.3 s),
    and its statistics pooling takes an unbiased standard deviation over what is left, which is
    NaN for a single frame on both sides, so 16 frames are needed (5200 samples with wav2vec2's CNN)."""
    if kind != "asv":
        refuse_short_clip(clip, lambda samples: s3prl_frames(samples, conv_kernel, conv_stride), 1, CNN_NEEDS)
        return
    from .reference import XVECTOR_FRAMES_LOST

    needed = XVECTOR_FRAMES_LOST + 2
    refuse_short_clip(clip, lambda samples: s3prl_frames(samples, conv_kernel, conv_stride), needed,
                      f"the x-vector TDNN shrinks the sequence by {XVECTOR_FRAMES_LOST} frames and its statistics "
                      f"pooling needs 2 of what is left, so it needs at least {needed}")
