"""Numbers that say whether two models agree on a clip, and where they start to disagree."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import BadInput
from ..storage.strict_json import plain

if TYPE_CHECKING:  # torch is imported where a comparison runs: a conversion needs none of it
    import torch

DEFAULT_TOLERANCE = 5e-3  # transformers' conversion script: assert_close(atol=rtol=5e-3)
NMSE_FLOOR_DB = -300.0  # reported for identical outputs, where the ratio is zero
INPUT_FEATURES = "input_features"  # the stage of what the encoder receives, before any weight
TRANSCRIPT = "transcript"  # a side's SideOutput.extras key for what a speech recognition model hears


def check_tolerance(tolerance: float) -> float:
    """A verdict needs a finite tolerance above zero (NaN would pass or fail everything)."""
    if not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) or tolerance <= 0:
        raise BadInput(f"the tolerance must be a finite number above 0 (not {tolerance!r})")
    return float(tolerance)


@dataclass(frozen=True)
class IllConditionedInput:
    """Parts of a model's input in which two correct implementations may differ far more than the
    tolerance, for this clip only (e.g. mel bins that per-bin standardization divides by almost
    zero). Said by the recipe before any model runs; the comparison then tells whether they decided
    the verdict."""

    stage: str  # the stage holding those inputs (INPUT_FEATURES)
    columns: tuple[int, ...]  # the affected columns of that stage's (frames, features) tensor
    summary: str  # what is ill-conditioned and how: "mel bins 10-15 (of 80) are nearly constant over the clip (...)"
    consequence: str  # why that matters: "so fairseq2's per-bin standardization magnifies rounding differences"
    details: dict = field(default_factory=dict)  # JSON-ready numbers
    name_columns: Callable[[list[int]], str] = str  # columns in words: "mel bins 12-15 (of 80)"


@dataclass
class SideOutput:
    """One model's result on one clip: valid frames only, no batch dimension."""

    primary: torch.Tensor  # what is compared: (frames, dim), or (classes,) for one label per clip
    stages: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # in order, to locate divergence
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)  # recipe-specific detail for people (labels, notes)


@dataclass
class ClipComparison:
    audio: str
    verdict: str  # "pass" or "fail"
    max_abs_diff: float
    mean_abs_diff: float
    nmse_db: float
    cosine_min: float
    cosine_mean: float
    frames: int
    first_divergent_layer: str | None
    seconds_original: float
    seconds_converted: float
    stage_max_abs_diff: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # recipe-specific, JSON-ready (labels, embeddings' agreement)
    frame_seconds: float = 0.02  # time between output frames, to align per-frame values with the audio
    cosine_per_frame: list[float] = field(default_factory=list)
    original: SideOutput | None = None
    converted: SideOutput | None = None
    # Why this clip, not the conversion, decided a failed verdict (ill-conditioned input); None otherwise.
    bad_input: str | None = None
    segment: tuple[float, float] | None = None  # (start, end) seconds of the file, when a segment was compared
    # What each model hears, for speech recognition (CTC) models: their greedy transcripts, and the
    # character error rate of the converted one against the original's (None for other models).
    transcript_original: str | None = None
    transcript_converted: str | None = None
    character_error_rate: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready: non-finite numbers (an incomparable or NaN result) become None."""
        return plain({
            "audio": self.audio,
            "segment": list(self.segment) if self.segment else None,
            "verdict": self.verdict,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "nmse_db": self.nmse_db,
            "cosine_min": self.cosine_min,
            "cosine_mean": self.cosine_mean,
            "frames": self.frames,
            "first_divergent_layer": self.first_divergent_layer,
            "seconds_original": round(self.seconds_original, 4),
            "seconds_converted": round(self.seconds_converted, 4),
            "stage_max_abs_diff": self.stage_max_abs_diff,
            "notes": self.notes,
            **({"bad_input": self.bad_input} if self.bad_input else {}),
            **({"transcript_original": self.transcript_original, "transcript_converted": self.transcript_converted,
                "character_error_rate": self.character_error_rate} if self.transcript_original is not None else {}),
            **({"details": self.details} if self.details else {}),
        })


@dataclass
class Comparison:
    tolerance: float
    clips: list[ClipComparison]
    # {"source", "target"} rows the original side read under the names the user's fixes gave:
    # proven only through those fixes (see core.original_weights).
    fixes_used: list[dict[str, str]] = field(default_factory=list)
    # What ran the original: "reference", or what the genuine library says of itself
    # ("fairseq2 0.2.1 (torch 2.2.2, built with fairseq2 building blocks)").
    original_backend: str = "reference"

    @property
    def verdict(self) -> str:
        return "pass" if self.clips and all(c.verdict == "pass" for c in self.clips) else "fail"

    def to_dict(self) -> dict:
        return plain({"verdict": self.verdict, "tolerance": self.tolerance, "fixes_used": self.fixes_used,
                      "clips": [c.to_dict() for c in self.clips]})


def compare_outputs(audio: str, original: SideOutput, converted: SideOutput, tolerance: float = DEFAULT_TOLERANCE) -> ClipComparison:
    """Metrics over the original's valid frames; the verdict is max |diff| <= tolerance. Sides
    that transcribe (a "transcript" in their extras) have their transcripts compared too."""
    result = _compare_outputs(audio, original, converted, tolerance)
    ours, theirs = original.extras.get(TRANSCRIPT), converted.extras.get(TRANSCRIPT)
    if ours is not None and theirs is not None:
        from .transcripts import character_error_rate

        result.transcript_original, result.transcript_converted = ours, theirs
        result.character_error_rate = character_error_rate(ours, theirs)
    return result


def _compare_outputs(audio: str, original: SideOutput, converted: SideOutput, tolerance: float) -> ClipComparison:
    import torch

    notes: list[str] = []
    reference = _frames(original.primary)
    candidate = _frames(converted.primary)
    frames = reference.shape[0]
    if candidate.shape[0] < frames or candidate.shape[1:] != reference.shape[1:]:
        notes.append(
            f"the converted model gives {list(candidate.shape)} where the original gives {list(reference.shape)}"
        )
        return ClipComparison(
            audio, "fail", math.inf, math.inf, 0.0, -1.0, -1.0, min(frames, candidate.shape[0]),
            _first_divergent(original, converted, tolerance) or "output", original.seconds, converted.seconds,
            notes=notes, original=original, converted=converted,
        )
    candidate = candidate[:frames]
    diff = (candidate.double() - reference.double())
    max_abs = float(diff.abs().max()) if diff.numel() else 0.0
    mean_abs = float(diff.abs().mean()) if diff.numel() else 0.0
    energy = float(reference.double().pow(2).sum())
    error = float(diff.pow(2).sum())
    nmse_db = NMSE_FLOOR_DB if error == 0.0 else 10.0 * math.log10(error / max(energy, 1e-300))
    cosine = torch.nn.functional.cosine_similarity(candidate.double(), reference.double(), dim=-1, eps=1e-12)
    stage_diffs = _stage_diffs(original, converted)
    passed = max_abs <= tolerance
    divergent = None if passed else (_first_divergent(original, converted, tolerance) or "output")
    return ClipComparison(
        audio=audio,
        verdict="pass" if passed else "fail",
        max_abs_diff=max_abs,
        mean_abs_diff=mean_abs,
        nmse_db=max(nmse_db, NMSE_FLOOR_DB),
        cosine_min=float(cosine.min()),
        cosine_mean=float(cosine.mean()),
        frames=frames,
        first_divergent_layer=divergent,
        seconds_original=original.seconds,
        seconds_converted=converted.seconds,
        stage_max_abs_diff=stage_diffs,
        notes=notes,
        cosine_per_frame=[float(c) for c in cosine],
        original=original,
        converted=converted,
    )


def _frames(tensor: torch.Tensor) -> torch.Tensor:
    """Everything as (frames, features): one label vector per clip counts as one frame."""
    tensor = tensor.detach().float()
    return tensor.reshape(1, -1) if tensor.dim() == 1 else tensor.reshape(tensor.shape[0], -1)


def _stage_diffs(original: SideOutput, converted: SideOutput) -> dict[str, float]:
    theirs = dict(converted.stages)
    diffs = {}
    for name, ours in original.stages:
        other = theirs.get(name)
        if other is None:
            continue
        a, b = _frames(ours), _frames(other)
        frames = min(a.shape[0], b.shape[0])
        if a.shape[1:] != b.shape[1:]:
            diffs[name] = math.inf
        else:
            diffs[name] = float((a[:frames] - b[:frames]).abs().max()) if frames else 0.0
    return diffs


def _first_divergent(original: SideOutput, converted: SideOutput, tolerance: float) -> str | None:
    for name, diff in _stage_diffs(original, converted).items():
        if not diff <= tolerance:  # NaN diverges too
            return name
    return None
