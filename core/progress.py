"""A Qt-free progress and cancel handle shared by the CLI's progress bar and the window's worker.

The core reports through `Progress` and polls `check()` between steps; the callback is throttled
so a tight loop over thousands of tensors does not flood a terminal or the Qt event queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    items_done: int
    items_total: int
    bytes_done: int
    bytes_total: int
    elapsed: float  # seconds since the stage started
    message: str = ""

    @property
    def fraction(self) -> float:
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        if self.items_total:
            return min(1.0, self.items_done / self.items_total)
        return 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the stage's average rate so far, or None while that rate is unknown."""
        fraction = self.fraction
        if fraction <= 0.0 or self.elapsed < 0.2:
            return None
        return self.elapsed * (1.0 - fraction) / fraction


class Progress:
    """Reports progress to an optional callback and carries a thread-safe cancel flag."""

    def __init__(self, callback: Callable[[ProgressEvent], None] | None = None, min_interval: float = 0.05):
        self._callback = callback
        self._min_interval = min_interval
        self._cancel = threading.Event()
        self._stage = ""
        self._items = self._items_total = self._bytes = self._bytes_total = 0
        self._started = time.monotonic()
        self._last_emit = 0.0
        self.messages: list[str] = []

    # -- cancel ---------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise `Cancelled` if cancellation was requested; call between units of work."""
        if self._cancel.is_set():
            raise Cancelled()

    # -- progress -------------------------------------------------------------------------
    def stage(self, name: str, items_total: int = 0, bytes_total: int = 0) -> None:
        self._stage = name
        self._items = self._bytes = 0
        self._items_total = items_total
        self._bytes_total = bytes_total
        self._started = time.monotonic()
        self._emit(force=True)

    def advance(self, items: int = 0, nbytes: int = 0) -> None:
        self._items += items
        self._bytes += nbytes
        self._emit(force=False)

    def log(self, message: str) -> None:
        self.messages.append(message)
        self._emit(force=True, message=message)

    def finish(self) -> None:
        self._items, self._bytes = self._items_total, self._bytes_total
        self._emit(force=True)

    def _emit(self, force: bool, message: str = "") -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last_emit < self._min_interval:
            return
        self._last_emit = now
        self._callback(
            ProgressEvent(
                stage=self._stage,
                items_done=self._items,
                items_total=self._items_total,
                bytes_done=self._bytes,
                bytes_total=self._bytes_total,
                elapsed=now - self._started,
                message=message,
            )
        )


def ensure(progress: Progress | None) -> Progress:
    """Callers may pass None when they do not care; the core always gets a handle."""
    return progress if progress is not None else Progress()
