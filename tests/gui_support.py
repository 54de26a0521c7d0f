"""What the window tests do to the window and read from it, as a user would: wait for it, find its
widgets, type keys, drop files, audition a clip."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QPushButton, QTableView

from speechport.gui.mapping.plan_model import Column

from conftest import WAIT_LIMIT_MS

OPEN_TIMEOUT_MS = WAIT_LIMIT_MS  # the first open in a process also imports torch and transformers


def wait_idle(qtbot, window, timeout: int = OPEN_TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: not window.busy() and not window.prepare_wanted, timeout=timeout)


def wait_open(qtbot, window) -> None:
    wait_idle(qtbot, window)
    assert window.prepared is not None, window.message_bar.text.text()


def message(window) -> str:
    """The message bar's text while it is shown."""
    return window.findChild(QLabel, "messageText").text() if window.message_bar.isVisible() else ""


def table(window) -> QTableView:
    return window.findChild(QTableView, "mappingTable")


def convert_button(window) -> QPushButton:
    return window.findChild(QPushButton, "convertButton")


def proxy_index(window, source_key: str, column: Column):
    row = window.model.row_of_source(source_key)
    return window.proxy.mapFromSource(window.model.index(row, column))


def row_of(window, source_key: str):
    return window.model.row_at(window.model.row_of_source(source_key))


def open_editor(qtbot, window, index) -> QLineEdit:
    view = table(window)
    view.setCurrentIndex(index)
    view.edit(index)
    qtbot.waitUntil(lambda: view.findChild(QLineEdit, "keyEditor") is not None
                    and view.findChild(QLineEdit, "keyEditor").isVisible())
    return view.findChild(QLineEdit, "keyEditor")


def press(qtbot, window, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """A keyboard shortcut, typed on the table. Qt acts on a window's shortcuts only while that window is
    the active one, and a window becomes active in its own time (offscreen too): wait for it."""
    if QApplication.activeWindow() is not window:
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    table(window).setFocus()
    qtbot.keyClick(table(window), key, modifiers)


def drop(widget, *paths) -> None:
    """Drag local files onto a widget and drop them there, as from a file manager."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    for event_type in (QDragEnterEvent, QDropEvent):
        event = event_type(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)
        assert event.isAccepted()


# -- the Audition tab ----------------------------------------------------------------------------------


def open_audition(qtbot, window, converted_folder=None):
    """Wait for the checkpoint to open, then show the Audition tab (with the converted folder chosen)."""
    qtbot.waitUntil(lambda: not window.busy(), timeout=OPEN_TIMEOUT_MS)
    assert window.prepared is not None, window.message_bar.text.text()
    page = window.show_audition()
    if converted_folder is not None:
        page.compare_bar.converted_field.commit(str(converted_folder))
    return page


def choose_clip(qtbot, page, path) -> None:
    page.choose_clip(path)
    qtbot.waitUntil(lambda: page.clip is not None and str(page.clip.path) == str(path))


def compare(qtbot, page, timeout: int = OPEN_TIMEOUT_MS) -> str:
    """Press Compare and wait for the verdict (and its plots); returns the verdict's text."""
    button = page.findChild(QPushButton, "compareButton")
    assert button.isEnabled(), page.compare_bar.reason.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.compare_bar.task is None, timeout=timeout)
    if page.comparison is not None:  # the plots follow the verdict in the next turn of the event loop
        qtbot.waitUntil(lambda: page.timeline.comparison is page.comparison.clips[0])
    return page.findChild(QLabel, "compareVerdict").text()


def drag_on_plot(plot, start_seconds: float, end_seconds: float, steps: int = 12) -> None:
    """Press the left button on a time plot at `start_seconds`, move to `end_seconds` and release,
    halfway up the plot, as a mouse does (what pyqtgraph sees as a drag: it drops mouse moves that
    come faster than its rate limit, so they come at a hand's pace)."""
    import pyqtgraph as pg
    from PySide6.QtCore import QEvent, QPoint
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest

    rate = pg.getConfigOption("mouseRateLimit")  # moves a second; 0 or less: no limit
    pause_ms = int(1000 / rate) + 5 if rate > 0 else 0

    view = plot.getPlotItem().getViewBox()
    low, high = view.viewRange()[1]

    def at(seconds: float) -> QPoint:
        return plot.mapFromScene(view.mapViewToScene(QPointF(seconds, (low + high) / 2)))

    viewport = plot.viewport()
    start, end = at(start_seconds), at(end_seconds)
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind, point: QPoint, button, buttons) -> None:
        local = QPointF(point)
        event = QMouseEvent(kind, local, QPointF(viewport.mapToGlobal(point)), button, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)
        QTest.qWait(pause_ms)

    send(QEvent.Type.MouseMove, start, none, none)  # hover first: the item under the mouse knows it
    send(QEvent.Type.MouseButtonPress, start, left, left)
    for step in range(1, steps + 1):
        point = start + (end - start) * (step / steps)
        send(QEvent.Type.MouseMove, point, none, left)
    send(QEvent.Type.MouseButtonRelease, end, left, none)


CLOSENESS = re.compile(r"(?:exactly|to within (less than 0\.000001|[0-9.]+) — (?:far below|within) the ([0-9.]+) tolerance)")


def assert_says_how_close(said: str, max_abs_diff: float, tolerance: float) -> None:
    """A passing comparison's closeness in words, checked against the numbers it came from, whichever of
    its forms the last bits of this run's floats gave ("exactly", "less than 0.000001", "0.000014")."""
    match = CLOSENESS.fullmatch(said)
    assert match, said
    within, stated_tolerance = match.groups()
    if within is None:
        assert max_abs_diff == 0, said
        return
    assert float(stated_tolerance) == tolerance, said
    if within == "less than 0.000001":
        assert 0 < max_abs_diff < 1e-6, said
    else:
        assert float(within) == pytest.approx(max_abs_diff, rel=0.05), said
