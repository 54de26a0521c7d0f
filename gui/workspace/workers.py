"""Work that must not run on the GUI thread, and the plumbing that brings its results back.

A `Task` runs one function on a thread pool. Its outcome, and the core's progress events, come
back as Qt signals delivered on the GUI thread (queued), so the window only ever handles them
between events. Cancelling goes through the core's Qt-free `Progress` handle.

The jobs themselves import the core's torch-dependent modules inside the function, on the
worker thread: the window module itself never imports torch or transformers.
"""

from __future__ import annotations

import ctypes
import gc
import glob
import importlib
import importlib.util
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ...core.errors import BadInput
from ...core.progress import Progress

PROGRESS_INTERVAL_S = 0.05  # at most 20 progress events a second reach the event queue


class Task(QObject):
    """One call on a worker thread. Signals carry the task itself so handlers can drop stale ones."""

    succeeded = Signal(object, object)  # task, result
    failed = Signal(object, object)  # task, exception
    progressed = Signal(object, object)  # task, core.progress.ProgressEvent

    def __init__(self, kind: str, function: Callable[..., Any], *args, with_progress: bool = False, **kwargs):
        super().__init__()
        self.kind = kind
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.progress = Progress(self._forward, min_interval=PROGRESS_INTERVAL_S) if with_progress else None
        self.started_at = 0.0
        self.seconds = 0.0
        self.traceback = ""  # for unexpected errors: logged for developers, never shown
        self.done = False

    def cancel(self) -> None:
        if self.progress is not None:
            self.progress.cancel()

    @property
    def cancelled(self) -> bool:
        return self.progress is not None and self.progress.cancelled

    def _forward(self, event) -> None:
        self.progressed.emit(self, event)

    def run(self) -> None:
        self.started_at = time.perf_counter()
        try:
            if self.progress is not None:
                result = self.function(*self.args, progress=self.progress, **self.kwargs)
            else:
                result = self.function(*self.args, **self.kwargs)
        except BaseException as error:  # noqa: BLE001 - every outcome goes back to the window
            self.seconds = time.perf_counter() - self.started_at
            self.traceback = traceback.format_exc()
            self.done = True
            self.failed.emit(self, error)
        else:
            self.seconds = time.perf_counter() - self.started_at
            self.done = True
            self.succeeded.emit(self, result)


class _Runner(QRunnable):
    def __init__(self, task: Task):
        super().__init__()
        self.task = task

    def run(self) -> None:
        self.task.run()


def start(pool: QThreadPool, task: Task) -> Task:
    pool.start(_Runner(task))
    return task


# -- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LibrariesLoaded:
    seconds: float
    versions: dict[str, str]


def load_libraries() -> LibrariesLoaded:
    """Import torch, transformers and every recipe's model classes, without stalling the GUI thread.

    Two things make a background import stall the GUI thread although it runs elsewhere: the
    dynamic loader mapping torch's ~400 MB of shared libraries while holding the GIL (~200 ms),
    and the cyclic garbage collector walking the fast-growing heap of new module objects (gaps of
    50-150 ms at random points). So torch's libraries are mapped first through a ctypes call,
    which releases the GIL, and collection is paused for the import; what the import created is
    then frozen out of future collections, which keeps later pauses short too.
    """
    started = time.perf_counter()
    cold = "torch" not in sys.modules
    was_enabled = gc.isenabled()
    if cold:
        gc.disable()
    try:
        if cold:
            _map_torch_libraries()
        importlib.import_module("...core.conversion", __package__)  # torch, the checkpoint reader, the writer
        from ...core.families import all_recipes

        for recipe in all_recipes():
            recipe.load_libraries()
        import torch
        import transformers
    finally:
        if cold:
            gc.freeze()
            if was_enabled:
                gc.enable()
    return LibrariesLoaded(
        time.perf_counter() - started, {"torch": torch.__version__, "transformers": transformers.__version__}
    )


def _map_torch_libraries() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.origin is None:
            return
        package = Path(spec.origin).parent
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        dlopen.restype = ctypes.c_void_p
        # The same libraries with the same flags as torch's own import uses, in the same order,
        # so its later dlopen calls only find them loaded.
        global_deps = package / "lib" / "libtorch_global_deps.so"
        if global_deps.exists():
            dlopen(str(global_deps).encode(), os.RTLD_NOW | os.RTLD_GLOBAL)
        for extension in glob.glob(str(package / "_C.*.so")):
            dlopen(extension.encode(), sys.getdlopenflags())
    except (OSError, AttributeError, ValueError):
        pass  # only a speed-up: torch's own import does the real work


def prepare_job(source: str, *, config: str | None, base_model: str | None, trust_pickle: bool, fixes, progress: Progress,
                labels: str | None = None, recipe: str | None = None, libraries: bool = True,
                dictionary: str | None = None):
    """Open, detect (unless the user chose a `recipe`), configure and plan with the user's fixes (and a
    classification head's labels file, a speech recognition model's dictionary); `libraries=False`: without importing torch or transformers
    (core.library_guard.NeedsLibraries when that cannot be done)."""
    from ...core.conversion import prepare

    return prepare(source, config=config or None, base_model=base_model or None, labels=labels or None,
                   mapping=fixes, trust_pickle=trust_pickle, progress=progress, recipe=recipe or None,
                   libraries=libraries, dictionary=dictionary or None)


def convert_job(prepared, out: str, *, force: bool, progress: Progress):
    """Write the converted folder; a non-empty folder is replaced only when `force` says so
    (the core raises OutputNotEmpty otherwise, and the window asks)."""
    from ...core.conversion import convert

    return convert(prepared, Path(out).expanduser().absolute(), force=force, progress=progress)


def load_mapping_job(path: str):
    from ...core.planning.mapping_file import Overrides

    return Overrides.load(path)


def save_mapping_job(path: str, fixes) -> str:
    try:
        fixes.save(path)
    except OSError as exc:
        raise BadInput(f"{path}: cannot write the mapping file ({exc.strerror or exc})") from None
    return path


@dataclass(frozen=True)
class Audition:
    sides: Any  # core.verification.Sides: kept to compare the next clip without loading again
    comparison: Any  # core.comparison.Comparison of the one clip
    opened_sides: bool  # the models were loaded for this comparison
    clip: Any  # core.audio.Clip compared: the whole clip, or the segment of it that was read


ORIGINAL_BACKEND = "reference"  # Speechport's own implementation of the original model, as `compare` runs by default


def compare_job(clip, *, segment: tuple[float, float] | None = None, sides=None, checkpoint=None, detection=None,
                base_model=None, converted=None, tolerance: float, progress: Progress,
                backend: str = ORIGINAL_BACKEND, dictionary=None) -> Audition:
    """What `speechport compare` does for one clip: open both models (unless `sides` are given), run
    them. With `segment` (start, end in seconds) that part of the clip is read, checked and compared."""
    from transformers.utils import logging

    from ...core.conversion import open_sides
    from ...core.proof.audio import load_clip
    from ...core.proof.verification import compare_clips

    if segment is not None:
        progress.stage("reading the part of the clip to compare")
        start, end = segment
        clip = load_clip(clip.path, channels=clip.channel_policy, start=start, duration=end - start)
    logging.disable_progress_bar()  # the window shows its own progress; these bars would only clutter a terminal
    opened = sides is None
    if opened:
        sides = open_sides(checkpoint, converted, base_model=base_model, backend=backend,
                           detection=detection, progress=progress, dictionary=dictionary)
    comparison = compare_clips(sides, [clip], tolerance=tolerance, channels=clip.channel_policy, progress=progress)
    return Audition(sides, comparison, opened, clip)


def install_witness_job(name: str, *, progress: Progress):
    """`speechport witness install NAME`: the genuine library's environment, whole or not at all."""
    from ...core.witnesses import environments

    return environments.install(name, progress=progress)
