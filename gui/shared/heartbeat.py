"""How responsive the window stays: a 10 ms timer whose late ticks measure event-loop stalls.

The largest interval between ticks is the longest the window went without handling events (a
frozen window, from the user's side). Used by the tests, the benchmark and the screenshot script,
which also use `run_until` to wait while the event loop runs normally.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer


class Heartbeat(QObject):
    def __init__(self, interval_ms: int = 10, parent: QObject | None = None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.largest_gap = 0.0  # seconds, since start() or the current phase began
        self.ticks = 0
        self.phases: dict[str, float] = {}
        self._last = 0.0

    def start(self) -> None:
        self.largest_gap = 0.0
        self.ticks = 0
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        self._tick()
        self.timer.stop()
        return self.largest_gap

    @contextmanager
    def phase(self, name: str):
        """Record the largest gap seen while the block runs under `phases[name]` (in seconds)."""
        running = self.timer.isActive()
        if not running:
            self.start()
        else:
            self._tick()
            self.largest_gap = 0.0
        try:
            yield self
        finally:
            self._tick()
            self.phases[name] = self.largest_gap
            if not running:
                self.timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.largest_gap = max(self.largest_gap, now - self._last)
        self._last = now
        self.ticks += 1


def run_until(predicate: Callable[[], bool], timeout_s: float, poll_ms: int = 20) -> bool:
    """Run the event loop until `predicate()` holds or the time is up; True if it held."""
    deadline = time.perf_counter() + timeout_s
    if predicate():
        return True
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(poll_ms)

    def check() -> None:
        if predicate() or time.perf_counter() > deadline:
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()
    return predicate()
