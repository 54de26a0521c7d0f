"""One kind of background work (opening, converting, comparing, …) with at most one task at a time.

Every task of the window starts here, and this is the only place that knows its lifecycle:
starting a task cancels the one it replaces; an outcome that arrives after its task was replaced
or dropped (another checkpoint was opened) is ignored; and errors are routed the same way
everywhere — `Cancelled` is a line in the log, a `SpeechportError` a readable sentence in the
message bar, anything else the one-line internal error. A panel's own handler runs first and may
take an error over (a question to ask, a progress bar to reset) by returning True.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from ...core.errors import Cancelled, SpeechportError
from . import workers
from .messages import Messages
from .task_runner import TaskRunner


@dataclass(frozen=True)
class _Handlers:
    succeeded: Callable[[workers.Task, Any], None]
    failed: Callable[[workers.Task, BaseException], bool] | None
    progressed: Callable[[workers.Task, Any], None] | None
    stale: Callable[[Any], None] | None


class TaskSlot(QObject):
    busyChanged = Signal(bool)

    def __init__(self, name: str, runner: TaskRunner, messages: Messages, *, doing: str, refusal: str = "",
                 parent: QObject | None = None):
        """`name` says what was cancelled ("Opening"), `doing` what was going on in an internal error
        ("opening the checkpoint"), `refusal` goes before a SpeechportError's sentence ("Not compared: ")."""
        super().__init__(parent)
        self.name = name
        self.doing = doing
        self.refusal = refusal
        self._runner = runner
        self._messages = messages
        self._task: workers.Task | None = None
        self._handlers: dict[workers.Task, _Handlers] = {}  # until each task's outcome arrives

    @property
    def task(self) -> workers.Task | None:
        """The task whose outcome will be handled, or None."""
        return self._task

    def busy(self) -> bool:
        return self._task is not None

    def start(
        self,
        task: workers.Task,
        succeeded: Callable[[workers.Task, Any], None],
        *,
        failed: Callable[[workers.Task, BaseException], bool] | None = None,
        progressed: Callable[[workers.Task, Any], None] | None = None,
        stale: Callable[[Any], None] | None = None,
    ) -> workers.Task:
        """Run `task` in place of this slot's current one (which is cancelled and whose outcome is
        ignored). `failed` returns True when it dealt with the error itself; `stale` releases what
        a replaced task returned (a background hash, say)."""
        self._release()
        self._task = task
        self._handlers[task] = _Handlers(succeeded, failed, progressed, stale)
        self._runner.run(task, self._succeeded, self._failed, self._progressed)
        self.busyChanged.emit(True)
        return task

    def cancel(self) -> bool:
        """Ask the running task to stop; its outcome (usually `Cancelled`) is still handled.
        False when nothing runs or it was asked already."""
        if self._task is None or self._task.cancelled:
            return False
        self._task.cancel()
        return True

    def drop(self) -> None:
        """Cancel the running task and ignore whatever it returns."""
        if self._release():
            self.busyChanged.emit(False)

    def _release(self) -> bool:
        if self._task is None:
            return False
        self._task.cancel()
        self._task = None
        return True

    # -- outcomes, on the GUI thread --------------------------------------------------------------

    def _succeeded(self, task: workers.Task, result) -> None:
        handlers = self._handlers.pop(task, None)
        if task is not self._task:
            if handlers is not None and handlers.stale is not None:
                handlers.stale(result)
            return
        self._task = None
        handlers.succeeded(task, result)
        self.busyChanged.emit(self.busy())  # the handler may have started the next task

    def _failed(self, task: workers.Task, error: BaseException) -> None:
        handlers = self._handlers.pop(task, None)
        if task is not self._task:
            return
        self._task = None
        if handlers.failed is None or not handlers.failed(task, error):
            self.report(task, error)
        self.busyChanged.emit(self.busy())

    def _progressed(self, task: workers.Task, event) -> None:
        handlers = self._handlers.get(task)
        if task is self._task and handlers is not None and handlers.progressed is not None:
            handlers.progressed(task, event)

    def report(self, task: workers.Task, error: BaseException) -> None:
        """What every panel says about a failed task."""
        if isinstance(error, Cancelled):
            self._messages.log(f"{self.name} cancelled.")
        elif isinstance(error, SpeechportError):
            self._messages.error(f"{self.refusal}{error}")
        else:
            self._messages.internal_error(error, task.traceback, self.doing)
