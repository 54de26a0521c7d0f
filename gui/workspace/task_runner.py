"""Running `workers.Task`s on the window's thread pool, their outcomes handled on the GUI thread.

Panels never call it themselves: they start tasks through a `TaskSlot`, which decides what
becomes of each outcome."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QThreadPool

from . import workers


class TaskRunner(QObject):
    """Every background task of a window: what still runs (`busy`), and cancelling them all."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.tasks: set[workers.Task] = set()

    def run(self, task: workers.Task, on_success, on_failure, on_progress=None) -> workers.Task:
        queued = Qt.ConnectionType.QueuedConnection  # always handled on this (the GUI) thread
        task.succeeded.connect(on_success, queued)
        task.failed.connect(on_failure, queued)
        # Connected after the handlers, so a task still counts as running while they run.
        task.succeeded.connect(self._task_done, queued)
        task.failed.connect(self._task_done, queued)
        if on_progress is not None:
            task.progressed.connect(on_progress, queued)
        self.tasks.add(task)
        return workers.start(self.pool, task)

    def _task_done(self, task, _outcome) -> None:
        self.tasks.discard(task)

    def busy(self) -> bool:
        return bool(self.tasks)

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    def wait_for_done(self, milliseconds: int) -> None:
        self.pool.waitForDone(milliseconds)
