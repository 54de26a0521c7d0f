"""One clip of a test set, compared: what every worker of a test-set run does, in a local process
or in a Ray actor alike.

A worker opens both models once (`OpenModels`, picklable so that each process opens its own) and
then compares clip after clip with `ClipWorker`: `load` reads a clip (its identity: size and
SHA-256; then its samples, decoded and resampled) and needs no model, so it runs ahead of the
models on another thread; `compare` runs both models on it, one clip at a time. A clip that cannot
be read or compared becomes a record with its reason, never an exception: only what is wrong with
the models themselves (weights holding NaN) stops the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BadInput, SpeechportError
from ..planning.mapping_file import Overrides
from ..progress import Progress
from .audio import DEFAULT_MAX_SECONDS, Clip, load_clip
from .comparison import DEFAULT_TOLERANCE
from .datasets import ClipItem

# The verdict of a clip both models ran on is "pass" or "fail", as `compare` says it; these two are a
# test set's own: the clip could not be compared (why is in `error`), or comparing it hit a bug.
UNREADABLE = "unreadable"
ERROR = "error"
# The numbers of a clip object (`compare --json`) that a clip without a comparison has as null.
CLIP_NUMBERS = ("max_abs_diff", "mean_abs_diff", "nmse_db", "cosine_min", "cosine_mean", "frames",
                "first_divergent_layer", "seconds_original", "seconds_converted")
# Fields that measure how long something took: they differ between two runs of the same comparison.
TIMING_FIELDS = ("seconds_original", "seconds_converted")


@dataclass(frozen=True)
class ClipOptions:
    """What `compare` is told about each clip: the verdict's tolerance, the channel policy, the
    length limit and the part of each clip (a dataset row's own start / duration come first)."""

    tolerance: float = DEFAULT_TOLERANCE
    channels: str = "first"
    max_seconds: float = DEFAULT_MAX_SECONDS
    start: float = 0.0
    duration: float | None = None


@dataclass(frozen=True)
class OpenModels:
    """How a worker opens the two models of the comparison. `open_sides` is
    `core.conversion.open_sides`, given by the caller (the proof stage never imports the conversion
    above it); `consent` is a context manager function the opening runs within (the S3PRL heads'
    `mismatch_accepted`, for --base-model-mismatch-ok). Everything here pickles, so a worker
    process or a Ray actor on another machine opens its own models from the same files."""

    open_sides: Callable
    source: str
    converted: str
    base_model: str | None = None
    backend: str = "reference"
    trust_pickle: bool = False
    fixes: Overrides | None = None
    consent: Callable | None = None
    dictionary: str | None = None  # the symbols a speech recognition model writes, when given apart

    def __call__(self, progress: Progress | None = None):
        extra = {"dictionary": self.dictionary} if self.dictionary else {}
        with self.consent() if self.consent is not None else contextlib.nullcontext():
            sides = self.open_sides(self.source, self.converted, base_model=self.base_model, backend=self.backend,
                                    trust_pickle=self.trust_pickle, fixes=self.fixes, progress=progress, **extra)
        if sides.weights_digest is not None:
            # Hashed for recording a comparison in the folder; a test-set run records nothing there.
            sides.weights_digest.cancel()
            sides.weights_digest = None
        return sides


@dataclass
class Loaded:
    """A clip read ahead of the models: its identity and samples, or why it cannot be compared."""

    item: ClipItem
    size: int | None = None
    sha256: str | None = None
    clip: Clip | None = None
    error: str | None = None
    verdict: str = UNREADABLE  # when `clip` is None: why it cannot be compared is `error`
    segment: list[float] | None = None  # the part asked for, when the clip could not be read


class FatalError(Exception):
    """What stops a whole run from inside a worker: a SpeechportError about the models (not a clip),
    carried as its parts, since a worker's exception does not travel whole between processes."""

    def __init__(self, kind: str, message: str, exit_code: int, hint: str | None = None,
                 cli_hint: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.exit_code, self.hint, self.cli_hint = kind, message, exit_code, hint, cli_hint

    @classmethod
    def of(cls, error: BaseException) -> FatalError:
        if isinstance(error, FatalError):
            return error
        if isinstance(error, SpeechportError):
            return cls(error.kind, error.message, error.exit_code, error.hint, error.cli_hint)
        text = str(error).strip().splitlines()
        return cls("internal", f"{type(error).__name__}: {text[0][:300] if text else ''}", 4)

    def __reduce__(self):
        return (FatalError, (self.kind, self.message, self.exit_code, self.hint, self.cli_hint))

    def as_error(self) -> SpeechportError:
        """The error as the process that started the run raises it (the CLI's exit code, the window's dialog)."""
        if self.kind == "internal":
            return RuntimeError(self.message)  # type: ignore[return-value]  (a bug: the CLI's exit 4)
        error = BadInput(self.message, hint=self.hint, cli_hint=self.cli_hint)
        error.kind, error.exit_code = self.kind, self.exit_code
        return error


# oneDNN (torch's CPU kernels) keeps up to 1,024 compiled kernels, one per input shape it met; every clip
# of a set has a length of its own, so a worker's memory would grow clip after clip (measured: 480 MiB
# after one clip, 740 MiB after 200, on a 10M-parameter conformer). The few shapes of one clip's
# layers still fit: the cache keeps its use within a clip, at the same speed.
KERNEL_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
KERNEL_CACHE_CAPACITY = 16


def bound_kernel_cache() -> None:
    """In a worker process, before its models run the first time (oneDNN reads it then); a value the
    user set is kept."""
    os.environ.setdefault(KERNEL_CACHE_VARIABLE, str(KERNEL_CACHE_CAPACITY))


class ClipWorker:
    """Both models, opened once, and the clips compared on them one at a time."""

    def __init__(self, models: OpenModels, options: ClipOptions, threads: int | None = None):
        bound_kernel_cache()
        if threads:
            import torch

            torch.set_num_threads(threads)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # transformers' loading bars, from every worker, would garble the run's own
        hf_logging.set_verbosity_error()
        self.options = options
        self.sides = models()
        self._models = threading.Lock()  # one clip at a time through the models; reading runs beside them
        self._weights_checked: BadInput | bool = False

    def describe(self) -> dict:
        """What the process that started the run needs to know of this worker: its recipe's class
        (for the family's own aggregates) and name, and who it is."""
        recipe = self.sides.recipe
        return {"recipe_class": type(recipe), "recipe": recipe.name, "pid": os.getpid()}

    def run(self, item: ClipItem) -> dict:
        return self.compare(self.load(item))

    def load(self, item: ClipItem) -> Loaded:
        """Read a clip: needs no model, so it may run on another thread while the models work."""
        options = self.options
        start = item.start if item.start is not None else options.start
        duration = item.duration if item.duration is not None else options.duration
        loaded = Loaded(item)
        if item.start is not None or item.duration is not None or options.start or options.duration is not None:
            loaded.segment = [start, start + duration] if duration is not None else [start, None]
        try:
            loaded.size, loaded.sha256 = file_identity(item.path)
            loaded.clip = load_clip(item.path, channels=options.channels, max_seconds=options.max_seconds,
                                    start=start, duration=duration)
        except BadInput as refusal:
            loaded.error = str(refusal)
        except Exception as error:  # noqa: BLE001 - a bug reading one clip is recorded; the run goes on
            loaded.clip, loaded.error, loaded.verdict = None, internal_reason(error), ERROR
        return loaded

    def compare(self, loaded: Loaded) -> dict:
        """Run both models on a loaded clip: its record (a results.jsonl line, without the models' identity)."""
        if loaded.clip is None:
            return record_of(loaded, loaded.verdict, loaded.error)
        from .verification import compare_clips

        with self._models:
            try:
                comparison = compare_clips(self.sides, [loaded.clip], tolerance=self.options.tolerance)
            except BadInput as refusal:
                self._refuse_bad_weights()  # the models' fault, not this clip's: stops the run
                return record_of(loaded, UNREADABLE, str(refusal))
            except Exception as error:  # noqa: BLE001 - a bug on one clip is recorded and counted; the run goes on
                return record_of(loaded, ERROR, internal_reason(error))
            result = comparison.clips[0]
            answers = self.sides.recipe.clip_answers(result.original, result.converted) \
                if result.original is not None and result.converted is not None else {}
        record = identity_of(loaded)
        record.update(result.to_dict())
        record["error"] = None
        record.update(answers)
        return record

    def _refuse_bad_weights(self) -> None:
        """Raise when the checkpoint's weights hold NaN or infinite values: checked once, the first time
        a clip is refused, since a clip a model outputs NaN on may be refused for that reason."""
        if self._weights_checked is False:
            from .verification import refuse_non_finite_weights

            try:
                refuse_non_finite_weights(self.sides)
                self._weights_checked = True
            except BadInput as refusal:
                self._weights_checked = refusal
        if isinstance(self._weights_checked, BadInput):
            raise self._weights_checked

    @staticmethod
    def peak_memory() -> int:
        """This process's peak resident memory, in bytes."""
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024


def file_identity(path: str) -> tuple[int, str]:
    """The clip file's size and SHA-256 (BadInput when it is no regular file or cannot be read)."""
    from ..storage.files import regular_file, unreadable

    regular_file(path, "audio file")  # a FIFO would block the read forever
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest = hashlib.sha256()
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise unreadable(path, exc, "audio file") from None
    return size, digest.hexdigest()


def identity_of(loaded: Loaded) -> dict:
    item = loaded.item
    return {"key": item.key, "index": item.index, "path": item.path, "size": loaded.size, "sha256": loaded.sha256,
            "label": item.label, "text": item.text}


def record_of(loaded: Loaded, verdict: str, reason: str | None) -> dict:
    """The record of a clip both models did not run on: the clip object's fields, null, and why."""
    record = identity_of(loaded)
    record.update({"audio": loaded.item.path, "segment": loaded.segment, "verdict": verdict,
                   **{name: None for name in CLIP_NUMBERS}, "stage_max_abs_diff": {}, "notes": [], "error": reason})
    return record


def internal_reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"internal error: {type(error).__name__}: {text[0][:300] if text else ''} (a bug in Speechport)"

