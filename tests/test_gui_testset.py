"""The Audition tab's test-set view: a whole set compared in the background, shown as it goes.

Every test here runs under the GUI-thread guard (conftest.py): reading the set, starting the workers
and copying the report happen on workers, never on the window's thread.
"""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QApplication,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QToolButton,
    QWidget,
)

from conftest import CONFORMER_SHAW, S3PRL  # noqa: E402
from gui_support import drop, open_audition  # noqa: E402
from support import checkpoint_path  # noqa: E402
from testset_support import UNREADABLE, build_clip_set, results  # noqa: E402

CONTROLS = {"auditionModeClip": QToolButton, "auditionModeTestset": QToolButton, "testsetPath": QLineEdit,
            "testsetPathBrowse": QToolButton, "testsetWorkers": QSpinBox, "testsetRunButton": QPushButton,
            "testsetCancelButton": QPushButton, "testsetProgress": QProgressBar, "testsetExportButton": QPushButton,
            "testsetReason": QLabel, "testsetHistogram": QWidget, "testsetVerdict": QLabel,
            "testsetWorstTable": QTableWidget}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.core.conversion import convert, prepare

    return convert(prepare(checkpoint_path("cs_s64")), tmp_path_factory.mktemp("gui-testset") / "cs_s64").output


def open_testset(qtbot, window, converted):
    page = open_audition(qtbot, window, converted)
    qtbot.mouseClick(page.findChild(QToolButton, "auditionModeTestset"), Qt.MouseButton.LeftButton)
    assert page.testset_mode()
    qtbot.waitUntil(page.testset.isVisible)
    return page, page.testset


def run_and_wait(qtbot, view):
    run = view.findChild(QPushButton, "testsetRunButton")
    assert run.isEnabled(), view.reason.text()
    qtbot.mouseClick(run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.busy(), timeout=600_000)


def test_a_set_runs_in_the_background_fills_in_as_results_come_and_opens_a_clip(make_window, qtbot, answers,
                                                                                 converted, tmp_path):
    clips = build_clip_set(tmp_path / "set")
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page, view = open_testset(qtbot, window, converted)
    for name, kind in CONTROLS.items():
        assert window.findChild(kind, name) is not None, name
    run = view.findChild(QPushButton, "testsetRunButton")
    assert not run.isEnabled() and view.reason.text().startswith("Choose a test set")

    drop(view, clips)  # dropped on the view, as from a file manager
    assert view.dataset() == str(clips) and run.isEnabled()
    view.workers_spin.setValue(2)
    arrivals = []
    view.feed.arrived.connect(lambda record, done, total: arrivals.append((record["key"], done, total)))
    run_and_wait(qtbot, view)

    # Each clip's result reached the window as it came, one at a time, before the summary.
    assert [done for _, done, _ in arrivals] == list(range(1, 11)) and {total for _, _, total in arrivals} == {10}
    report = clips.parent / "set-report"  # beside the set
    lines = results(report)
    assert {key for key, _, _ in arrivals} == set(lines)
    summary = json.loads((report / "summary.json").read_text())
    assert summary["run"]["workers"] == 2 and summary["verdict"] == "pass"
    assert view.verdict.text().startswith("Pass: on every one of the 7 clips compared")
    assert view.summary_labels["clips"].text() == "10 of 10: 7 passed, 0 failed, 3 not compared"
    # An encoder answers no class, speaker or word: those rows are not there to read as dashes.
    assert view.summary_labels["clips"].isVisibleTo(view) and view.summary_labels["spread"].isVisibleTo(view)
    assert not any(view.summary_labels[key].isVisibleTo(view)
                   for key in ("agreement", "accuracy", "eer", "speakers", "transcripts"))
    assert view.findChild(QProgressBar, "testsetProgress").full_text().startswith("pass · 10 clips · ")
    assert sum(view.histogram.counts) == 7  # the clips compared, in the report's bins
    table = view.findChild(QTableWidget, "testsetWorstTable")
    worst = [clip["key"] for clip in summary["worst_clips"]]
    assert [table.item(row, 0).text() for row in range(table.rowCount())] == worst
    assert not set(worst) & set(UNREADABLE)

    # Double-click the worst clip: the clip view reads it, ready to hear and compare.
    first = table.item(0, 0)
    table.scrollToItem(first)
    rect = table.visualItemRect(first)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # as a double-click begins
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert not page.testset_mode()
    qtbot.waitUntil(lambda: page.clip is not None and str(page.clip.path) == lines[worst[0]]["path"])
    assert page.chooser.path() == lines[worst[0]]["path"]

    # Back to the set: what it found is still shown, and the report exports as the page it wrote.
    page.set_mode(True)
    answers.save_file = tmp_path / "sent.html"
    qtbot.mouseClick(view.findChild(QPushButton, "testsetExportButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: (tmp_path / "sent.html").exists())
    assert (tmp_path / "sent.html").read_text() == (report / "report.html").read_text()


def test_cancel_keeps_what_is_done_and_run_again_compares_only_the_rest(make_window, qtbot, converted, tmp_path):
    clips = tmp_path / "parts"
    clips.mkdir()
    shutil.copy(CONFORMER_SHAW / "audio/s_speech_16k_mono.wav", clips / "speech.wav")
    (clips / "parts.csv").write_text("file_name,start,duration\n" + "".join(
        f"speech.wav,{0.01 * i:.2f},0.5\n" for i in range(40)))
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page, view = open_testset(qtbot, window, converted)
    view.choose_dataset(clips / "parts.csv")
    view.workers_spin.setValue(1)
    qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(view.records) >= 3, timeout=600_000)
    cancel = view.findChild(QPushButton, "testsetCancelButton")
    assert cancel.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_Escape)  # Esc cancels, as it does a conversion or a comparison
    qtbot.waitUntil(lambda: not view.busy(), timeout=600_000)
    kept = view.outcome.summary["done"]
    assert 3 <= kept < 40 and view.outcome.summary["complete"] is False
    assert view.progress_bar.full_text() == f"Stopped · {kept} of 40 clips kept"
    assert view.verdict.text().startswith("Stopped before every clip was compared")
    assert view.findChild(QPushButton, "testsetExportButton").isEnabled()  # the page of what is done

    run_and_wait(qtbot, view)
    summary = view.outcome.summary
    assert summary["complete"] is True and summary["passed"] == 40
    assert summary["run"]["resumed"] == kept and summary["run"]["compared_now"] == 40 - kept


def test_the_mode_is_reached_from_the_keyboard_and_the_view_is_readable_at_1024x700(make_window, qtbot, converted,
                                                                                   tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    for name in ("fox_16k", "go_short_16k", "commands_44k_stereo"):
        shutil.copy(S3PRL / f"audio/{name}.wav", clips / f"{name}.wav")
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted)
    if window.act_show_log.isChecked():
        window.act_show_log.trigger()
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1024, 700))
    qtbot.waitUntil(page.isVisible)
    page.chooser.field.edit.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is page.chooser.field.edit)
    qtbot.keyClick(page.chooser.field.edit, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert page.testset_mode()
    view = page.testset
    # The switch leads the first row of the view shown: the set's row now.
    assert view.set_row.indexOf(page.mode_switch) == 0
    view.choose_dataset(clips)
    view.workers_spin.setValue(1)
    run_and_wait(qtbot, view)
    qtbot.wait(50)
    assert view.verdict.text().startswith("Pass: on every one of the 3 clips compared")
    # Everything the view shows is inside the window and large enough to read.
    for name, kind in CONTROLS.items():
        widget = window.findChild(kind, name)
        if widget.isVisible():
            corner = widget.mapTo(window, widget.rect().bottomRight())
            assert corner.x() <= window.width() and corner.y() <= window.height(), name
    assert view.histogram.getPlotItem().getViewBox().height() >= 80
    table = view.findChild(QTableWidget, "testsetWorstTable")
    assert table.rowCount() == 3 and table.verticalScrollBar().maximum() == 0  # every row of it in view
    shown = [key for key, label in view.summary_labels.items() if label.isVisible()]
    assert shown == ["clips", "spread", "folder"]  # an encoder answers no class, speaker or word
    for key in shown:
        label = view.summary_labels[key]
        assert label.height() >= label.fontMetrics().height()
    view.dataset_field.edit.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is view.dataset_field.edit)
    qtbot.keyClick(view.dataset_field.edit, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert not page.testset_mode() and page.clip_row.indexOf(page.mode_switch) == 0
