"""What the window says to guide the user: long problem text kept to two lines until asked for,
where the output folder is when no file manager opens it, a suggested folder that can be written
to, the shortcuts list and the getting-started guide."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QDesktopServices, QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QLabel, QLineEdit, QMessageBox, QPushButton, QScrollArea, QToolButton  # noqa: E402

from speechport.core.demo import DEMO_CHECKPOINT  # noqa: E402
from speechport.gui.workspace import workspace as workspace_module  # noqa: E402

from gui_support import convert_button, message, wait_idle, wait_open  # noqa: E402
from support import checkpoint_path, config_path  # noqa: E402


def line_height(label: QLabel) -> int:
    return label.fontMetrics().lineSpacing()


def test_dozens_of_problems_show_two_lines_until_show_all(make_window, qtbot, tmp_path):
    # cs_s48's config contradicts cs_s64: four config conflicts and dozens of rows that do not fit.
    window = make_window(source=checkpoint_path("cs_s64"), config=config_path("cs_s48"), output=tmp_path / "out")
    wait_open(qtbot, window)
    plan = window.prepared.plan
    assert len(plan.problem_lines()) > 40
    text = window.findChild(QLabel, "problemsText")
    view = window.findChild(QScrollArea, "problemsView")
    toggle = window.findChild(QToolButton, "problemsShowAll")
    assert text.isVisible() and text.text().splitlines()[1:] == plan.problem_lines()  # all of it, to select and copy
    assert text.text().startswith(f"{len(plan.problems()) + len(plan.config_conflicts)} problem(s) stop the conversion:")
    qtbot.waitUntil(toggle.isVisible)
    assert toggle.text() == "Show all" and view.height() < 3 * line_height(text)
    table_height = window.table.height()

    qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.height() > 8 * line_height(text))
    assert toggle.text() == "Show less"
    assert window.table.height() > 0.3 * table_height  # the rest scrolls: the table keeps room
    qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.height() < 3 * line_height(text))

    window.inputs.config_field.commit("")  # the contradiction goes: so does the notice
    wait_open(qtbot, window)
    assert window.prepared.plan.ok and not text.isVisible()


def test_a_long_message_shows_two_lines_until_show_all(make_window, qtbot):
    window = make_window()
    bar = window.message_bar
    long_text = "Not opened: " + "; ".join(f"module_{n}.SomeClass" for n in range(80))
    window.messages.error(long_text)
    toggle = bar.findChild(QToolButton, "messageShowAll")
    qtbot.waitUntil(toggle.isVisible)
    assert message(window) == long_text  # the whole text stays in the label, to select and copy
    assert bar.text.height() < 3 * line_height(bar.text)
    qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bar.text.height() > 3 * line_height(bar.text))
    window.messages.error("Short.")  # a new message starts collapsed, and a short one needs no button
    qtbot.waitUntil(lambda: not toggle.isVisible() and bar.text.height() < 2 * line_height(bar.text))


def test_open_folder_without_a_file_manager_says_where_the_folder_is(make_window, qtbot, tmp_path, monkeypatch):
    out = tmp_path / "converted"
    window = make_window(source=checkpoint_path("cs_s64"), output=out)
    wait_open(qtbot, window)
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.result is not None)
    asked = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: asked.append(url.toLocalFile()) and False)
    window.act_open_folder.trigger()
    assert asked == [str(out)]
    assert message(window) == f"No file manager opened the folder. It is here:\n{out}"
    assert window.findChild(QLabel, "messageText").textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    qtbot.mouseClick(window.message_bar.button("copyPathButton"), Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == str(out)


def test_the_suggested_folder_is_in_the_home_folder_when_the_checkpoints_cannot_be_written(
        make_window, qtbot, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    source = Path(shutil.copy(checkpoint_path("cs_s64"), shared / "model.pt"))
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    access = os.access  # a read-only share; chmod alone would not stop root, who runs some test machines
    monkeypatch.setattr(workspace_module.os, "access",
                        lambda path, mode, **kw: False if Path(path) == shared and mode == os.W_OK else access(path, mode, **kw))
    window = make_window(source=source)
    wait_open(qtbot, window)
    assert window.findChild(QLineEdit, "outputPath").text() == str(home / "speechport-output" / "model-hf")
    info = window.findChild(QLabel, "outputInfo")
    assert info.text() == "suggested: the checkpoint's folder is read-only"
    assert "in your home folder" in info.toolTip()
    assert convert_button(window).isEnabled()

    window.open_source(checkpoint_path("cs_s48"))  # a folder that can be written to: beside it, as always
    wait_open(qtbot, window)
    assert window.findChild(QLineEdit, "outputPath").text() == str(checkpoint_path("cs_s48").with_name("conformer_shaw_fs2-hf"))
    assert info.text() == "suggested"


def test_the_shortcuts_list_has_play_pause(make_window, qtbot):
    window = make_window()
    window.act_shortcuts.trigger()
    box = window.findChild(QMessageBox, "shortcutsDialog")
    qtbot.waitUntil(box.isVisible)
    assert "Play / Pause the clip (Audition)</td><td><b>Ctrl+Space" in box.text()
    assert "Apply confident suggestions" in box.text()
    box.close()


def test_getting_started_walks_through_the_steps_with_the_demo_one_click_away(make_window, qtbot):
    window = make_window()
    assert window.findChild(QPushButton, "emptyGuideButton").isVisible()  # on the empty mapping page too
    help_menu = next(action.menu() for action in window.menuBar().actions() if action.text() == "&Help")
    assert help_menu.actions()[0] is window.act_getting_started
    qtbot.mouseClick(window.findChild(QPushButton, "emptyGuideButton"), Qt.MouseButton.LeftButton)
    box = window.findChild(QMessageBox, "gettingStartedDialog")
    qtbot.waitUntil(box.isVisible)
    text = box.text()
    assert [text.index(step) for step in ("<b>Open</b>", "<b>Fix</b>", "<b>Convert</b>", "<b>Audition</b>")] == sorted(
        text.index(step) for step in ("<b>Open</b>", "<b>Fix</b>", "<b>Convert</b>", "<b>Audition</b>"))
    qtbot.mouseClick(box.findChild(QPushButton, "gettingStartedDemoButton"), Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.prepared is not None and window.prepared.source == DEMO_CHECKPOINT.resolve()
    qtbot.waitUntil(lambda: not any(box.isVisible() for box in window.findChildren(QMessageBox)))
