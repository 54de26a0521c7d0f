"""The one place background tasks start: a replaced or dropped task's outcome is ignored, and every
failure is said the same way — a log line, a sentence, or the one-line internal error."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from speechport.core.errors import BadInput, Cancelled  # noqa: E402
from speechport.gui.workspace.messages import Messages  # noqa: E402
from speechport.gui.workspace.task_runner import TaskRunner  # noqa: E402
from speechport.gui.workspace.task_slot import TaskSlot  # noqa: E402
from speechport.gui.workspace.workers import Task  # noqa: E402


class Said:
    """What the slot said, through the same signals the window listens to."""

    def __init__(self, messages: Messages):
        self.log: list[str] = []
        self.shown: list[tuple[str, str]] = []
        self.internal: list[str] = []
        messages.logged.connect(self.log.append)
        messages.shown.connect(lambda kind, text, _buttons: self.shown.append((kind, text)))
        messages.internalError.connect(self.internal.append)


@pytest.fixture
def slot(qtbot):
    runner = TaskRunner()
    messages = Messages()
    slot = TaskSlot("Comparison", runner, messages, doing="comparing", refusal="Not compared: ")
    slot.said = Said(messages)
    slot.runner = runner
    yield slot
    runner.cancel_all()
    runner.wait_for_done(10_000)


def raising(error):
    def job():
        raise error

    return job


def test_a_replaced_task_is_cancelled_and_its_late_result_released_not_shown(slot, qtbot):
    gate = threading.Event()
    shown, released = [], []

    def slow(*, progress):
        gate.wait(10)
        return "first"  # it never looks at the cancel flag: the result arrives anyway

    first = slot.start(Task("first", slow, with_progress=True), lambda task, result: shown.append(result),
                       stale=released.append)
    slot.start(Task("second", lambda: "second"), lambda task, result: shown.append(result))
    assert first.cancelled
    qtbot.waitUntil(lambda: shown == ["second"])
    gate.set()
    qtbot.waitUntil(lambda: not slot.runner.busy())
    assert shown == ["second"] and released == ["first"] and not slot.busy()


def test_a_dropped_task_says_nothing_whatever_it_ends_with(slot, qtbot):
    gate = threading.Event()

    def fails_late():
        gate.wait(10)
        raise RuntimeError("too late to matter")

    busy = []
    slot.busyChanged.connect(busy.append)
    slot.start(Task("late", fails_late), lambda task, result: None)
    slot.drop()
    assert busy == [True, False] and slot.task is None
    gate.set()
    qtbot.waitUntil(lambda: not slot.runner.busy())
    assert slot.said.log == slot.said.shown == slot.said.internal == []


@pytest.mark.parametrize(
    "error, log, shown, internal",
    [
        (Cancelled(), ["Comparison cancelled."], [], []),
        (BadInput("clip.wav: not an audio file"), ["error: Not compared: clip.wav: not an audio file"],
         [("error", "Not compared: clip.wav: not an audio file")], []),
        (RuntimeError("selected index 3 out of range"),
         ["internal error while comparing: RuntimeError: selected index 3 out of range"],
         [("error", "internal error while comparing: RuntimeError: selected index 3 out of range "
                    "(the log has details of what was being done)")],
         ["internal error while comparing: RuntimeError: selected index 3 out of range"]),
    ],
    ids=["cancelled", "bad input", "unexpected"],
)
def test_failures_are_said_the_same_way_everywhere(slot, qtbot, error, log, shown, internal):
    slot.start(Task("compare", raising(error)), lambda task, result: None)
    qtbot.waitUntil(lambda: not slot.busy())
    said = slot.said
    assert (said.log, said.shown, said.internal) == (log, shown, internal)
    assert not any("Traceback" in text for text in said.log + [text for _kind, text in said.shown] + said.internal)


def test_a_panel_may_take_a_failure_over(slot, qtbot):
    seen = []

    def failed(task, error) -> bool:
        seen.append(str(error))
        return isinstance(error, BadInput)  # its own question or message; anything else as usual

    slot.start(Task("convert", raising(BadInput("out: not empty"))), lambda task, result: None, failed=failed)
    qtbot.waitUntil(lambda: not slot.busy())
    slot.start(Task("convert", raising(Cancelled())), lambda task, result: None, failed=failed)
    qtbot.waitUntil(lambda: not slot.busy())
    assert seen == ["out: not empty", str(Cancelled())]
    assert slot.said.shown == [] and slot.said.log == ["Comparison cancelled."]


def test_a_handler_may_start_the_next_task(slot, qtbot):
    results = []

    def again(task, result):
        results.append(result)
        if result == "first":
            slot.start(Task("second", lambda: "second"), again)

    slot.start(Task("first", lambda: "first"), again)
    qtbot.waitUntil(lambda: results == ["first", "second"])
    qtbot.waitUntil(lambda: not slot.busy())
