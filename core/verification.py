"""Running the original and the converted model on the same clips and comparing them.

The original side is Speechport's own implementation of the source architecture fed with the
source checkpoint (or the upstream library itself, where installed); the converted side is the
output folder loaded with `from_pretrained` and its own saved preprocessor, as users will load it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .audio import DEFAULT_MAX_SECONDS, Clip, load_clip
from .checkpoint import Checkpoint, load_checkpoint
from .comparison import DEFAULT_TOLERANCE, Comparison, SideOutput, compare_outputs
from .errors import BadInput
from .progress import Progress, ensure
from .recipes import detect
from .recipes.base import Detection

Side = Callable[[Clip], SideOutput]


@dataclass
class Sides:
    detection: Detection
    original: Side
    converted: Side
    original_name: str
    converted_name: str
    notes: tuple[str, ...] = ()  # said of every clip, e.g. differences the conversion accepted


def open_sides(
    source: str | Path | Checkpoint,
    converted_dir: str | Path,
    *,
    base_model: str | Path | None = None,
    backend: str = "reference",
    trust_pickle: bool = False,
    detection: Detection | None = None,
    progress: Progress | None = None,
) -> Sides:
    progress = ensure(progress)
    progress.stage("loading the original model")
    checkpoint = source if isinstance(source, Checkpoint) else load_checkpoint(source, trust_pickle=trust_pickle)
    detection = detection or detect(checkpoint)
    recipe = detection.recipe
    base = Path(base_model).expanduser().absolute() if base_model else None
    if recipe.needs_base_model and base is None:
        raise BadInput(f"{checkpoint.path}: comparing a {recipe.name} checkpoint needs the upstream model: --base-model DIR")
    recipe.check_backend(backend)
    folder = check_converted_folder(converted_dir, recipe)  # refuse a wrong folder before loading anything
    original = recipe.original_side(checkpoint, detection.layout, base_model=base, backend=backend)
    progress.check()
    progress.stage("loading the converted model")
    try:
        with _quiet_loading():
            converted = recipe.converted_side(folder, base_model=base)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{folder}: transformers cannot load the converted model ({reason})") from None
    return Sides(detection, original, converted, getattr(original, "name", backend), str(folder),
                 accepted_differences(folder))


@contextlib.contextmanager
def _quiet_loading():
    """transformers draws a "Loading weights" bar on stderr for large models; our own progress
    (the CLI's stage lines, the window's bar) already says what is happening."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def accepted_differences(folder: Path) -> tuple[str, ...]:
    """What the conversion left out on purpose though the target could not reproduce it, from
    the folder's Speechport report (absent for folders converted by other tools)."""
    report = folder / "speechport_report.json"
    if not report.is_file():
        return ()
    try:
        rows = json.loads(report.read_text())["plan"]["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    return accepted_differences_in(rows)


def accepted_differences_in(rows) -> tuple[str, ...]:
    """Plan rows (dicts) the user dropped although the target cannot reproduce them, one note per reason."""
    from .plan import collapse_indices

    keys_by_reason: dict[str, list[str]] = {}
    for row in rows:
        if row.get("status") == "dropped" and "accepted difference" in (row.get("reason") or ""):
            keys_by_reason.setdefault(row["reason"], []).append(row["source_key"])
    return tuple(
        f"the conversion deliberately leaves out {', '.join(collapse_indices(keys))}: {reason}"
        for reason, keys in keys_by_reason.items()
    )


def check_converted_folder(folder: str | Path, recipe) -> Path:
    """A transformers folder of the class this recipe converts to, with its weights present."""
    folder = Path(folder).expanduser().absolute()
    config_file = folder / "config.json"
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such converted model folder")
    if not config_file.is_file():
        raise BadInput(f"{folder}: not a transformers model folder (no config.json)")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{config_file}: unreadable config ({exc})") from None
    expected = recipe.converted_architectures()
    found = config.get("architectures") or [config.get("model_type")]
    if not set(found) & set(expected):
        raise BadInput(
            f"{folder}: holds a {', '.join(map(str, found))} model; a {recipe.name} conversion is one of "
            f"{', '.join(expected)}"
        )
    weights = [folder / "model.safetensors", folder / "model.safetensors.index.json"]
    if not any(w.is_file() for w in weights):
        raise BadInput(f"{folder}: the weight file is missing (no model.safetensors or model.safetensors.index.json)")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        absent = sorted(s for s in shards if not (folder / s).is_file())
        if absent:
            raise BadInput(f"{folder}: weight shard(s) missing: {', '.join(absent)}")
    return folder


def compare_clips(
    sides: Sides,
    audio: Sequence[str | Path | Clip],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    channels: str = "first",
    max_seconds: float = DEFAULT_MAX_SECONDS,
    save_outputs: str | Path | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Read every clip first (bad audio fails before any model runs), then compare clip by clip."""
    progress = ensure(progress)
    if not audio:
        raise BadInput("no audio clip given: pass --audio CLIP")
    clips = [a if isinstance(a, Clip) else load_clip(a, channels=channels, max_seconds=max_seconds) for a in audio]
    save_dir = Path(save_outputs) if save_outputs else None
    if save_dir is not None and save_dir.exists() and not save_dir.is_dir():
        raise BadInput(f"{save_dir}: --save-outputs must be a folder")
    results = []
    for index, clip in enumerate(clips):
        progress.stage(f"comparing {clip.path.name} ({index + 1}/{len(clips)})", items_total=2)
        progress.check()
        original = sides.original(clip)
        progress.advance(items=1)
        progress.check()
        converted = sides.converted(clip)
        progress.advance(items=1)
        result = compare_outputs(str(clip.path), original, converted, tolerance)
        notes, details = sides.detection.recipe.explain(original, converted)
        result.notes += [*sides.notes, *notes]
        result.details.update(details)
        result.frame_seconds = sides.detection.recipe.frame_seconds
        results.append(result)
        if save_dir is not None:
            _save_outputs(save_dir, clip, results[-1])
    progress.finish()
    return Comparison(tolerance, results)


def _save_outputs(folder: Path, clip: Clip, result) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    frames = result.frames
    original = result.original.primary.detach().float()
    converted = result.converted.primary.detach().float()
    if original.dim() > 1:
        original, converted = original[:frames], converted[:frames]
    save_file(
        {"original": original.contiguous(), "converted": converted.contiguous()},
        folder / f"{clip.path.stem}.safetensors",
        metadata={"audio": str(clip.path), "verdict": result.verdict},
    )
