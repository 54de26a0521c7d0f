"""Proof on a test set: both models over hundreds of clips, in parallel here or on a Ray cluster.

`run_testset` compares every clip of a set (`core.proof.datasets`) with workers that each open
both models once (`core.proof.testset_pool`), and writes into the report folder:

- `results.jsonl`: one line per clip, written as each result comes: the clip object `compare
  --json` gives (`audio`, `verdict`, `max_abs_diff`, ...), `error` (null, or why it could not be
  compared), the clip's identity (`key`, `index`, `path`, `size`, `sha256`, `label`, `text`), what
  the summary reads of it (`top1`, `embeddings`, `speaker_frame_disagreement`, the transcripts) and
  the identity of the models and options it was compared with (`models`);
- `summary.json`: the set as a whole (`core.proof.testset_summary`), also when a run is stopped;
- `report.html`: one self-contained page of it (`core.proof.testset_report`).

A run that is stopped (Ctrl+C, the window's Cancel, SIGTERM) keeps every line written; one that is
killed may leave its last line half-written, which the next run drops. `resume=True` continues: a
line is kept when its clip is still in the set, its file still has the size and SHA-256 recorded,
and the models and options are the ones it was compared with; every other clip is compared again.
A kept line takes the label and reference text the set gives its clip now (they are the set's, not
the models' answers: a corrected label needs no model to run again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, Cancelled
from ..heavy_work import heavy
from ..progress import Progress, ensure
from ..storage.strict_json import dumps
from .datasets import ClipItem, Dataset
from .testset_clip import ERROR, ClipOptions, OpenModels, file_identity
from .testset_pool import LocalPool, RayPool
from .testset_summary import compared, summarize

RESULTS_NAME = "results.jsonl"
SUMMARY_NAME = "summary.json"
REPORT_HTML_NAME = "report.html"
OUR_FILES = (RESULTS_NAME, SUMMARY_NAME, REPORT_HTML_NAME)
MAX_LINE_BYTES = 64 << 20  # a results line longer than this is not one Speechport wrote

# Told each clip's record as it becomes known (those kept from an earlier run first), with how many
# of the set's clips are known then and how many the set has.
OnRecord = Callable[[dict, int, int], None]


@dataclass
class TestsetOutcome:
    summary: dict
    folder: Path
    records: list[dict] = field(default_factory=list)  # in the set's order

    @property
    def results(self) -> Path:
        return self.folder / RESULTS_NAME

    @property
    def verdict(self) -> str | None:
        return self.summary["verdict"]


# -- the report folder ---------------------------------------------------------------------------


def default_report_folder(dataset: str | os.PathLike, *, beside: bool = False) -> Path:
    """Where a run's files go unless told: `<set>-report` (`speech-report` for the folder `speech/`,
    `train-report` for `data/train/wav.scp`) in the current folder, or with `beside` next to the set
    (the window, which has no current folder of the user's)."""
    path = Path(dataset).expanduser().absolute()
    name = f"{(path.parent.name if path.name == 'wav.scp' else (path.stem if path.is_file() else path.name)) or 'testset'}-report"
    return path.parent / name if beside else Path(name).absolute()


def check_report_folder(folder: str | os.PathLike, *, resume: bool, converted: str | os.PathLike,
                        inputs: list[str | os.PathLike] = ()) -> Path:
    """The report folder, checked before anything runs (BadInput otherwise): not inside the converted
    model's folder (which is what gets published), not holding an input under a name the run
    writes, and either new, empty, or a run's own folder (one with results.jsonl, continued only
    with `resume`)."""
    folder = Path(folder).expanduser().absolute()
    real = Path(os.path.realpath(folder))
    converted_real = Path(os.path.realpath(Path(converted).expanduser()))
    if real == converted_real or converted_real in real.parents:
        raise BadInput(f"{folder}: refused as the report folder: it is inside the converted model's folder "
                       f"({converted_real}), which should hold only the model; choose another folder",
                       cli_hint="--report DIR")
    for path in inputs:
        given = Path(os.path.realpath(Path(path).expanduser()))
        if given.parent == real and given.name in OUR_FILES:
            raise BadInput(f"{folder}: refused as the report folder: the run would write over {given}, one of its "
                           "inputs; choose another folder", cli_hint="--report DIR")
    if real.exists() and not real.is_dir():
        raise BadInput(f"{folder}: is a file; the report of a test set is a folder", cli_hint="--report DIR")
    if real.is_dir():
        try:
            names = {entry.name for entry in os.scandir(real)}
        except OSError as exc:
            raise BadInput(f"{folder}: the report folder cannot be read ({exc.strerror or exc})") from None
        if RESULTS_NAME in names and not resume:
            raise BadInput(f"{folder}: holds the results of an earlier run; continue it, or choose another report "
                           "folder", cli_hint="to continue it: --resume")
        if names - set(OUR_FILES):
            raise BadInput(f"{folder}: the report folder is not empty and holds no test-set results; choose a new or "
                           "empty folder", cli_hint="--report DIR")
    return folder


class ResultsFile:
    """results.jsonl, locked for one run at a time, read back for a resume and appended to line by line."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / RESULTS_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
                              | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise BadInput(f"{folder}: the report folder cannot be written ({exc.strerror or exc})",
                           cli_hint="--report DIR") from None
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise BadInput(f"{folder}: another run is writing its results there; wait for it to end, or choose "
                           "another report folder", cli_hint="--report DIR") from None
        except ImportError:  # no flock (Windows): one run at a time is then the user's to keep
            pass

    def read(self) -> tuple[list[dict], int]:
        """The records already there, and how many lines were not records (a half-written last line)."""
        import json

        records, dropped = [], 0
        with open(self.path, "rb") as handle:
            for line in handle:
                if len(line) > MAX_LINE_BYTES or not line.endswith(b"\n"):
                    dropped += 1
                    continue
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    dropped += 1
                    continue
                if isinstance(record, dict) and isinstance(record.get("key"), str):
                    records.append(record)
                else:
                    dropped += 1
        return records, dropped

    def rewrite(self, records: list[dict]) -> None:
        """Replace the file with `records` in one step (the lock moves to the new file)."""
        partial = self.folder / f".{RESULTS_NAME}.partial"
        with open(partial, "wb") as handle:
            for record in records:
                handle.write(_line(record))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)
        old, self.fd = self.fd, os.open(self.path, os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
        with contextlib.suppress(ImportError):
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(old)

    def append(self, record: dict) -> None:
        data = _line(record)
        written = os.write(self.fd, data)  # one write: a reader sees whole lines, a kill leaves at most one half
        while written < len(data):
            written += os.write(self.fd, data[written:])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _line(record: dict) -> bytes:
    return (dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def write_file(folder: Path, name: str, text: str) -> Path:
    """Replace `folder/name` in one step (a reader never sees half of it)."""
    path = folder / name
    partial = folder / f".{name}.partial"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


# -- what the models are -------------------------------------------------------------------------


@heavy("hashing the models of a test set")
def models_identity(models: OpenModels, options: ClipOptions) -> str:
    """A digest of everything a clip's result depends on besides the clip: the source checkpoint, the
    converted folder's weights and configs, the base model, the fixes, the original's backend, the
    options and Speechport's version. Files hashed before and unchanged since are not read again."""
    from ..storage.hashing import sha256_of
    from ..storage.safetensors_file import weight_files
    from ..versions import versions
    from .report import read_report

    def digest(path: Path) -> str:
        try:
            return sha256_of(path)
        except OSError as exc:
            raise BadInput(f"{path}: cannot be read ({exc.strerror or exc})") from None

    def folder_digests(folder: Path) -> dict[str, str]:
        names = [*weight_files(folder), "config.json", "preprocessor_config.json"]
        return {name: digest(folder / name) for name in names if (folder / name).is_file()}

    converted = Path(models.converted).expanduser()
    parts: dict = {"speechport": versions().get("speechport"), "source": digest(Path(models.source).expanduser()),
                   "converted": folder_digests(converted), "backend": models.backend,
                   "options": dataclasses.asdict(options)}
    if models.dictionary:
        parts["dictionary"] = digest(Path(models.dictionary).expanduser())
    if models.base_model:
        base = Path(models.base_model).expanduser()
        parts["base_model"] = folder_digests(base) if base.is_dir() else digest(base)
    if models.fixes is not None:
        parts["fixes"] = models.fixes.to_dict()
    else:
        report = read_report(converted) or {}
        parts["fixes"] = report.get("overrides")
    return hashlib.sha256(dumps(parts, sort_keys=True).encode()).hexdigest()


# -- the run ---------------------------------------------------------------------------------------


@heavy("comparing a test set")
def run_testset(
    models: OpenModels,
    dataset: Dataset,
    folder: str | os.PathLike,
    *,
    options: ClipOptions,
    recipe_class: type | None = None,
    workers: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    on_record: OnRecord | None = None,
    about: dict | None = None,
) -> TestsetOutcome:
    """Compare both models on every clip of `dataset`, writing results.jsonl as it goes, then
    summary.json and report.html into `folder` (which the caller checks first: `check_report_folder`).

    `progress` counts the clips compared in this run and carries the cancel: `progress.cancel()`
    stops every worker at once, keeps what is done, writes the summary of it and raises `Cancelled`
    (a KeyboardInterrupt does the same and is raised again); either says what was kept. `about` is
    added to the summary (the source, the converted folder, the original's backend).
    """
    progress = ensure(progress)
    folder = Path(folder).expanduser().absolute()
    pool = RayPool(models, options, workers, ray_address) if ray else LocalPool(models, options, workers)
    with pool:  # a cluster that cannot be reached is refused before anything is written
        return _run(pool, models, dataset, folder, options, recipe_class, resume, progress, on_record, about)


def _run(pool, models: OpenModels, dataset: Dataset, folder: Path, options: ClipOptions, recipe_class, resume: bool,
         progress: Progress, on_record: OnRecord | None, about: dict | None) -> TestsetOutcome:
    results = ResultsFile(folder)
    started = time.perf_counter()
    try:
        progress.stage("hashing the models and the clips already compared")
        identity = models_identity(models, options)
        kept, notes = _kept(results, dataset, identity, resume)
        by_key = {record["key"]: record for record in kept}
        todo = [item for item in dataset.clips if item.key not in by_key]
        records = dict(by_key)
        if on_record is not None:
            for done, record in enumerate(kept, start=1):
                on_record(record, done, len(dataset.clips))
        progress.stage(f"comparing {len(todo)} clip{'s' if len(todo) != 1 else ''}", items_total=len(todo))

        def deliver(item: ClipItem, record: dict) -> None:
            record = {**record, "models": identity}
            results.append(record)
            records[item.key] = record
            progress.advance(items=1)
            if on_record is not None:
                on_record(record, len(records), len(dataset.clips))

        run = {"backend": pool.kind, "workers": 0, "resumed": len(kept), "compared_now": 0, "seconds": 0.0,
               "worker_peak_memory_bytes": []}
        try:
            report = pool.run(todo, deliver, progress)
        except (Cancelled, KeyboardInterrupt) as stop:
            run.update(workers=pool.report.started, compared_now=len(records) - len(kept),
                       seconds=round(time.perf_counter() - started, 3))
            outcome = _finish(folder, dataset, records, identity, options, recipe_class or _recipe_of(pool),
                              about, run, notes, complete=False)
            kept_text = (f"{len(records)} of {len(dataset.clips)} clips are kept in {results.path}; "
                         "resume to compare the rest")
            if isinstance(stop, Cancelled):
                stopped = Cancelled(f"stopped; {kept_text}")
                stopped.outcome = outcome  # what is done, summed up: the window shows it
                raise stopped from None
            stop.kept = kept_text  # for the message that says what is left behind
            stop.outcome = outcome
            raise
        run.update(workers=report.started, compared_now=len(todo), seconds=round(time.perf_counter() - started, 3),
                   worker_peak_memory_bytes=report.peak_memory)
        progress.finish()
        return _finish(folder, dataset, records, identity, options, recipe_class or _recipe_of(pool), about, run,
                       notes, complete=True)
    finally:
        results.close()


def _recipe_of(pool) -> type | None:
    description = pool.report.description
    return description.get("recipe_class") if description else None


def _kept(results: ResultsFile, dataset: Dataset, identity: str, resume: bool) -> tuple[list[dict], list[str]]:
    """The records a resumed run keeps (none without `resume`), the file rewritten to hold just them."""
    existing, dropped = results.read()
    notes: list[str] = []
    if not resume:
        if existing or dropped:
            results.rewrite([])
        return [], notes
    items = {item.key: item for item in dataset.clips}
    latest: dict[str, dict] = {}
    for record in existing:
        latest[record["key"]] = record  # a clip compared twice: the later line counts
    kept, changed_models, changed_files, relabelled = [], 0, 0, 0
    for key, record in latest.items():
        item = items.get(key)
        if item is None:
            continue
        if record.get("models") != identity:
            changed_models += 1
            continue
        if not _same_file(item, record):
            changed_files += 1
            continue
        if record.get("label") != item.label or record.get("text") != item.text:
            record = {**record, "label": item.label, "text": item.text}
            relabelled += 1
        kept.append(record)
    if changed_models:
        notes.append(f"{changed_models} clip{'s were' if changed_models != 1 else ' was'} compared again: the models "
                     "or the options changed since")
    if changed_files:
        notes.append(f"{changed_files} clip{'s were' if changed_files != 1 else ' was'} compared again: "
                     f"{'their files' if changed_files != 1 else 'its file'} changed since")
    if dropped:
        notes.append(f"{dropped} line{'s' if dropped != 1 else ''} of {RESULTS_NAME} that a stopped run left "
                     "unfinished were dropped")
    kept.sort(key=lambda r: items[r["key"]].index)
    if len(kept) != len(existing) or dropped or relabelled:
        results.rewrite(kept)
    return kept, notes


def _same_file(item: ClipItem, record: dict) -> bool:
    """The clip's file still has the size and SHA-256 its record names (a record of a file that could
    not be read then is compared again)."""
    if record.get("sha256") is None or record.get("path") != item.path:
        return False
    try:
        if os.stat(item.path).st_size != record.get("size"):
            return False
        return file_identity(item.path) == (record.get("size"), record.get("sha256"))
    except (OSError, BadInput):
        return False


def _finish(folder: Path, dataset: Dataset, records: dict[str, dict], identity: str, options: ClipOptions,
            recipe_class, about: dict | None, run: dict, notes: list[str], complete: bool) -> TestsetOutcome:
    from .testset_report import render_report

    ordered = [records[item.key] for item in dataset.clips if item.key in records]
    summary = summarize(ordered, clips_in_set=len(dataset.clips), tolerance=options.tolerance,
                        trials=dataset.trials, recipe_class=recipe_class)
    summary["notes"] = [*dataset.notes, *notes, *summary["notes"]]
    summary.update({
        "complete": complete, "done": len(ordered), "report_folder": str(folder),
        "dataset": {"path": str(dataset.path), "form": dataset.form, "label_column": dataset.label_column,
                    "text_column": dataset.text_column},
        **(about or {}), "models": identity, "run": run,
        "options": dataclasses.asdict(options),
    })
    if not complete and summary["verdict"] == "pass":
        summary["verdict"] = None  # a pass is said of a whole set only
    write_file(folder, SUMMARY_NAME, dumps(summary, indent=2) + "\n")
    write_file(folder, REPORT_HTML_NAME, render_report(summary, ordered))
    return TestsetOutcome(summary, folder, ordered)


def internal_errors(outcome: TestsetOutcome) -> list[dict]:
    return [r for r in outcome.records if r.get("verdict") == ERROR]


def nothing_compared(outcome: TestsetOutcome) -> bool:
    return outcome.summary["done"] > 0 and not compared(outcome.records)
