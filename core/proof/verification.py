"""Running the original and the converted model on the same clips and comparing them.

The original side is Speechport's own implementation of the source architecture fed with the
source checkpoint (or the upstream library itself, where installed); the converted side is the
output folder loaded with `from_pretrained` and its own saved preprocessor, as users will load it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import BadInput, Cancelled, quoted
from ..heavy_work import heavy
from ..planning.mapping_file import Overrides
from ..planning.plan import MAX_NAMED, Plan, TargetTensor, refuse_non_floating_weights
from ..planning.recipe import Detection, Recipe, SourceTensor
from ..progress import Progress, ensure
from ..storage import strict_json
from ..storage.checkpoint import StoredTensor, load_checkpoint
from ..storage.safetensors_file import weight_files
from .audio import DEFAULT_MAX_SECONDS, Clip, check_max_seconds, load_clip
from .comparison import (
    DEFAULT_TOLERANCE,
    ClipComparison,
    Comparison,
    IllConditionedInput,
    SideOutput,
    check_tolerance,
    compare_outputs,
)
from .original_weights import resolve_original_weights
from .record import WeightsDigest
from .report import REPORT_NAME, read_report

Side = Callable[[Clip], SideOutput]


@dataclass
class Sides:
    recipe: Recipe  # the family's conversion of the compared checkpoint
    original: Side
    converted: Side
    original_name: str
    converted_name: str
    notes: tuple[str, ...] = ()  # said of every clip, e.g. differences the conversion accepted
    fixes_used: list[dict[str, str]] = field(default_factory=list)  # rows the original took on trust
    # The checkpoint's tensors both models use, by their names in the file: searched for NaN and
    # infinite values when an output is not finite (empty: every tensor of the checkpoint).
    weights: dict[str, StoredTensor] = field(default_factory=dict)
    # The converted folder's weights, hashed from before they were loaded, for recording what was
    # compared (core.proof.record); None when the folder has no report to record in.
    weights_digest: WeightsDigest | None = None

    @property
    def detection(self) -> Detection:
        return self.recipe.detection


@heavy("loading both models of a comparison")
def open_recipe_sides(
    recipe: Recipe,
    converted_dir: str | Path,
    *,
    backend: str = "reference",
    fixes: Overrides | None = None,
    progress: Progress | None = None,
) -> Sides:
    """The original model of an opened checkpoint (`recipe`) and the converted folder, ready to run on
    clips; `core.conversion.open_sides` opens the checkpoint and calls this.

    The original reads the checkpoint under its own names; where the conversion needed the user's
    fixes (`fixes`, by default the ones the folder's report records), it follows them only for
    the parameters it cannot name itself (`core.original_weights`), listed as `fixes_used`.
    """
    progress = ensure(progress)
    recipe.check_backend(backend)
    folder = check_converted_folder(converted_dir, recipe)  # refuse a wrong folder before loading anything
    # Hashed while the models load, watched from before anything reads them: the digest is of the
    # weights transformers loads (core.proof.record); only for a folder with a report to record in.
    digest = WeightsDigest(folder) if os.path.lexists(folder / REPORT_NAME) else None
    try:
        pairing = check_pairing(recipe, folder, fixes)
        sides = _open_sides(recipe, folder, pairing, backend, progress)
    except BaseException:
        if digest is not None:
            digest.cancel()
        raise
    sides.weights_digest = digest
    return sides


def _open_sides(recipe: Recipe, folder: Path, pairing: Pairing, backend: str, progress: Progress) -> Sides:
    checkpoint = recipe.checkpoint
    original_weights = resolve_original_weights(recipe, pairing.plan.rows, pairing.tensors, pairing.config)
    original = recipe.original_side(backend=backend, weights=original_weights.weights)
    progress.check()
    progress.stage("loading the converted model")
    try:
        with _quiet_loading():
            converted = recipe.converted_side(folder)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{folder}: transformers cannot load the converted model ({reason})") from None
    model = getattr(converted, "model", None)
    if isinstance(model, torch.nn.Module):  # what each parameter is, as transformers loaded it
        targets = {key: TargetTensor(tuple(value.shape), str(value.dtype).removeprefix("torch."))
                   for key, value in model.state_dict().items()}
        refuse_non_floating_weights(pairing.plan.rows, targets, str(checkpoint.path))
    return Sides(recipe, original, converted, getattr(original, "name", backend), str(folder),
                 accepted_differences(folder), original_weights.fixes_used, mapped_weights(pairing.plan, pairing.tensors))


def mapped_weights(plan: Plan, tensors: dict[str, SourceTensor]) -> dict[str, StoredTensor]:
    """The checkpoint's tensors the plan copies into the converted model, by their names in the file."""
    return {row.source_key: tensors[row.source_key].tensor for row in plan.mapped() if row.source_key in tensors}


def refuse_non_finite_weights(sides: Sides) -> None:
    """When an output is NaN or infinite: refuse (BadInput) naming the checkpoint's tensors that
    hold such values, if any. Neither model can then give a number to compare, and the fault is
    the weights', not the clip's. Only searched when an output is not finite: the search reads
    every tensor, which a passing comparison never needs."""
    weights = sides.weights or {key: source.tensor for key, source in sides.recipe.source_tensors().items()}
    found = []
    for key, tensor in weights.items():
        if not tensor.is_floating_point():
            continue
        values = tensor.to_torch()
        if values.element_size() == 1:  # float8: torch.isfinite is not implemented for it
            values = values.float()
        bad = int((~torch.isfinite(values)).sum())
        if bad:
            found.append(f"{key} ({bad} of {values.numel()} values)")
    if found:
        listed = ", ".join(found[:MAX_NAMED]) + (f" and {len(found) - MAX_NAMED} more tensors" if len(found) > MAX_NAMED else "")
        raise BadInput(f"{sides.recipe.checkpoint.path}: the checkpoint's weights hold NaN or infinite values, in "
                       f"{listed}: neither model can give a number to compare, on any clip; use a checkpoint whose "
                       "weights are finite")


@contextlib.contextmanager
def _quiet_loading():
    """transformers draws a "Loading weights" bar and prints its load report and warnings on
    stderr; our own progress (the CLI's stage lines, the window's bar) already says what happens,
    and what is wrong with a folder is said once, as an error (`check_pairing` refuses a folder
    that is not this checkpoint's conversion before transformers sees it)."""
    import warnings

    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


def accepted_differences(folder: Path) -> tuple[str, ...]:
    """What the conversion left out on purpose though the target could not reproduce it, from
    the folder's Speechport report (absent for folders converted by other tools)."""
    report = read_report(folder)
    try:
        rows = report["plan"]["rows"] if report is not None else []
        return accepted_differences_in(rows)
    except (KeyError, TypeError, AttributeError):
        return ()


def accepted_differences_in(rows) -> tuple[str, ...]:
    """Plan rows (dicts) the user dropped although the target cannot reproduce them, one note per reason."""
    from ..planning.plan import collapse_indices

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
        config = strict_json.loads(config_file.read_text(encoding="utf-8"), str(config_file), "the config")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{config_file}: unreadable config ({exc})") from None
    if not isinstance(config, dict):
        raise BadInput(f"{config_file}: not a transformers config (a JSON object)")
    expected = recipe.converted_architectures()
    found = config.get("architectures") or [config.get("model_type")]
    if not isinstance(found, list) or not all(isinstance(name, str) for name in found):
        raise BadInput(f"{config_file}: its architectures are not a list of class names")
    # transformers loads the first class the folder names: that one must be this conversion's.
    if found[0] not in expected:
        shown = ", ".join(expected[:4]) + (f" and {len(expected) - 4} more" if len(expected) > 4 else "")
        raise BadInput(f"{folder}: its config names {quoted(found[0])} as its model class, which no {recipe.name} "
                       f"conversion makes (one of {shown})")
    weight_files(folder)
    return folder


@heavy("running both models on clips")
def compare_clips(
    sides: Sides,
    audio: Sequence[str | Path | Clip],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    channels: str = "first",
    max_seconds: float = DEFAULT_MAX_SECONDS,
    start: float = 0.0,
    duration: float | None = None,
    save_outputs: str | Path | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Read and check every clip first (bad audio fails before any model runs), then compare clip
    by clip (or the segment `start` + `duration` seconds of each clip given as a path).

    A clip whose input is ill-conditioned for the model (the recipe's `check_clip` says where) and
    that fails is also run through the converted model on the original's own input: if the models
    then agree, the clip decided the verdict, not the conversion, and it is refused (BadInput)
    unless another clip failed for a reason of its own. Files written for `save_outputs` are
    listed on an interruption (`written` on the KeyboardInterrupt, or the Cancelled message).
    """
    progress = ensure(progress)
    check_tolerance(tolerance)
    check_max_seconds(max_seconds)
    if not audio:
        raise BadInput("no audio clip given", cli_hint="--audio CLIP")
    clips = [a if isinstance(a, Clip) else load_clip(a, channels=channels, max_seconds=max_seconds, start=start,
                                                     duration=duration) for a in audio]
    recipe = sides.recipe
    config = getattr(sides.converted, "config", None)
    caveats = [recipe.check_clip(clip, config) for clip in clips]
    save_dir = Path(save_outputs) if save_outputs else None
    if save_dir is not None and save_dir.exists() and not save_dir.is_dir():
        raise BadInput(f"{save_dir}: is a file; the compared outputs are saved into a folder", cli_hint="--save-outputs DIR")
    names = output_names(clips)
    results: list[ClipComparison] = []
    written: list[Path] = []
    weights_searched = False
    try:
        for index, (clip, caveat) in enumerate(zip(clips, caveats)):
            steps = side_steps(sides.original) + side_steps(sides.converted)
            progress.stage(f"comparing {clip.path.name} ({index + 1}/{len(clips)})", items_total=steps)
            original = run_side(sides.original, clip, progress)
            converted = run_side(sides.converted, clip, progress)
            if not (_finite(original.primary) and _finite(converted.primary)) and not weights_searched:
                weights_searched = True
                try:
                    refuse_non_finite_weights(sides)
                except BadInput as refusal:
                    raise BadInput(f"{refusal} ({describe_written(written)})" if written else str(refusal)) from None
            result = compare_outputs(str(clip.path), original, converted, tolerance)
            notes, details = recipe.explain(original, converted)
            result.notes += [*sides.notes, *getattr(sides.converted, "notes", ()), *notes]
            result.details.update(details)
            result.frame_seconds = recipe.frame_seconds
            result.segment = clip.segment
            if not _finite(original.primary):
                # Not the conversion's doing: the original itself gives no number to compare with.
                result.bad_input = (f"{clip.path}: the original model itself outputs NaN or infinite values on this "
                                    "clip, so it cannot show whether the conversion is right")
            elif caveat is not None:
                progress.check()
                _judge_ill_conditioned(result, caveat, sides.converted, tolerance)
            results.append(result)
            if save_dir is not None:
                written.append(_save_outputs(save_dir / f"{names[index]}.safetensors", clip, result))
    except KeyboardInterrupt as interrupt:
        if written:
            interrupt.written = tuple(written)  # for the message that says what is left behind
        raise
    except Cancelled:
        if written:
            raise Cancelled(f"cancelled; {describe_written(written)}") from None
        raise
    progress.finish()
    decided = [r for r in results if r.bad_input]
    if decided and all(r.verdict == "pass" or r.bad_input for r in results):
        refusal = "; ".join(r.bad_input for r in decided)
        if written:
            refusal += f" ({describe_written(written)})"
        raise BadInput(refusal, hint="compare on a clip with varied sound, such as speech")
    return Comparison(tolerance, results, list(sides.fixes_used), sides.original_name)


def _finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor).all())


def _judge_ill_conditioned(result: ClipComparison, caveat: IllConditionedInput, converted, tolerance: float) -> None:
    """Say whether the clip's ill-conditioned input, or the conversion, decided the verdict.

    A failing clip is run again through the converted model on the original's own input (identical
    input): if that passes, and the inputs agree outside the ill-conditioned columns, the input
    decided it (`result.bad_input`); if it still fails, the conversion is wrong, and the first stage
    that diverges on identical input is named.
    """
    stage = caveat.stage
    ours = dict(result.original.stages).get(stage) if result.original else None
    theirs = dict(result.converted.stages).get(stage) if result.converted else None
    inside, outside, beyond = _column_diffs(ours, theirs, caveat.columns, tolerance)
    said = f"{caveat.summary}, {caveat.consequence}"
    found = {**caveat.details, "stage": stage, "max_abs_diff_there": inside, "max_abs_diff_elsewhere": outside}
    result.details["ill_conditioned_input"] = found
    if result.verdict == "pass":
        there = f": the two models' {stage} differ by up to {inside:.3g} there" if inside is not None else ""
        result.notes.append(f"{said}{there}; the verdict holds regardless")
        return
    rerun = getattr(converted, "run_features", None)
    if ours is None or rerun is None:
        result.notes.append(f"{said}; whether that decided the verdict cannot be told, as the original side does "
                            f"not report its {stage}")
        return
    same = compare_outputs(result.audio, result.original, rerun(ours), tolerance)
    found["same_input"] = {"verdict": same.verdict, "max_abs_diff": same.max_abs_diff,
                           "first_divergent_layer": same.first_divergent_layer}
    if same.verdict != "pass":
        result.first_divergent_layer = same.first_divergent_layer or "output"
        result.notes.append(
            f"{said}; so the converted model was also run on the original's own {stage}, and it still diverges "
            f"(max |diff| {same.max_abs_diff:.3g}), first at {result.first_divergent_layer}: the conversion is wrong")
        return
    result.first_divergent_layer = stage
    if outside is not None and outside > tolerance:
        result.notes.append(
            f"on the original's own {stage} the converted model agrees (max |diff| {same.max_abs_diff:.3g}), but "
            f"the {stage} differ by {outside:.3g} beyond the ill-conditioned part too: the converted feature "
            "extractor (preprocessor_config.json) does not compute what the original does")
        return
    where = f", beyond the tolerance in {caveat.name_columns(beyond)}," if beyond else ""
    result.bad_input = (
        f"{result.audio}: this clip cannot show whether the conversion is right: {said}; the original's and the "
        f"converted model's {stage} differ by up to {inside:.3g} there{where} before any weight is used, while on "
        f"identical {stage} the converted model agrees with the original (max |diff| {same.max_abs_diff:.2g} <= "
        f"{tolerance:g})")
    result.notes.append(f"decided by the clip, not the conversion: {said}; on identical {stage} the models "
                        f"agree (max |diff| {same.max_abs_diff:.2g})")


def _column_diffs(ours, theirs, columns: tuple[int, ...], tolerance: float):
    """Largest |diff| of two (frames, features) stages inside `columns` and outside them, and the
    columns where it exceeds the tolerance."""
    if ours is None or theirs is None or ours.shape[1:] != theirs.shape[1:]:
        return None, None, []
    frames = min(ours.shape[0], theirs.shape[0])
    diff = (ours[:frames].double() - theirs[:frames].double()).abs().reshape(frames, -1)
    if not frames:
        return 0.0, 0.0, []
    per_column = diff.max(dim=0).values
    inside = torch.zeros(diff.shape[1], dtype=torch.bool)
    inside[list(columns)] = True
    there = float(per_column[inside].max()) if inside.any() else 0.0
    elsewhere = float(per_column[~inside].max()) if (~inside).any() else 0.0
    return there, elsewhere, [int(c) for c in torch.nonzero(per_column > tolerance).flatten()]


def output_names(clips: Sequence[Clip]) -> list[str]:
    """A file name (without suffix) per clip for --save-outputs, none the same as another even on a
    case-insensitive file system: the clip's stem, then `-2`, `-3`... where stems repeat."""
    stems = [clip.path.stem for clip in clips]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    taken = {stem.casefold() for stem in stems if counts[stem.casefold()] == 1}
    names = []
    for stem in stems:
        if counts[stem.casefold()] == 1:
            names.append(stem)
            continue
        number = 1
        while (candidate := stem if number == 1 else f"{stem}-{number}").casefold() in taken:
            number += 1
        taken.add(candidate.casefold())
        names.append(candidate)
    return names


def describe_written(paths: Sequence[Path]) -> str:
    """What a stopped comparison leaves behind, in words."""
    folder = Path(paths[0]).parent
    return f"{len(paths)} file{'s' if len(paths) > 1 else ''} already written to {folder}: " + ", ".join(
        Path(p).name for p in paths)


def stored_dtype_notes(folder: str | Path) -> tuple[str, ...]:
    """A note when the folder's weights are stored in another dtype than float32 (both models run
    in float32, so the comparison measures the conversion, not the precision)."""
    dtypes = stored_dtypes(folder)
    if not dtypes or dtypes == {"float32"}:
        return ()
    named = " and ".join(sorted(dtypes))
    mixed = " (mixed precision)" if len(dtypes) > 1 else ""
    return (f"the weights are stored as {named}{mixed}, as the source stores them; both models ran in float32, so "
            "the comparison measures the conversion, not the precision",)


def side_steps(side) -> int:
    """How many progress steps a side takes per clip: one per layer where it reports them."""
    return int(getattr(side, "steps", 1))


def run_side(side, clip: Clip, progress: Progress) -> SideOutput:
    """Run one side on a clip, advancing `progress` layer by layer (and checking for a cancel
    between layers) where the side reports its layers, else once it is done."""
    progress.check()
    if getattr(side, "cancellable", False):  # runs elsewhere (a witness), watching the handle itself
        return side(clip, progress=progress)
    if not hasattr(side, "steps"):
        output = side(clip)
        progress.advance(items=1)
        return output

    def tick() -> None:
        progress.check()
        progress.advance(items=1)

    return side(clip, tick=tick)


def stored_dtypes(folder: str | Path) -> set[str]:
    """The floating dtypes of the weights in a converted folder, read from the safetensors headers."""
    try:
        weights = converted_weights(Path(folder))
    except BadInput:
        return set()
    return {t.dtype.name for t in weights.values() if t.is_floating_point()}


def converted_weights(folder: Path) -> dict[str, StoredTensor]:
    """The converted folder's tensors as its safetensors files describe them (headers only, validated)."""
    files = weight_files(folder)
    weights: dict[str, StoredTensor] = {}
    for name in files:
        weights.update(load_checkpoint(folder / name).content)
    return weights


@dataclass
class Pairing:
    """The plan of a checkpoint against a converted folder's own weights."""

    plan: Plan
    tensors: dict[str, SourceTensor]
    config: object  # the folder's transformers config


def check_pairing(recipe: Recipe, folder: Path, fixes: Overrides | None = None) -> Pairing:
    """Refuse a folder that is not this checkpoint's conversion (another model, another size, another
    head), before transformers loads it: the plan is built again against the folder's own weights,
    with `fixes` (by default those its report records) and the renames Speechport infers, and every
    tensor must land on a parameter of its shape."""
    from transformers import AutoConfig

    from ..planning.plan import SourceEntry, Status, TargetTensor, build_plan
    from ..planning.wrapper_prefix import infer_source_renames

    weights = converted_weights(folder)
    targets = {key: TargetTensor(tuple(t.shape), t.dtype.name) for key, t in weights.items()}
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{folder}: transformers cannot read its config ({str(exc).strip().splitlines()[0][:200]})") from None
    tensors = recipe.source_tensors()
    sources = [SourceEntry(key, tuple(s.tensor.shape), s.tensor.dtype.name, s.tensor.nbytes) for key, s in tensors.items()]
    fixes = fixes if fixes is not None else (_recorded_fixes(folder) or Overrides())
    plan = build_plan(recipe=recipe.name, layout=recipe.layout, target_class="", sources=sources,
                      rules=recipe.rules(config), targets=targets, overrides=fixes,
                      inferred=[] if fixes.keep_wrapper_prefix else infer_source_renames(recipe, tensors, config))
    wrong = [row for row in plan.rows
             if row.status in (Status.SHAPE_MISMATCH, Status.MISSING) or (row.status is Status.UNMAPPED and row.target_key)]
    if not wrong:
        return Pairing(plan, tensors, config)
    first = wrong[0]
    if first.status is Status.SHAPE_MISMATCH:
        detail = (f"{first.source_key} {list(first.source_shape)} would be {first.target_key}, which is "
                  f"{list(first.target_shape)} there")
    elif first.status is Status.MISSING:
        detail = f"nothing in the checkpoint gives its {first.target_key}"
    else:
        detail = f"it has no {first.target_key} for the checkpoint's {first.source_key}"
    more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
    raise BadInput(f"{folder}: not a conversion of {recipe.checkpoint.path.name}: {detail}{more}; "
                   "choose the folder converted from this checkpoint")


def _recorded_fixes(folder: Path) -> Overrides | None:
    """The fixes a Speechport conversion recorded in its report (None for other folders)."""
    report = read_report(folder)
    recorded = report.get("overrides") if report is not None else None
    if not recorded:
        return None
    try:
        return Overrides.from_dict(recorded, str(folder / REPORT_NAME))
    except (ValueError, AttributeError, TypeError, BadInput):
        return None


def _save_outputs(path: Path, clip: Clip, result) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = result.frames
    original = result.original.primary.detach().float()
    converted = result.converted.primary.detach().float()
    if original.dim() > 1:
        original, converted = original[:frames], converted[:frames]
    partial = path.with_name(f".{path.name}.partial")  # renamed into place once complete
    save_file(
        {"original": original.contiguous(), "converted": converted.contiguous()},
        partial,
        metadata={"audio": str(clip.path.absolute()), "verdict": result.verdict},
    )
    os.replace(partial, path)
    return path
