"""The window from the keyboard alone (offscreen, real key events): Tab leaves the tables and their
focused cell shows, every Alt mnemonic is one control's, path fields apply on Enter only, Compare
has its keys, the Audition tab takes the focus, and the demo clip menu opens on its first clip."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QKeySequence  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QAbstractButton,
    QApplication,
    QGroupBox,
    QLabel,
    QMessageBox,
    QTabBar,
    QWidget,
)

from speechport.core.demo import DEMO_CLIPS  # noqa: E402
from speechport.gui.audition.compare_bar import COMPARE_KEYS  # noqa: E402
from speechport.gui.shared.widgets import FocusFrameMixin  # noqa: E402

from conftest import CONFORMER_SHAW, S3PRL  # noqa: E402
from gui_support import choose_clip, compare, message, open_audition, table, wait_idle, wait_open  # noqa: E402
from support import checkpoint_path, config_path  # noqa: E402

SHORT = CONFORMER_SHAW / "audio" / "s_short_0p3s_16k.flac"
ALT = Qt.KeyboardModifier.AltModifier


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.core.conversion import convert, prepare

    return convert(prepare(checkpoint_path("cs_s64")), tmp_path_factory.mktemp("keyboard") / "cs_s64").output


def focused() -> QWidget | None:
    return QApplication.focusWidget()


# -- the tables -----------------------------------------------------------------------------------


def frame_pixels(view, index) -> set[str]:
    """The colours along the left edge of a cell's frame, as drawn now."""
    image = view.viewport().grab().toImage()
    rect = view.visualRect(index)
    x = rect.left() + FocusFrameMixin.FRAME_WIDTH // 2
    return {image.pixelColor(x, y).name() for y in range(rect.top() + 3, rect.bottom() - 2)}


def assert_tab_leaves_and_cell_is_framed(qtbot, view) -> None:
    index = view.model().index(1, 0)
    view.setFocus(Qt.FocusReason.TabFocusReason)
    view.setCurrentIndex(index)
    assert view.hasFocus()
    # The current cell is framed in the palette's colour for it while the view has the focus, and only then.
    selected = view.selectionModel().isSelected(index)
    frame = (view.palette().highlightedText() if selected else view.palette().highlight()).color().name()
    assert frame_pixels(view, index) == {frame}
    qtbot.keyClick(view, Qt.Key.Key_Tab)
    assert focused() is not view and not view.isAncestorOf(focused())
    assert frame_pixels(view, index) != {frame}  # without the focus, no frame
    view.setFocus(Qt.FocusReason.TabFocusReason)
    view.setCurrentIndex(index)
    qtbot.keyClick(view, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert focused() is not view and not view.isAncestorOf(focused())
    assert view.currentIndex() == index  # Tab moved the focus, not the current cell


def test_tab_and_shift_tab_leave_the_mapping_table_whose_focused_cell_is_framed(make_window, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    view = table(window)
    assert not view.tabKeyNavigation()
    assert_tab_leaves_and_cell_is_framed(qtbot, view)
    # The arrows still move between cells.
    view.setFocus()
    view.setCurrentIndex(view.model().index(0, 0))
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.currentIndex().row() == 1 and view.hasFocus()


def test_tab_and_shift_tab_leave_the_stage_table(make_window, qtbot, converted, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted)
    choose_clip(qtbot, page, SHORT)
    assert compare(qtbot, page).startswith("✓ pass")
    stages = page.view.stage_table
    assert stages.rowCount() > 2 and not stages.tabKeyNavigation()
    assert_tab_leaves_and_cell_is_framed(qtbot, stages)


# -- mnemonics ------------------------------------------------------------------------------------

MNEMONIC = re.compile(r"&([^&])")


def mnemonic(text: str) -> str | None:
    match = MNEMONIC.search(text.replace("&&", ""))
    return match.group(1).lower() if match else None


def visible_mnemonics(window) -> list[tuple[str, str]]:
    """(letter, what) of every mnemonic Alt reaches in the window as it is now: the menu bar's menus,
    the tabs, and the labels, buttons and group boxes that are shown."""
    found = [(mnemonic(act.text()), f"menu {act.text()}") for act in window.menuBar().actions()]
    for bar in window.findChildren(QTabBar):
        if bar.isVisibleTo(window):
            found += [(mnemonic(bar.tabText(n)), f"tab {bar.tabText(n)}") for n in range(bar.count())]
    for kind, text in ((QLabel, QLabel.text), (QAbstractButton, QAbstractButton.text), (QGroupBox, QGroupBox.title)):
        for widget in window.findChildren(kind):
            if widget.isVisibleTo(window) and (kind is not QLabel or widget.buddy() is not None):
                found.append((mnemonic(text(widget)), f"{kind.__name__} {text(widget)}"))
    return [(letter, what) for letter, what in found if letter]


def assert_unique(found: list[tuple[str, str]]) -> None:
    by_letter: dict[str, list[str]] = {}
    for letter, what in found:
        by_letter.setdefault(letter, []).append(what)
    clashes = {letter: whats for letter, whats in by_letter.items() if len(whats) > 1}
    assert not clashes, clashes


def test_no_two_controls_share_an_alt_key_in_any_state_of_the_window(make_window, qtbot, tmp_path):
    window = make_window()
    assert_unique(visible_mnemonics(window))  # nothing open
    window.open_source(checkpoint_path("cs_s64"))
    wait_open(qtbot, window)
    for tab in range(window.tabs.count()):
        window.tabs.setCurrentIndex(tab)
        assert_unique(visible_mnemonics(window))
    # A head that needs its base model and names classes: every row of the inputs is shown.
    window.open_source(S3PRL / "sid" / "dev-best.ckpt")
    wait_idle(qtbot, window)
    window.inputs.base_model_field.commit(str(S3PRL / "base_model"))
    wait_open(qtbot, window)
    assert window.inputs.labels["base_model"].isVisibleTo(window) and window.inputs.labels["labels"].isVisibleTo(window)
    for tab in range(window.tabs.count()):
        window.tabs.setCurrentIndex(tab)
        assert_unique(visible_mnemonics(window))
    letters = {letter for letter, _ in visible_mnemonics(window)}
    assert {"f", "e", "c", "v", "h", "m", "a", "g", "r", "k", "n", "s", "l", "o"} <= letters
    # Each menu's own items do not clash either.
    for menu_action in window.menuBar().actions():
        assert_unique([(mnemonic(act.text()), act.text()) for act in menu_action.menu().actions()
                       if mnemonic(act.text())])


def test_alt_keys_reach_their_field_and_a_hidden_rows_alt_key_types_nothing(make_window, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    inputs = window.inputs
    assert not inputs.labels["base_model"].isVisibleTo(window) and not inputs.labels["labels"].isVisibleTo(window)
    output = inputs.output_field.edit
    output.setFocus()
    before = output.text()
    for label in (inputs.labels["base_model"], inputs.labels["labels"]):  # the hidden rows' keys
        qtbot.keyClick(output, mnemonic(label.text()), ALT)
    qtbot.keyClick(output, "b", ALT)  # no control's key at all
    assert output.text() == before and not inputs.output_field.is_edited()
    # The shown rows' keys reach their fields.
    for key, field in (("source", inputs.source_field), ("config", inputs.config_field)):
        qtbot.keyClick(focused(), mnemonic(inputs.labels[key].text()), ALT)
        assert focused() is field.edit, key
    qtbot.keyClick(focused(), "a", ALT)  # a key typed nowhere but where it belongs: the Audition tab
    assert window.tabs.currentWidget() is window.audition_holder


# -- path fields ----------------------------------------------------------------------------------


def test_a_path_field_applies_on_enter_or_a_choice_never_when_focus_leaves(make_window, answers, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    prepared = window.prepared
    field = window.inputs.config_field
    edit = field.edit
    edit.setFocus()
    qtbot.keyClick(edit, "b")  # a stray letter …
    qtbot.keyClick(edit, Qt.Key.Key_Tab)  # … and Tab
    assert focused() is not edit
    assert window.prepared is prepared and not window.busy() and window.workspace.config == ""
    assert window.model.rowCount() > 0 and "no such" not in message(window)
    # The field says it is edited, not applied, and how to apply it or go back.
    assert field.is_edited() and edit.font().italic() and edit.text() == "b"
    assert edit.toolTip() == "Not applied yet: press Enter to use this path, Esc to go back to nothing."
    edit.setFocus()
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    assert edit.text() == "" and not field.is_edited() and not edit.font().italic()
    assert window.prepared is prepared

    # Enter applies what is typed.
    qtbot.keyClicks(edit, str(config_path("cs_s64")))
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.busy() and window.prepared is not prepared)
    assert window.prepared.config.origin == "file" and not field.is_edited()
    # And so does a file chosen in the dialog, even over something typed.
    qtbot.keyClicks(edit, "x")
    answers.open_file = config_path("cs_s64")
    field.choose_file()
    assert edit.text() == str(config_path("cs_s64")) and not field.is_edited()

    # The output folder: typed and not applied, it is not the one Convert shows …
    out = window.inputs.output_field
    out.edit.setFocus()
    out.edit.selectAll()
    qtbot.keyClicks(out.edit, str(tmp_path / "typed"))
    qtbot.keyClick(out.edit, Qt.Key.Key_Tab)
    assert window.workspace.output == str(tmp_path / "out") and out.is_edited()
    # … until Convert, which (as Enter would) uses what the field shows.
    wait_idle(qtbot, window)
    window.act_convert.trigger()
    qtbot.waitUntil(lambda: window.result is not None)
    assert window.result.output == tmp_path / "typed" and not out.is_edited()
    assert not (tmp_path / "out").exists()


def test_esc_in_an_edited_field_takes_the_typing_back_and_cancels_nothing(make_window, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    cancelled = []
    window.act_cancel.triggered.connect(lambda: cancelled.append(True))
    window.act_cancel.setEnabled(True)  # as while something runs: Esc would reach it
    edit = window.inputs.output_field.edit
    edit.setFocus()
    qtbot.keyClicks(edit, "-b")
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    assert edit.text() == str(tmp_path / "out") and cancelled == []
    qtbot.keyClick(edit, Qt.Key.Key_Escape)  # not edited: Esc is the window's again
    assert cancelled == [True]


def test_the_audition_path_fields_apply_on_enter_only(make_window, qtbot, converted, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window)
    clip = page.chooser.field.edit
    clip.setFocus()
    qtbot.keyClicks(clip, str(SHORT))
    qtbot.keyClick(clip, Qt.Key.Key_Tab)
    assert page.clip is None and page.clip_task is None and page.chooser.field.is_edited()
    clip.setFocus()
    qtbot.keyClick(clip, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.clip is not None)

    folder = page.compare_bar.converted_field
    folder.edit.setFocus()
    qtbot.keyClicks(folder.edit, str(converted))
    qtbot.keyClick(folder.edit, Qt.Key.Key_Tab)
    assert window.workspace.converted == "" and folder.is_edited()
    assert not page.compare_bar.compare_button.isEnabled()
    folder.edit.setFocus()
    qtbot.keyClick(folder.edit, Qt.Key.Key_Return)
    assert window.workspace.converted == str(converted) and page.compare_bar.compare_button.isEnabled()


# -- Compare, the Audition tab's focus, the demo clips ---------------------------------------------


def test_compare_has_keys_shown_in_its_tooltip_and_in_the_shortcuts_list(make_window, qtbot, converted, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted)
    choose_clip(qtbot, page, SHORT)
    keys = QKeySequence(COMPARE_KEYS[0]).toString(QKeySequence.SequenceFormat.NativeText)
    button = page.compare_bar.compare_button
    assert button.isEnabled() and button.toolTip().endswith(f"({keys})")
    page.chooser.channels.setFocus()  # anywhere on the page
    qtbot.keySequence(focused(), QKeySequence(COMPARE_KEYS[0]))
    qtbot.waitUntil(lambda: page.comparison is not None and not page.comparing())
    assert page.comparison.clips[0].verdict == "pass"
    window.act_shortcuts.trigger()
    box = window.findChild(QMessageBox, "shortcutsDialog")
    qtbot.waitUntil(box.isVisible)
    assert f"Compare the two models on the clip (Audition)</td><td><b>{keys}" in box.text()
    box.close()


def test_the_audition_tab_takes_the_focus_on_the_clip_then_on_compare(make_window, qtbot, converted, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    table(window).setFocus()
    window.act_audition.trigger()
    page = window.audition
    assert focused() is page.chooser.field.edit
    choose_clip(qtbot, page, SHORT)
    window.tabs.setCurrentWidget(window.mapping_page)
    window.tabs.setCurrentWidget(window.audition_holder)
    assert focused() is page.compare_bar.converted_field.edit  # a clip: the folder to compare with is next
    page.compare_bar.converted_field.commit(str(converted))
    window.tabs.setCurrentWidget(window.mapping_page)
    qtbot.keyClick(table(window), "a", ALT)
    assert focused() is page.compare_bar.compare_button
    qtbot.keyClick(focused(), Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: page.comparison is not None and not page.comparing())


def test_the_demo_clip_menu_opens_on_its_first_clip_and_return_takes_it(make_window, qtbot):
    window = make_window()
    page = window.show_audition()
    button = page.chooser.demo_button
    menu = button.menu()
    button.setFocus()
    qtbot.keyClick(button, Qt.Key.Key_Space)
    qtbot.waitUntil(menu.isVisible)
    assert menu.activeAction() is menu.actions()[0]
    qtbot.keyClick(menu, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.clip is not None)
    assert str(page.clip.path) == str(DEMO_CLIPS[0])
