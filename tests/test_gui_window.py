"""The window, driven like a user would (offscreen): open, fix, undo, convert, cancel, and errors.

Every modal dialog is answered by the test; one that nobody expected fails the test instead of
blocking it.
"""

from __future__ import annotations

import os
import shlex
import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QDesktopServices, QGuiApplication  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
)

from speechport.core.errors import NeedsBaseModel  # noqa: E402
from speechport.core.planning.mapping_file import Overrides  # noqa: E402
from speechport.core.planning.plan import Status  # noqa: E402
from speechport.gui.mapping.bulk_rename_dialog import BulkRenameDialog  # noqa: E402
from speechport.gui.mapping.plan_model import Column  # noqa: E402
from speechport.gui.shared import theme
from speechport.gui.shared.widgets import RecentPaths  # noqa: E402
from speechport.gui.workspace import workers  # noqa: E402

from gui_support import (  # noqa: E402
    OPEN_TIMEOUT_MS,
    convert_button,
    drop,
    message,
    open_editor,
    press,
    proxy_index,
    row_of,
    table,
    wait_idle,
    wait_open,
)
from support import checkpoint_path, config_path, leftovers, load_fs2  # noqa: E402

BROKEN_KEY = "encoder.layers.0.ffn1.inner_proj.weight"
ITS_TARGET = "encoder.layers.0.ffn1.intermediate_dense.weight"


# -- opening ---------------------------------------------------------------------------------------


def test_window_opens_a_checkpoint_into_the_table(make_window, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    for name, kind in (("sourcePath", QLineEdit), ("configPath", QLineEdit), ("baseModelPath", QLineEdit),
                       ("outputPath", QLineEdit), ("mappingTable", QTableView), ("mappingFilter", QLineEdit),
                       ("convertButton", QPushButton), ("cancelButton", QPushButton),
                       ("conversionProgress", QProgressBar), ("statusSummary", QLabel)):
        assert window.findChild(kind, name) is not None, name
    assert "torch" in window.findChild(QLabel, "libraryStatus").text()
    wait_open(qtbot, window)

    source_keys = set(load_fs2("cs_s64"))
    shown = [window.model.row_at(r).source_key for r in range(window.model.rowCount())]
    assert len(shown) == len(source_keys) == 77 and set(shown) == source_keys  # one row per source key
    assert "conformer_shaw" in window.findChild(QLabel, "recipeLabel").text()
    assert window.findChild(QLabel, "configInfo").text().startswith("inferred")
    assert "hidden 64" in window.findChild(QLabel, "configInfo").text()
    assert window.config_page.table.rowCount() == len(window.prepared.config.inferred)
    assert not window.findChild(QLineEdit, "baseModelPath").isVisible()  # conformer_shaw needs none
    summary = window.findChild(QLabel, "statusSummary").text()
    assert "69 mapped" in summary and "8 dropped" in summary and "no problems" in summary
    assert convert_button(window).isEnabled()
    assert "Ready" in window.findChild(QLabel, "convertReason").text()
    assert "Ready" in window.findChild(QLabel, "libraryStatus").text()


def test_break_fix_with_completion_undo_redo_convert_and_load(make_window, qtbot, tmp_path, monkeypatch):
    out = tmp_path / "converted"
    window = make_window(source=checkpoint_path("cs_s64"), output=out)
    wait_open(qtbot, window)
    reason = window.findChild(QLabel, "convertReason")

    # Break a key by typing a target that does not exist.
    editor = open_editor(qtbot, window, proxy_index(window, BROKEN_KEY, Column.TARGET))
    editor.setText("encoder.layers.0.ffn1.no_such.weight")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: row_of(window, BROKEN_KEY).status is Status.UNMAPPED)
    status_cell = proxy_index(window, BROKEN_KEY, Column.STATUS)
    assert status_cell.data() == "unmapped source"
    assert "give it a target key" in status_cell.data(Qt.ItemDataRole.ToolTipRole)
    assert window.model.row_of_missing_target(ITS_TARGET) >= 0
    assert not convert_button(window).isEnabled()
    assert reason.isVisible() and "Convert is disabled" in reason.text() and "unmapped source" in reason.text()
    assert "2 problem(s)" in window.findChild(QLabel, "statusSummary").text()

    # Fix it with the completion list, which offers exactly the target nothing claims.
    editor = open_editor(qtbot, window, proxy_index(window, BROKEN_KEY, Column.TARGET))
    completer = editor.completer()
    assert completer.model().keys() == [ITS_TARGET]
    qtbot.keyClicks(editor, "intermediate_dense.w")
    popup = completer.popup()
    qtbot.waitUntil(popup.isVisible)
    assert completer.completionCount() == 1
    popup.setCurrentIndex(completer.completionModel().index(0, 0))
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: row_of(window, BROKEN_KEY).status is Status.MAPPED)
    assert row_of(window, BROKEN_KEY).target_key == ITS_TARGET
    assert window.fixes.rename == {BROKEN_KEY: ITS_TARGET}
    assert convert_button(window).isEnabled()

    # Undo / redo with the keyboard.
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert row_of(window, BROKEN_KEY).status is Status.UNMAPPED and not convert_button(window).isEnabled()
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.fixes.is_empty() and row_of(window, BROKEN_KEY).status is Status.MAPPED
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert row_of(window, BROKEN_KEY).status is Status.UNMAPPED
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert row_of(window, BROKEN_KEY).status is Status.MAPPED and convert_button(window).isEnabled()

    # Convert, then load the result the way users will.
    progress = window.findChild(QProgressBar, "conversionProgress")
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.result is not None or not window.busy())
    assert window.result is not None, message(window)
    assert progress.value() == progress.maximum()
    assert "Converted" in message(window)
    assert "speechport_report.json" in window.report_view.toPlainText()
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    qtbot.mouseClick(window.message_bar.button("openFolderButton"), Qt.MouseButton.LeftButton)
    assert opened == [str(out)]

    from transformers import Wav2Vec2BertModel

    model, info = Wav2Vec2BertModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    assert torch.equal(model.state_dict()[ITS_TARGET], load_fs2("cs_s64")[BROKEN_KEY])
    assert leftovers(tmp_path) == []


def test_cancel_in_the_middle_leaves_nothing(make_window, qtbot, tmp_path, monkeypatch):
    from speechport.core.storage import safetensors_writer

    copy = safetensors_writer._Copier.copy

    def slow_copy(self, *args, **kwargs):  # a slow disk: the conversion takes seconds
        import time

        time.sleep(0.04)
        return copy(self, *args, **kwargs)

    monkeypatch.setattr(safetensors_writer._Copier, "copy", slow_copy)
    out = tmp_path / "converted"
    window = make_window(source=checkpoint_path("cs_s64"), output=out)
    wait_open(qtbot, window)
    progress = window.findChild(QProgressBar, "conversionProgress")
    cancel = window.findChild(QPushButton, "cancelButton")
    assert not cancel.isEnabled()
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    eta = window.findChild(QLabel, "etaLabel")
    qtbot.waitUntil(lambda: progress.value() > 100 and eta.text().startswith("about"))
    assert cancel.isEnabled() and not convert_button(window).isEnabled()
    assert "tensors" in progress.format() and "KB /" in progress.format()  # tensors and bytes
    assert eta.text().endswith("s left")
    assert not window.findChild(QLineEdit, "sourcePath").isEnabled()  # inputs are locked meanwhile
    qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.result is None
    assert "cancelled" in message(window).lower()
    assert not out.exists() and leftovers(tmp_path) == []
    assert convert_button(window).isEnabled()  # and it can run again


def test_non_empty_output_folder_is_replaced_only_on_yes(make_window, answers, qtbot, tmp_path):
    out = tmp_path / "converted"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    window = make_window(source=checkpoint_path("cs_s64"), output=out)
    wait_open(qtbot, window)
    answers.reply = QMessageBox.StandardButton.No
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "not empty" in message(window))
    assert answers.questions[-1][2] == QMessageBox.StandardButton.No  # the default answer
    assert (out / "keep.txt").exists()
    answers.reply = QMessageBox.StandardButton.Yes
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.result is not None)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()
    assert len(answers.questions) == 2


# -- editing ------------------------------------------------------------------------------------


def test_filter_by_text_and_status_with_summary(make_window, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    view = table(window)
    text_filter = window.findChild(QLineEdit, "mappingFilter")
    qtbot.keyClicks(text_filter, "layers.1 ffn2")
    assert 0 < view.model().rowCount() < 77
    assert all("layers.1" in window.model.row_at(r).source_key and "ffn2" in window.model.row_at(r).source_key
               for r in window.proxy.visible_source_rows())
    assert f"showing {view.model().rowCount()} of 77" in window.findChild(QLabel, "statusSummary").text()
    text_filter.clear()
    qtbot.keyClicks(text_filter, "xffn")
    qtbot.keyClick(text_filter, Qt.Key.Key_Home)
    table(window).selectRow(0)
    qtbot.keyClick(text_filter, Qt.Key.Key_Delete)  # deletes a character, drops no row
    assert text_filter.text() == "ffn" and window.fixes.is_empty()
    text_filter.clear()
    status = window.findChild(QComboBox, "statusFilter")
    status.setCurrentIndex(status.findData(Status.DROPPED.value))
    assert view.model().rowCount() == 8
    assert "dropped (8)" in status.currentText()
    status.setCurrentIndex(status.findData("problems"))
    assert view.model().rowCount() == 0


def test_drop_restore_and_mapping_file_round_trip(make_window, answers, qtbot, tmp_path, run_cli):
    source = checkpoint_path("cs_s64")
    window = make_window(source=source, output=tmp_path / "out")
    wait_open(qtbot, window)
    table(window).selectRow(proxy_index(window, BROKEN_KEY, Column.SOURCE).row())
    press(qtbot, window, Qt.Key.Key_Delete)
    assert row_of(window, BROKEN_KEY).status is Status.DROPPED
    assert "by hand" in row_of(window, BROKEN_KEY).reason
    assert window.model.row_of_missing_target(ITS_TARGET) >= 0 and not convert_button(window).isEnabled()
    assert window.isWindowModified()

    mapping = tmp_path / "fixes.toml"
    answers.save_file = mapping
    window.act_save_mapping.trigger()
    qtbot.waitUntil(mapping.exists)
    wait_idle(qtbot, window)
    assert not window.isWindowModified()
    saved = Overrides.load(mapping)
    assert saved.drop == {BROKEN_KEY: window.fixes.drop[BROKEN_KEY]} and not saved.rename
    code, out, _ = run_cli("inspect", source, "--mapping", mapping)  # the CLI reads the same file
    assert code == 3 and ITS_TARGET in out

    press(qtbot, window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)  # restore
    assert row_of(window, BROKEN_KEY).status is Status.MAPPED and window.fixes.is_empty()
    assert convert_button(window).isEnabled()

    answers.open_file = mapping
    window.act_load_mapping.trigger()
    qtbot.waitUntil(lambda: row_of(window, BROKEN_KEY).status is Status.DROPPED)
    window.undo_stack.undo()  # loading a mapping file is one undoable step
    assert row_of(window, BROKEN_KEY).status is Status.MAPPED

    # A key the recipe drops on purpose is restored by choosing its target: the editor opens.
    table(window).selectRow(proxy_index(window, "final_proj.weight", Column.SOURCE).row())
    window.act_restore.trigger()
    qtbot.waitUntil(lambda: table(window).findChild(QLineEdit, "keyEditor") is not None)
    assert table(window).currentIndex().column() == Column.TARGET


def test_bulk_rename_is_one_undoable_step(make_window, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    qtbot.keyClicks(window.findChild(QLineEdit, "mappingFilter"), "self_attn.q_proj")
    assert table(window).model().rowCount() == 4  # two layers, weight and bias
    window.act_bulk.trigger()
    dialog = window.findChild(BulkRenameDialog)
    assert dialog is not None and dialog.scope_filtered.isChecked() and dialog.mode_target.isChecked()
    qtbot.keyClicks(dialog.pattern, "q_proj")
    qtbot.keyClicks(dialog.replacement, "query")
    qtbot.waitUntil(lambda: dialog.preview.rowCount() == 4)
    assert "not parameters of the model" in dialog.status.text()
    dialog.accept()
    renamed = [row_of(window, f"encoder.layers.{n}.self_attn.q_proj.{p}") for n in (0, 1) for p in ("weight", "bias")]
    assert all(row.status is Status.UNMAPPED and ".query." in row.target_key for row in renamed)
    assert window.undo_stack.count() == 1
    window.undo_stack.undo()
    assert window.fixes.is_empty() and window.prepared.plan.ok

    window.act_bulk.trigger()
    dialog = window.fixes_editor.bulk_dialog  # the first one is closed, and deleted soon
    dialog.pattern.setText(r"^encoder\.layers\.(\d+)\.self_attn\.q_proj\.(\w+)$")
    dialog.replacement.setText(r"encoder.layers.\1.self_attn.linear_q.\2")
    qtbot.waitUntil(lambda: "4 of 4 rows renamed" in dialog.status.text())
    assert "not parameters" not in dialog.status.text()
    dialog.pattern.setText("(")  # a bad pattern is reported, not raised
    qtbot.waitUntil(lambda: "Not a valid pattern" in dialog.status.text())
    assert not dialog.ok_button.isEnabled()
    dialog.reject()


def test_path_fields_load_on_enter_only_and_remember_recent_files(make_window, qtbot, settings, tmp_path):
    window = make_window()
    assert window.findChild(QLabel, "recipeLabel").text().startswith("—")
    assert not convert_button(window).isEnabled()
    assert "Open a checkpoint" in window.findChild(QLabel, "convertReason").text()
    source = window.findChild(QLineEdit, "sourcePath")
    source.setFocus()
    qtbot.keyClicks(source, str(checkpoint_path("cs_s48")))
    qtbot.keyClick(source, Qt.Key.Key_Return)
    wait_open(qtbot, window)
    assert window.model.rowCount() == 109
    assert RecentPaths(settings, "source").items()[0] == str(checkpoint_path("cs_s48"))
    assert window.findChild(QLineEdit, "outputPath").text().endswith("conformer_shaw_fs2-hf")  # suggested

    config = window.findChild(QLineEdit, "configPath")
    config.setFocus()
    config.setText(str(config_path("cs_s48")))
    window.findChild(QLineEdit, "mappingFilter").setFocus()  # leaving the field applies nothing
    assert not window.busy() and window.prepared.config.origin != "file" and window.inputs.config_field.is_edited()
    config.setFocus()
    qtbot.keyClick(config, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.prepared is not None and window.prepared.config.origin == "file" and not window.busy(),
                    timeout=OPEN_TIMEOUT_MS)
    assert window.findChild(QLabel, "configInfo").text() == "from config.json"


def test_drag_and_drop_routes_files(make_window, qtbot, tmp_path):
    window = make_window()
    drop(window, checkpoint_path("cs_s64"))
    wait_open(qtbot, window)
    assert window.findChild(QLineEdit, "sourcePath").text() == str(checkpoint_path("cs_s64"))
    drop(window, config_path("cs_s64"))
    qtbot.waitUntil(lambda: window.prepared is not None and window.prepared.config.origin == "file" and not window.busy(),
                    timeout=OPEN_TIMEOUT_MS)
    folder = tmp_path / "somewhere"
    folder.mkdir()
    drop(window, folder)
    assert window.findChild(QLineEdit, "outputPath").text() == str(folder)
    assert window.findChild(QLabel, "outputInfo").text() == "chosen by you"


# -- questions and errors -------------------------------------------------------------------------


class RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_unsafe_pickle_asks_for_trust_and_no_means_no(make_window, answers, qtbot, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "custom.pt"
    torch.save({"model": load_fs2("cs_s64"), "x": RunsCode(marker)}, path)

    answers.reply = QMessageBox.StandardButton.No
    window = make_window(source=path, output=tmp_path / "out")
    qtbot.waitUntil(lambda: len(answers.questions) == 1, timeout=OPEN_TIMEOUT_MS)
    wait_idle(qtbot, window)
    title, text, default = answers.questions[0]
    assert "Trust" in title and "system" in text and default == QMessageBox.StandardButton.No
    assert not marker.exists()
    assert window.prepared is None and window.model.rowCount() == 0
    assert "Not opened" in message(window) and "refused to unpickle" in message(window)
    assert not convert_button(window).isEnabled()

    answers.reply = QMessageBox.StandardButton.Yes
    window.act_reload.trigger()
    wait_open(qtbot, window)
    assert len(answers.questions) == 2
    assert marker.exists()  # trusting really loads the file, code and all
    assert window.prepared.checkpoint.trusted
    window.act_reload.trigger()  # trusted once per session: not asked again
    wait_open(qtbot, window)
    assert len(answers.questions) == 2


def test_s3prl_head_asks_for_the_base_model(make_window, answers, qtbot, fixtures_dir):
    window = make_window(source=fixtures_dir / "s3prl" / "sid" / "dev-best.ckpt")
    base_model = window.findChild(QLineEdit, "baseModelPath")
    assert not base_model.isVisible()
    wait_idle(qtbot, window)
    assert window.message_bar.button("chooseBaseModelButton") is not None, message(window)
    assert base_model.isVisible() and window.prepared is None
    assert not convert_button(window).isEnabled()
    answers.folder = fixtures_dir / "s3prl" / "base_model"
    qtbot.mouseClick(window.message_bar.button("chooseBaseModelButton"), Qt.MouseButton.LeftButton)
    wait_open(qtbot, window)
    assert base_model.text() == str(answers.folder)
    assert window.model.rowCount() >= len(window.prepared.tensors) > 0
    assert window.findChild(QLabel, "recipeLabel").text().startswith("s3prl")


def test_needs_base_model_flow(make_window, answers, qtbot, tmp_path, monkeypatch):
    """The window's side of a head-only checkpoint, whatever recipe raises it."""
    real = workers.prepare_job
    seen = []

    def head_only(source, *, config, base_model, trust_pickle, fixes, progress, labels=None, **_):
        seen.append(base_model)
        if not base_model:
            raise NeedsBaseModel(str(source), "s3prl")
        return real(checkpoint_path("cs_s64"), config=None, base_model=None, trust_pickle=False, fixes=fixes,
                    progress=progress)

    monkeypatch.setattr(workers, "prepare_job", head_only)
    window = make_window(source=tmp_path / "head.ckpt", output=tmp_path / "out")
    wait_idle(qtbot, window)
    assert "downstream head" in message(window)
    assert window.findChild(QLineEdit, "baseModelPath").isVisible()
    assert "base model" in window.findChild(QLabel, "convertReason").text()
    answers.folder = tmp_path
    qtbot.mouseClick(window.message_bar.button("chooseBaseModelButton"), Qt.MouseButton.LeftButton)
    wait_open(qtbot, window)
    assert seen == [None, str(tmp_path)]
    assert window.model.rowCount() == 77 and not window.message_bar.isVisible()


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("notes.pt", b"just some text\n", "not a checkpoint Speechport can read"),
        ("clip.pt", None, "WAV audio file"),
        ("empty.ckpt", b"", "not a checkpoint"),
        ("missing.pt", "absent", "missing.pt"),
    ],
)
def test_bad_files_show_a_message_not_a_traceback(make_window, answers, qtbot, tmp_path, name, content, expected):
    path = tmp_path / name
    if content is None:
        from speechport.core.demo import DEMO_CLIPS

        shutil.copy(DEMO_CLIPS[0], path)
    elif content != "absent":
        path.write_bytes(content)
    window = make_window(source=path)
    wait_idle(qtbot, window)
    assert window.message_bar.kind == "error"
    assert expected in message(window) and "Traceback" not in message(window)
    assert "Traceback" not in window.log_pane.toPlainText()
    assert answers.criticals == []  # a known error is not an internal one
    assert not convert_button(window).isEnabled()


def test_bad_config_and_bad_mapping_file_are_messages(make_window, answers, qtbot, tmp_path):
    bad_config = tmp_path / "config.json"
    bad_config.write_text('{"model_type": "bert"}')
    window = make_window(source=checkpoint_path("cs_s64"), config=bad_config)
    wait_idle(qtbot, window)
    assert "model_type 'bert'" in message(window)
    bad_mapping = tmp_path / "fixes.toml"
    bad_mapping.write_text("[rename\n")
    window.load_mapping(bad_mapping)
    qtbot.waitUntil(lambda: "not valid TOML" in message(window))
    assert answers.criticals == []


def test_unexpected_errors_are_one_line_and_the_window_lives_on(make_window, answers, qtbot, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(workers, "prepare_job", broken)
    answers.internal_errors_expected = True
    window = make_window(source=checkpoint_path("cs_s64"))
    wait_idle(qtbot, window)
    assert answers.criticals and answers.criticals[0].startswith("internal error") and "RuntimeError: boom" in answers.criticals[0]
    assert "RuntimeError: boom" in window.log_pane.toPlainText()
    assert "Traceback" not in window.log_pane.toPlainText()
    monkeypatch.undo()
    window.act_reload.trigger()
    wait_open(qtbot, window)


# -- looks ----------------------------------------------------------------------------------------


def test_dark_and_light_palettes_recolour_the_table(make_window, qtbot, settings, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    cell = proxy_index(window, BROKEN_KEY, Column.STATUS)
    try:
        window.appearance_actions["dark"].trigger()
        assert theme.is_dark(QGuiApplication.palette())
        dark = cell.data(Qt.ItemDataRole.ForegroundRole).color().name()
        window.appearance_actions["light"].trigger()
        assert not theme.is_dark(QGuiApplication.palette())
        light = cell.data(Qt.ItemDataRole.ForegroundRole).color().name()
        assert dark != light
        assert settings.value("appearance") == "light"
    finally:
        window.appearance_actions["system"].trigger()


def _contrast(widget) -> float:
    """How far a widget's text stands out from what is behind it on screen: the largest lightness
    difference (0 to 1) between any pixel of its place in its parent and the most common one there."""
    from collections import Counter

    image = widget.parentWidget().grab(widget.geometry()).toImage()
    pixels = [image.pixelColor(x, y).lightnessF() for x in range(image.width()) for y in range(image.height())]
    background = Counter(round(p, 3) for p in pixels).most_common(1)[0][0]
    return max(abs(p - background) for p in pixels)


def test_a_message_shown_keeps_readable_text_when_the_appearance_changes(make_window, qtbot, tmp_path):
    """The palette changed from outside the window's menu (the desktop's light or dark switch) while a
    message shows: its words are redrawn in the new palette's text colour."""
    app = QApplication.instance()
    theme.apply_appearance(app, "light")
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    try:
        theme.apply_appearance(app, "dark")
        window.convert()  # its message, with its buttons, shown in the dark
        qtbot.waitUntil(lambda: window.result is not None)
        wait_idle(qtbot, window)
        text = window.message_bar.text
        assert text.text().startswith("Converted ")
        qtbot.waitUntil(lambda: _contrast(text) > 0.35)
        theme.apply_appearance(app, "light")
        window.show_audition()  # and on to the next page, as a user goes
        # Drawn in the light palette's dark text, not in the dark palette's pale one (on a light tint).
        qtbot.waitUntil(lambda: _contrast(text) > 0.35, timeout=5000)
    finally:
        window.appearance_actions["system"].trigger()


def test_window_fits_1280_by_800_and_has_an_icon(make_window):
    window = make_window()
    assert window.width() <= 1280 and window.height() <= 800
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 800
    assert not window.windowIcon().isNull()
    actions = window.actions() + table(window).actions()
    shortcuts = {a.shortcut().toString() for a in actions if not a.shortcut().isEmpty()}
    assert {"Ctrl+O", "Ctrl+Z", "Ctrl+S", "F2", "Del"} <= shortcuts
    assert window.act_redo.shortcuts()[0].toString() == "Ctrl+Shift+Z"
    assert window.tabs.tabText(0).replace("&", "") == "Mapping"
