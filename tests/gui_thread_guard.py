"""The window never runs model code or bulk file I/O on its own thread: proven by structure, not by a clock.

While a window test runs, three tripwires watch the GUI thread (QApplication's thread, the main
thread under pytest-qt):
- a global forward pre-hook on every torch module: a model running there;
- an audit hook on `open` (Python's `open`, `os.open`, `io.open_code`): a checkpoint, a weights
  file or a clip opened there, or any file of 1 MiB or more;
- the core's own heavy entry points (`core.heavy_work`): loading models, reading tensors, hashing.

Only what the window's code sets off counts: the trip is recorded when a frame of `speechport.gui`
is on the stack, so a test body that itself reads a fixture or runs the CLI is not blamed. The test
fails at its end with each trip and the stack that led to it.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from pathlib import Path

import speechport.gui

GUI_PACKAGE = str(Path(speechport.gui.__file__).resolve().parent) + os.sep
# Files the window must never open on its own thread, whatever their size: models and clips.
BULK_SUFFIXES = frozenset({".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".wav", ".flac", ".ogg", ".mp3", ".opus"})
BULK_BYTES = 1 << 20


class GuiThreadGuard:
    def __init__(self):
        self.active = False
        self.gui_thread = threading.main_thread().ident
        self.trips: list[str] = []
        self.seen_on_workers: set[str] = set()  # the kinds of work the tripwires saw on other threads
        self._busy = threading.local()  # the hooks' own work (reading source lines for a stack) is not watched

    # -- the decision -------------------------------------------------------------------------------
    def watching(self, kind: str) -> bool:
        if not self.active or getattr(self._busy, "on", False):
            return False
        if threading.get_ident() != self.gui_thread:
            self.seen_on_workers.add(kind)
            return False
        return True

    def trip(self, what: str) -> None:
        frame = sys._getframe(2)
        from_window = False
        probe = frame
        while probe is not None:
            if probe.f_code.co_filename.startswith(GUI_PACKAGE):
                from_window = True
                break
            probe = probe.f_back
        if not from_window:
            return
        self._busy.on = True
        try:
            stack = "".join(traceback.format_stack(frame, limit=20))
        finally:
            self._busy.on = False
        self.trips.append(f"{what} on the GUI thread, from:\n{stack}")

    # -- the tripwires ------------------------------------------------------------------------------
    def audit(self, event: str, args: tuple) -> None:
        if event != "open" or not self.active:
            return
        path = args[0]
        if isinstance(path, int) or path is None:
            return  # an already open descriptor
        try:
            path = os.fsdecode(path)
        except TypeError:
            return
        self._busy.on = True
        try:
            bulky = Path(path).suffix.lower() in BULK_SUFFIXES or _size(path) >= BULK_BYTES
        finally:
            self._busy.on = False
        if bulky and self.watching("bulk file"):
            self.trip(f"opened {path}")

    def forward(self, module, _inputs) -> None:
        if self.watching("model"):
            self.trip(f"ran {type(module).__name__}.forward")

    def heavy(self, what: str) -> None:
        if self.watching("heavy"):
            self.trip(what)

    def failure(self) -> str | None:
        """What fails the test, or None: every trip, with the stack that led to it."""
        if not self.trips:
            return None
        return f"{len(self.trips)} time(s) the window did heavy work on its own thread:\n\n" + "\n".join(self.trips)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # not there yet: a file being created is judged by its suffix


GUARD = GuiThreadGuard()
_installed = False


def install() -> GuiThreadGuard:
    """Set the tripwires once per process (an audit hook cannot be removed); `GUARD.active` arms them."""
    global _installed
    if not _installed:
        import torch

        from speechport.core import heavy_work

        sys.addaudithook(GUARD.audit)
        torch.nn.modules.module.register_module_forward_pre_hook(GUARD.forward)
        heavy_work.add_check(GUARD.heavy)
        _installed = True
    return GUARD
