"""The window at 1024×700 with the defaults a new user gets — the message bar showing what was just done,
the log as it starts — has room for its work: the mapping table shows ten rows and more, the demo's
verdict is read without scrolling, a diarization head's speaker lanes are whole. The log is one line
until asked for (a "Show log" toggle reached with the keyboard), and stays as the user left it
(offscreen, geometry measured)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QRect, QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QPlainTextEdit, QScrollArea, QToolButton, QWidget  # noqa: E402

from speechport.core.demo import DEMO_CHECKPOINT, DEMO_CLIPS  # noqa: E402
from speechport.gui.window.main_window import LOG_SHOWN_SETTING  # noqa: E402

from conftest import S3PRL  # noqa: E402
from gui_support import choose_clip, compare, convert_button, message, open_audition, wait_idle, wait_open  # noqa: E402

SMALL = (1024, 700)
LEAST_TABLE_ROWS = 10
# Qt's own default on a bare X server, and what desktops usually set (GNOME's and KDE's 10-11 pt).
FONT_POINTS = (9, 10, 11)


@pytest.fixture(params=FONT_POINTS, ids=[f"{points}pt" for points in FONT_POINTS])
def font_points(request, qapp):
    """The application's font at a size people have, for the window made in the test."""
    previous = qapp.font()
    font = qapp.font()
    font.setPointSize(request.param)
    qapp.setFont(font)
    yield request.param
    qapp.setFont(previous)


def small(qtbot, window) -> None:
    window.resize(*SMALL)
    qtbot.waitUntil(lambda: window.size().toTuple() == SMALL)
    qtbot.wait(20)  # the new layout applied


def convert_in_window(qtbot, window) -> None:
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.result is not None or not window.busy())
    assert window.result is not None, message(window)
    wait_idle(qtbot, window)
    assert message(window).startswith("Converted ")  # the message bar shows it, as a new user sees it


def rows_in_view(table) -> int:
    """Rows of the table seen whole, without scrolling."""
    bottom = table.viewport().height()
    return sum(1 for row in range(table.model().rowCount())
               if table.rowViewportPosition(row) >= 0 and table.rowViewportPosition(row) + table.rowHeight(row) <= bottom)


def inside(widget: QWidget, area: QScrollArea) -> bool:
    """The widget is shown whole in the scroll area's viewport, as it is scrolled now."""
    viewport = area.viewport()
    top_left = widget.mapTo(viewport, widget.rect().topLeft())
    return viewport.rect().contains(QRect(top_left, widget.size()))


def test_the_log_is_one_line_until_asked_for_and_stays_as_left(make_window, qtbot, settings):
    window = make_window()
    log = window.findChild(QPlainTextEdit, "logPane")
    toggle = window.findChild(QToolButton, "logToggle")
    hide = window.findChild(QToolButton, "logHide")
    last = window.findChild(QLabel, "logLastLine")
    assert not window.act_show_log.isChecked() and not log.isVisible() and not window.log_box.isVisible()
    # The one line lives in the status bar: it takes no height of its own.
    assert toggle.isVisible() and toggle.text() == "Show log" and toggle.focusPolicy() & Qt.FocusPolicy.TabFocus
    assert window.statusBar().isAncestorOf(toggle) and window.statusBar().isAncestorOf(last)
    window.log("Opened something")
    assert last.isVisible() and last.text().endswith("  Opened something")
    assert "Opened something" in log.toPlainText()  # all of it is kept while the log is one line

    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)  # where shortcuts reach
    toggle.setFocus()
    qtbot.keyClick(toggle, Qt.Key.Key_Space)  # the keyboard opens it
    assert window.act_show_log.isChecked() and log.isVisible() and hide.isVisible() and not toggle.isVisible()
    qtbot.waitUntil(lambda: log.height() > 4 * log.fontMetrics().lineSpacing())
    settings.sync()
    assert QSettings(settings.fileName(), QSettings.Format.IniFormat).value(LOG_SHOWN_SETTING, type=bool)
    hide.setFocus()
    qtbot.keyClick(hide, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert not window.act_show_log.isChecked() and not log.isVisible() and toggle.isVisible()
    window.act_show_log.trigger()  # View ▸ Show log
    assert log.isVisible()
    window.close()

    again = make_window()  # on the same settings: as the user left it
    assert again.act_show_log.isChecked() and again.findChild(QPlainTextEdit, "logPane").isVisible()
    assert not again.findChild(QToolButton, "logToggle").isVisible()


def test_the_mapping_table_shows_ten_rows_at_1024x700_with_the_defaults(make_window, qtbot, tmp_path, font_points):
    window = make_window(source=DEMO_CHECKPOINT, output=tmp_path / "demo-hf")
    wait_open(qtbot, window)
    small(qtbot, window)
    convert_in_window(qtbot, window)
    qtbot.wait(20)
    assert window.message_bar.isVisible()
    assert rows_in_view(window.table) >= LEAST_TABLE_ROWS


def test_the_demo_verdict_is_read_without_scrolling_at_1024x700(make_window, qtbot, tmp_path, font_points):
    window = make_window(source=DEMO_CHECKPOINT, output=tmp_path / "demo-hf")
    wait_open(qtbot, window)
    small(qtbot, window)
    convert_in_window(qtbot, window)
    page = open_audition(qtbot, window)
    choose_clip(qtbot, page, DEMO_CLIPS[0])
    assert compare(qtbot, page).startswith("✓ pass")
    qtbot.wait(20)
    assert window.message_bar.isVisible()
    scroll = page.findChild(QScrollArea, "comparisonScroll")
    assert scroll.verticalScrollBar().value() == 0
    # The verdict, its sentence in plain words and the numbers it stands on.
    for name in ("compareVerdict", "compareSentence", "compareMetrics"):
        assert inside(page.findChild(QWidget, name), scroll), name


def test_the_speaker_lanes_are_whole_at_1024x700(make_window, qtbot, tmp_path, font_points):
    window = make_window(source=S3PRL / "sd" / "best-states-dev.ckpt", base_model=S3PRL / "base_model",
                         output=tmp_path / "sd-hf")
    wait_open(qtbot, window)
    small(qtbot, window)
    convert_in_window(qtbot, window)
    page = open_audition(qtbot, window)
    choose_clip(qtbot, page, S3PRL / "audio" / "fox_16k.wav")
    assert compare(qtbot, page).startswith("✓ pass")
    qtbot.wait(20)
    timeline = page.findChild(QScrollArea, "timelineScroll")
    activity = page.timeline.activity
    assert activity.isVisible() and timeline.verticalScrollBar().value() == 0
    assert inside(activity, timeline)  # both models' lanes for every speaker, and the waveform above them
    assert inside(page.timeline.waveform, timeline)
    assert activity.getPlotItem().getViewBox().height() >= activity.plot_height - 2
