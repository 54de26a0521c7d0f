"""The window stays responsive by construction: opening, converting and comparing run on worker
threads, never on the GUI thread. Proven by structure, not by timing (`gui_thread_guard.py`): every
window test fails if model code, bulk file I/O or a heavy core call starts on the GUI thread; here the
tripwires are shown to see the real work on the workers, and to catch it when it is moved."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from speechport.gui.workspace import workers  # noqa: E402

from conftest import CONFORMER_SHAW  # noqa: E402
from gui_support import choose_clip, compare, open_audition, wait_open  # noqa: E402
from support import checkpoint_path  # noqa: E402

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"


def open_convert_and_compare(qtbot, make_window, tmp_path) -> str:
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    window.convert()
    qtbot.waitUntil(lambda: not window.busy() and window.result is not None)
    page = open_audition(qtbot, window)
    choose_clip(qtbot, page, SPEECH)
    return compare(qtbot, page)


def test_opening_converting_and_comparing_run_on_workers(make_window, qtbot, tmp_path, gui_thread_guard):
    assert open_convert_and_compare(qtbot, make_window, tmp_path).startswith("✓ pass")
    # The tripwires saw every kind of heavy work — on the workers — and none on the GUI thread.
    assert gui_thread_guard.seen_on_workers >= {"bulk file", "model", "heavy"}
    assert gui_thread_guard.trips == []


def run_tasks_on_the_gui_thread(pool, task):
    """What moving the work onto the GUI thread looks like: the task runs where it is started."""
    task.run()
    return task


def test_work_moved_onto_the_gui_thread_fails_the_test(make_window, qtbot, tmp_path, gui_thread_guard, monkeypatch):
    monkeypatch.setattr(workers, "start", run_tasks_on_the_gui_thread)
    open_convert_and_compare(qtbot, make_window, tmp_path)
    trips = "\n".join(gui_thread_guard.trips)
    # Opening the checkpoint, writing the converted weights and running both models are each caught,
    # with the window's code that started them on the stack.
    assert "opened " + str(checkpoint_path("cs_s64")) in trips
    assert "model.safetensors on the GUI thread" in trips
    assert "ran Wav2Vec2BertModel.forward on the GUI thread" in trips
    assert "gui/workspace/workers.py" in trips and "gui/window/main_window.py" in trips
    failure = gui_thread_guard.failure()
    assert failure is not None and failure.startswith(f"{len(gui_thread_guard.trips)} time(s) the window did heavy work")
    gui_thread_guard.trips.clear()  # shown to fail; this test itself passes
