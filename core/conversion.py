"""Preparing and running a conversion: open -> detect -> configure -> plan -> write.

`prepare` does everything that reads: it opens the checkpoint, picks the recipe, settles the config
and builds the plan against the target model on the meta device. `convert` writes, and only a plan
without problems. The window calls the same two functions from its worker threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadInput, NeedsBaseModel, PlanProblems
from .families import detect, forced, recipe_named
from .heavy_work import heavy
from .library_guard import without_libraries
from .planning.mapping_file import Overrides
from .planning.plan import Plan, SourceEntry, TargetTensor, build_plan, refuse_non_floating_weights
from .planning.recipe import ConfigChoice, Detection, Recipe, SourceTensor
from .planning.rules import Rule
from .planning.suggestions import Suggestion, suggest
from .planning.target_cache import CACHE, PREPROCESSOR_FILE
from .planning.wrapper_prefix import infer_source_renames
from .progress import Progress, ensure
from .proof.audio import Clip, load_clip
from .proof.comparison import DEFAULT_TOLERANCE, Comparison, check_tolerance
from .proof.model_card import load_card_library, write_model_card
from .proof.original_weights import OriginalWeights, resolve_original_weights
from .storage.checkpoint import Checkpoint, load_checkpoint
from .storage.files import regular_file
from .storage.hashing import BackgroundHash
from .storage.output_folder import StagedFolder, check_output_path, protected_inputs
from .storage.safetensors_writer import DEFAULT_MAX_SHARD_SIZE, WriteItem, WrittenWeights, write_weights


@dataclass
class Prepared:
    """Everything known about a conversion before anything is written."""

    source: Path
    checkpoint: Checkpoint
    recipe: Recipe  # the family's conversion of this checkpoint
    tensors: dict[str, SourceTensor]
    other_entries: dict[str, str]
    config: ConfigChoice
    targets: dict[str, TargetTensor]
    overrides: Overrides
    plan: Plan
    hasher: BackgroundHash
    mapping_path: Path | None = None
    base_model: Path | None = None
    labels_path: Path | None = None
    dictionary_path: Path | None = None  # the dictionary file the user gave (--dictionary)
    timings: dict[str, float] = field(default_factory=dict)
    inferred: list[Rule] = field(default_factory=list)  # source renames Speechport inferred and applies
    inferred_found: list[Rule] = field(default_factory=list)  # ... and those it found, applied or not (kept by the fixes)
    config_names: set[str] = field(default_factory=set)  # the original's names the config was settled from
    config_path: Path | None = None
    labels: list[str] | None = None
    targets_built: int = 0  # targets built with transformers while preparing (0: all from the target cache)

    @property
    def detection(self) -> Detection:
        return self.recipe.detection

    @property
    def layout(self) -> str:
        return self.recipe.layout

    def unclaimed_targets(self) -> list[str]:
        """Target keys no mapped row fills yet: the candidates when fixing a key by hand."""
        claimed = {row.target_key for row in self.plan.rows if row.source_key is not None and row.target_key}
        return sorted(key for key in self.targets if key not in claimed)

    def replan(self, overrides: Overrides) -> Plan:
        """A new plan with other fixes (which say whether the inferred renames apply); cheap, since
        the target model is already known."""
        self.overrides = overrides
        self.inferred = [] if overrides.keep_wrapper_prefix else list(self.inferred_found)
        names = _original_names(self.recipe, self.tensors, overrides, self.inferred)
        if set(names) != self.config_names:  # a fix names a tensor the config is read from: settle it again
            self.config = self.recipe.choose_config(names, config_path=self.config_path, labels=self.labels)
            self.targets = self.config.config.targets()
            self.config_names = set(names)
        self.plan = _build_plan(self)
        return self.plan

    def suggestions(self, limit: int = 5) -> dict[str, list[Suggestion]]:
        """Ranked target candidates for every unmapped source key (`core.suggestions`)."""
        return suggest(self.plan, self.targets, self.recipe.original_stage(self.config.config), limit)

    def original_weights(self) -> OriginalWeights:
        """What the original model reads for a comparison: its own names, fixes only where it must."""
        return resolve_original_weights(self.recipe, self.plan.rows, self.tensors, self.config.config)


@dataclass
class ConversionResult:
    output: Path
    weights: WrittenWeights
    report: dict
    seconds: float
    comparison: Comparison | None = None
    # "write": the weights; "wait_for_hash": after them, until the source's digest was known; "hash":
    # the digest's own time on its thread (0 when known from the digest cache).
    timings: dict[str, float] = field(default_factory=dict)


@heavy("opening and planning a checkpoint")
def prepare(
    source: str | Path | Checkpoint,
    *,
    config: str | Path | None = None,
    mapping: str | Path | Overrides | None = None,
    base_model: str | Path | None = None,
    labels: str | Path | None = None,
    recipe: str | None = None,
    trust_pickle: bool = False,
    progress: Progress | None = None,
    hasher: BackgroundHash | None = None,
    libraries: bool = True,
    dictionary: str | Path | None = None,
) -> Prepared:
    """Open, detect, configure and plan. `source` is a file path, or an already opened checkpoint.

    `mapping` is a mapping file or the fixes themselves (the window keeps them as `Overrides`).
    `hasher` is the source's checksum if the caller started it already (the CLI starts it before
    anything else, so it is done by the time the weights are written). `libraries=False`: raise
    `core.library_guard.NeedsLibraries` rather than import torch or transformers (the window then
    opens it again once they are loaded). `dictionary`: the file naming the symbols a speech
    recognition model writes, where the checkpoint does not carry them.
    """
    if not libraries:
        with without_libraries():
            return prepare(source, config=config, mapping=mapping, base_model=base_model, labels=labels,
                           recipe=recipe, trust_pickle=trust_pickle, progress=progress, hasher=hasher,
                           dictionary=dictionary)
    progress = ensure(progress)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    progress.stage("reading the checkpoint")
    if isinstance(source, Checkpoint):
        checkpoint, source = source, source.path
        hasher = hasher or BackgroundHash(source)  # runs while the plan is built and the weights are written
    else:
        source = Path(source).expanduser().absolute()
        # Started before the file is read: what it first sees of the file is what every later read
        # is checked against (`BackgroundHash.confirm_unchanged`).
        hasher = hasher or BackgroundHash(source)
        try:
            checkpoint = load_checkpoint(source, trust_pickle=trust_pickle)
        except BaseException:
            hasher.cancel()
            raise
    try:
        detection = detect(checkpoint) if recipe is None else forced(recipe_named(recipe), checkpoint)
        timings["read"] = time.perf_counter() - started
        base_model = Path(base_model).expanduser().absolute() if base_model else None
        chosen = detection.open(checkpoint, base_model)
        dictionary = Path(dictionary).expanduser().absolute() if dictionary else None
        if dictionary is not None:
            chosen.use_dictionary(dictionary)
        chosen.check_checkpoint()
        if chosen.needs_base_model and base_model is None:
            raise NeedsBaseModel(str(source), chosen.name)
        if isinstance(mapping, Overrides):
            overrides = mapping
        else:
            overrides = Overrides.load(mapping) if mapping else Overrides()
        progress.check()
        progress.stage("settling the config and the target model")
        mark = time.perf_counter()
        imports_before, builds_before = CACHE.import_seconds, CACHE.builds
        tensors = chosen.source_tensors()
        found = infer_source_renames(chosen, tensors, None)
        inferred = [] if overrides.keep_wrapper_prefix else found
        names = _original_names(chosen, tensors, overrides, inferred)
        config_path = Path(config).expanduser() if config else None
        label_names = read_labels(labels) if labels else None
        choice = chosen.choose_config(names, config_path=config_path, labels=label_names)
        targets = choice.config.targets()
        timings["import"] = CACHE.import_seconds - imports_before  # 0 when the target cache knew it
        timings["target"] = time.perf_counter() - mark - timings["import"]
        targets_built = CACHE.builds - builds_before
        prepared = Prepared(
            source, checkpoint, chosen, tensors, chosen.other_entries(),
            choice, targets, overrides, plan=None, hasher=hasher,  # type: ignore[arg-type]
            mapping_path=Path(mapping) if mapping and not isinstance(mapping, Overrides) else None,
            base_model=base_model, labels_path=Path(labels).expanduser().absolute() if labels else None, timings=timings,
            inferred=inferred, inferred_found=found, config_names=set(names), config_path=config_path,
            labels=label_names, dictionary_path=dictionary,
            targets_built=targets_built,
        )
        mark = time.perf_counter()
        prepared.plan = _build_plan(prepared)
        refuse_non_floating_weights(prepared.plan.rows, targets, str(source))
        timings["plan"] = time.perf_counter() - mark
        return prepared
    except BaseException:
        hasher.cancel()
        raise


@heavy("writing a converted folder")
def convert(
    prepared: Prepared,
    out: str | Path,
    *,
    force: bool = False,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    progress: Progress | None = None,
    verify: Sequence[str | Path | Clip] = (),
    tolerance: float = DEFAULT_TOLERANCE,
    channels: str = "first",
    original_backend: str = "reference",
) -> ConversionResult:
    """Write the converted folder atomically; nothing is written when the plan has problems.

    With `verify` clips, the original and the converted model are compared on them once the
    folder is complete (before it is moved into place), and the result goes into the report and
    the model card. A failed verification still delivers the folder: the evidence is the point.
    """
    progress = ensure(progress)
    if not prepared.plan.ok:
        raise PlanProblems(prepared.plan)
    refuse_non_floating_weights(prepared.plan.rows, prepared.targets, str(prepared.source))  # a fix may map one
    started = time.perf_counter()
    # An output folder holding an input would destroy it when replaced: refused, force or not.
    protected = protected_inputs(
        source=prepared.source, base_model=prepared.base_model, config=prepared.config.path,
        mapping=prepared.mapping_path, labels=prepared.labels_path, dictionary=prepared.dictionary_path,
        clips=[getattr(c, "path", c) for c in verify],
    )
    check_output_path(out, force, protected)
    clips = [c if isinstance(c, Clip) else load_clip(c, channels=channels) for c in verify]  # bad audio fails first
    check_tolerance(tolerance)
    if clips:
        prepared.recipe.check_backend(original_backend)
        for clip in clips:  # a clip the model cannot be compared on is refused before anything is written
            prepared.recipe.check_clip(clip, prepared.config.config)
    comparison = None
    timings: dict[str, float] = {}
    # The model card's library takes ~0.3 s to import: on another thread while the weights are copied
    # (in the kernel, without the GIL), not after them.
    card_library = threading.Thread(target=load_card_library, name="import huggingface_hub", daemon=True)
    card_library.start()
    with StagedFolder(out, force, protected) as staged:
        items = [WriteItem(row.target_key, prepared.tensors[row.source_key].tensor) for row in prepared.plan.mapped()]
        mark = time.perf_counter()
        weights = write_weights(staged.path, items, progress, max_shard_size)
        timings["write"] = time.perf_counter() - mark
        progress.stage("writing config, preprocessor config, report and model card")
        config = prepared.config.config
        for name, text in config.files().items():  # what transformers' save_pretrained writes for it
            (staged.path / name).write_text(text, encoding="utf-8")
        preprocessor = config.preprocessor()
        (staged.path / PREPROCESSOR_FILE).write_text(json.dumps(preprocessor, indent=2, sort_keys=True) + "\n")
        progress.stage("checksumming the source")
        mark = time.perf_counter()
        while not prepared.hasher.wait(0.05):
            progress.check()
        # The digest describes the weights copied only if the file did not change while they were
        # read (the copy and the hash read it side by side): else nothing is delivered.
        prepared.hasher.confirm_unchanged()
        timings["wait_for_hash"] = time.perf_counter() - mark
        timings["hash"] = prepared.hasher.seconds if not prepared.hasher.from_cache else 0.0
        seconds = time.perf_counter() - started
        digest = None
        if clips:
            from .proof.record import WeightsDigest, add_verification, verification_entry

            # The written weights, hashed while the converted model loads and runs: the record says
            # which bytes were verified (core.proof.record).
            digest = WeightsDigest(staged.path)
            try:
                comparison = _verify(prepared, staged.path, clips, tolerance, original_backend, progress)
                prepared.hasher.confirm_unchanged()  # the original model read the source again
                digest.confirm_unchanged()
            except BaseException:
                digest.cancel()
                raise
        from .proof.report import REPORT_NAME, build_report, dump_report

        card_library.join()
        report = build_report(prepared, weights, seconds)
        if comparison is not None:
            report = add_verification(report, verification_entry(
                comparison, backend=comparison.original_backend, by="speechport convert --verify",
                weights=digest.file_digests()))
        (staged.path / REPORT_NAME).write_text(dump_report(report))
        write_model_card(staged.path, prepared, report)
        output = staged.commit()
        if digest is not None:
            digest.remember_at(output)
    progress.finish()
    return ConversionResult(output, weights, report, seconds, comparison, timings)


def _verify(prepared: Prepared, folder: Path, clips, tolerance: float, backend: str, progress: Progress):
    from .proof.verification import Sides, accepted_differences_in, compare_clips, mapped_weights

    recipe = prepared.recipe
    progress.stage("verifying: loading the original and the converted model")
    original = prepared.original_weights()
    original_side = recipe.original_side(backend=backend, weights=original.weights)
    sides = Sides(
        recipe,
        original_side,
        recipe.converted_side(folder),
        getattr(original_side, "name", backend),
        str(folder),
        accepted_differences_in([row.to_dict() for row in prepared.plan.rows]),
        original.fixes_used,
        mapped_weights(prepared.plan, prepared.tensors),
    )
    return compare_clips(sides, clips, tolerance=tolerance, progress=progress)


def _build_plan(prepared: Prepared) -> Plan:
    recipe = prepared.recipe
    sources = [
        SourceEntry(key, tuple(s.tensor.shape), s.tensor.dtype.name, s.tensor.nbytes)
        for key, s in prepared.tensors.items()
    ]
    return build_plan(
        recipe=recipe.name,
        layout=prepared.layout,
        target_class=prepared.config.config.target_class,
        sources=sources,
        rules=recipe.rules(prepared.config.config),
        targets=prepared.targets,
        overrides=prepared.overrides,
        inferred=prepared.inferred,
        other_entries=prepared.other_entries,
        inexpressible=recipe.inexpressible(prepared.config.config),
        config_conflicts=prepared.config.conflicts,
        notes=[*prepared.config.notes, *(f"inferred fix: {rule.note.removeprefix('inferred: ')} is stripped from "
                                         "every key (undo it in the window to see the keys as saved)"
                                         for rule in prepared.inferred)],
    )


def _original_names(recipe: Recipe, tensors, overrides: Overrides, inferred: list[Rule]) -> dict:
    """The tensors under the original's own names, fixes included: what the config is read from.
    The decisions need no target model (only which target each fixed key is given)."""
    sources = [SourceEntry(key, tuple(s.tensor.shape), s.tensor.dtype.name, s.tensor.nbytes) for key, s in tensors.items()]
    rows = build_plan(recipe=recipe.name, layout=recipe.layout, target_class="", sources=sources,
                      rules=recipe.rules(None), targets=None, overrides=overrides, inferred=inferred).rows
    return resolve_original_weights(recipe, rows, tensors, None).weights


def open_sides(
    source: str | Path | Checkpoint,
    converted_dir: str | Path,
    *,
    base_model: str | Path | None = None,
    backend: str = "reference",
    trust_pickle: bool = False,
    detection: Detection | None = None,
    fixes: Overrides | None = None,
    progress: Progress | None = None,
    dictionary: str | Path | None = None,
):
    """A checkpoint (opened and detected unless `detection` says what it is) and its converted folder,
    as the two sides of a comparison (`core.proof.verification.Sides`), ready to run on clips.
    `dictionary`: the symbols a speech recognition model writes, where the checkpoint does not carry them."""
    from .proof.verification import open_recipe_sides

    progress = ensure(progress)
    progress.stage("loading the original model")
    checkpoint = source if isinstance(source, Checkpoint) else load_checkpoint(source, trust_pickle=trust_pickle)
    detection = detection or detect(checkpoint)
    base = Path(base_model).expanduser().absolute() if base_model else None
    recipe = detection.open(checkpoint, base)
    if dictionary:
        recipe.use_dictionary(Path(dictionary).expanduser().absolute())
    if recipe.needs_base_model and base is None:
        raise BadInput(f"{checkpoint.path}: comparing a {recipe.name} checkpoint needs the upstream (base) model "
                       "it was trained on", cli_hint="--base-model DIR_OR_FILE")
    return open_recipe_sides(recipe, converted_dir, backend=backend, fixes=fixes, progress=progress)


def read_labels(path: str | Path) -> list[str]:
    """A labels file: one label per line, in class-index order; blank lines ignored."""
    path = regular_file(path, "labels file")  # never open a FIFO or a device: the read would block
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise BadInput(f"{path}: no such labels file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the labels file ({exc})") from None
    if not labels:
        raise BadInput(f"{path}: the labels file is empty")
    if len(set(labels)) != len(labels):
        raise BadInput(f"{path}: the labels file repeats a label")
    return labels
