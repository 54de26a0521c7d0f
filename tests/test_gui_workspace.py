"""One workspace per checkpoint: opening another checkpoint forgets everything that belonged to the
previous one, never loses fixes that are not saved without asking, and shows only the outcome of
the last thing asked for.

Every question is answered by the test (`answers` in conftest.py); one nobody expected fails it.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QMessageBox, QProgressBar, QPushButton  # noqa: E402

from speechport.core.demo import DEMO_CHECKPOINT  # noqa: E402
from speechport.core.planning.mapping_file import Overrides  # noqa: E402
from speechport.core.planning.plan import Status  # noqa: E402
from speechport.core.progress import Progress  # noqa: E402
from speechport.gui.mapping.plan_model import ALL_ROWS  # noqa: E402
from speechport.gui.workspace import workers  # noqa: E402
from speechport.gui.workspace.workspace import same_path  # noqa: E402

from conftest import CONFORMER_SHAW, S3PRL  # noqa: E402
from gui_support import (  # noqa: E402
    OPEN_TIMEOUT_MS,
    choose_clip,
    compare,
    convert_button,
    drop,
    message,
    press,
    wait_idle,
    wait_open,
)
from support import checkpoint_path, config_path  # noqa: E402

BROKEN_KEY = "encoder.layers.0.ffn1.inner_proj.weight"
WRONG_TARGET = "encoder.layers.0.ffn1.no_such.weight"
OTHER_KEY = "encoder.layers.1.ffn1.inner_proj.weight"
SHORT = CONFORMER_SHAW / "audio" / "s_short_0p3s_16k.flac"
Button = QMessageBox.StandardButton


def copy_into(folder: Path, source: Path) -> Path:
    """A checkpoint of the test's own: its suggested output folder is then beside it, in tmp_path."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(source, folder / source.name))


def converted_in_window(qtbot, window) -> None:
    assert convert_button(window).isEnabled(), window.findChild(QLabel, "convertReason").text()
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.result is not None or not window.busy(), timeout=OPEN_TIMEOUT_MS)
    assert window.result is not None, message(window)


def hold_opening(monkeypatch, held: Path) -> tuple[threading.Event, threading.Event]:
    """Opening `held` waits on the worker until the test releases it: (started, release)."""
    real = workers.prepare_job
    started, release = threading.Event(), threading.Event()

    def job(source, **kwargs):
        if same_path(source, held):
            started.set()
            release.wait(30)
        return real(source, **kwargs)

    monkeypatch.setattr(workers, "prepare_job", job)
    return started, release


# -- opening another checkpoint resets what belonged to the previous one ---------------------------------


def test_opening_another_checkpoint_resets_everything_that_belonged_to_the_previous_one(
        make_window, answers, qtbot, tmp_path, monkeypatch):
    head = copy_into(tmp_path / "sid", S3PRL / "sid" / "dev-best.ckpt")
    other = copy_into(tmp_path / "cs", checkpoint_path("cs_s64"))
    window = make_window(source=head, base_model=S3PRL / "base_model")
    wait_open(qtbot, window)
    output = window.findChild(QLineEdit, "outputPath")
    output_info = window.findChild(QLabel, "outputInfo")
    base_model = window.findChild(QLineEdit, "baseModelPath")
    assert output.text() == str(tmp_path / "sid" / "dev-best-hf") and output_info.text() == "suggested"
    assert base_model.isVisible() and base_model.text() == str(S3PRL / "base_model")
    status_filter = window.findChild(QComboBox, "statusFilter")
    status_filter.setCurrentIndex(status_filter.findData(Status.DROPPED.value))

    # Everything there is to have of the head: its conversion, its report, a comparison on a clip.
    converted_in_window(qtbot, window)
    assert "speechport_report.json" in window.report_view.toPlainText()
    page = window.show_audition()
    choose_clip(qtbot, page, S3PRL / "audio" / "fox_16k.wav")
    assert page.compare_bar.converted_field.path() == str(window.result.output)
    assert compare(qtbot, page).startswith("✓ pass")
    conversion_progress = window.findChild(QProgressBar, "conversionProgress")
    compare_progress = window.findChild(QProgressBar, "compareProgress")
    assert conversion_progress.format().startswith("Done") and compare_progress.format().startswith("pass")

    started, release = hold_opening(monkeypatch, other)
    window.open_source(other)
    qtbot.waitUntil(started.is_set, timeout=OPEN_TIMEOUT_MS)
    # While the other checkpoint opens, nothing of the head is left.
    assert window.findChild(QLabel, "recipeLabel").text() == "detecting…"
    assert output.text() == str(tmp_path / "cs" / "conformer_shaw_fs2-hf") and output_info.text() == "suggested"
    assert not base_model.isVisible() and base_model.text() == ""
    assert page.compare_bar.converted_field.path() == ""
    assert page.findChild(QLabel, "compareVerdict").text() == "Not compared yet."
    assert page.comparison is None and page.timeline.comparison is None
    assert page.compare_bar.sides_cache.sides is None  # the head's models are let go
    assert window.report_view.toPlainText() == ""
    assert status_filter.currentData() == ALL_ROWS
    assert conversion_progress.format() == "" and conversion_progress.value() == 0
    assert compare_progress.format() == "" and compare_progress.value() == 0
    assert window.result is None and not window.act_open_folder.isEnabled()
    assert message(window) == ""  # "Converted dev-best.ckpt …" was about the head
    release.set()

    wait_open(qtbot, window)
    assert window.prepared.source == other and window.prepared.base_model is None
    assert window.findChild(QLabel, "recipeLabel").text().startswith("conformer_shaw")
    assert window.model.rowCount() == 77 and not base_model.isVisible()
    assert not page.findChild(QPushButton, "compareButton").isEnabled()
    assert "Choose the converted folder" in page.compare_bar.reason.text()


def test_a_folder_chosen_by_the_user_stays_and_says_so_while_the_config_goes(make_window, qtbot, tmp_path):
    mine = tmp_path / "mine"
    window = make_window(source=checkpoint_path("cs_s64"), config=config_path("cs_s64"), output=mine)
    wait_open(qtbot, window)
    assert window.prepared.config.origin == "file"
    assert window.findChild(QLabel, "outputInfo").text() == "chosen by you"
    window.open_source(checkpoint_path("cs_s48"))
    wait_open(qtbot, window)
    assert window.findChild(QLineEdit, "outputPath").text() == str(mine)
    assert window.findChild(QLabel, "outputInfo").text() == "chosen by you"
    assert window.findChild(QLineEdit, "configPath").text() == ""  # cs_s64's config would contradict cs_s48
    assert window.prepared.config.origin != "file" and window.model.rowCount() == 109


def test_audition_never_compares_against_another_checkpoints_folder(make_window, answers, qtbot, tmp_path):
    out = tmp_path / "out"
    window = make_window(source=checkpoint_path("cs_s64"), output=out)
    wait_open(qtbot, window)
    converted_in_window(qtbot, window)
    page = window.show_audition()
    choose_clip(qtbot, page, SHORT)
    converted_field = window.findChild(QLineEdit, "convertedPath")
    compare_button = page.findChild(QPushButton, "compareButton")
    assert converted_field.text() == str(out) and compare_button.isEnabled()

    window.open_source(checkpoint_path("cs_s48"))
    wait_open(qtbot, window)
    # The output folder was the user's, so it stays; the cs_s64 model in it is not offered to compare.
    assert window.findChild(QLineEdit, "outputPath").text() == str(out)
    assert converted_field.text() == "" and not compare_button.isEnabled()
    assert page.compare_bar.reason.text() == "Choose the converted folder: convert first, or pick one."
    page.compare()  # the shortcut path refuses too
    assert page.compare_bar.task is None and page.comparison is None

    # Chosen on purpose after opening cs_s48, cs_s64's folder is compared — and refused in one sentence.
    converted_field.setFocus()
    qtbot.keyClicks(converted_field, str(out))
    qtbot.keyClick(converted_field, Qt.Key.Key_Return)
    assert compare(qtbot, page) == "Not compared: see the message above."
    assert message(window).startswith("Not compared: ") and window.message_bar.kind == "error"
    assert answers.criticals == [] and "internal error" not in window.log_pane.toPlainText()

    # Converted into the same folder (replacing cs_s64's, as the user agrees), cs_s48 compares with its own.
    converted_field.clear()
    qtbot.keyClick(converted_field, Qt.Key.Key_Return)
    answers.reply = Button.Yes
    converted_in_window(qtbot, window)
    assert converted_field.text() == str(out) and window.result.output == out
    assert compare(qtbot, page).startswith("✓ pass")
    assert page.comparison.clips[0].frames > 0 and page.compared.source == checkpoint_path("cs_s48")


def test_a_slow_open_replaced_by_another_shows_only_the_second(make_window, qtbot, monkeypatch):
    slow, fast = checkpoint_path("cs_s64"), checkpoint_path("cs_s48")
    real = workers.prepare_job
    started, release = threading.Event(), threading.Event()
    hashing_stopped = []

    def job(source, **kwargs):
        if not same_path(source, slow):
            return real(source, **kwargs)
        started.set()
        release.wait(30)
        # A slow disk that never looks at the cancel flag: the result arrives, late.
        prepared = real(source, **{**kwargs, "progress": Progress()})
        stop = prepared.hasher.cancel
        prepared.hasher.cancel = lambda: (hashing_stopped.append(prepared.source), stop())
        return prepared

    monkeypatch.setattr(workers, "prepare_job", job)
    window = make_window()
    shown = []
    window.workspace.planChanged.connect(lambda: shown.append(window.prepared and window.prepared.source))
    window.open_source(slow)
    qtbot.waitUntil(started.is_set, timeout=OPEN_TIMEOUT_MS)
    window.open_source(fast)
    qtbot.waitUntil(lambda: window.prepared is not None, timeout=OPEN_TIMEOUT_MS)
    release.set()
    wait_idle(qtbot, window)
    assert window.prepared.source == fast and window.model.rowCount() == 109
    assert slow not in shown and shown[-1] == fast
    assert hashing_stopped == [slow]  # the late result was let go, its background hash stopped
    assert window.findChild(QLineEdit, "sourcePath").text() == str(fast)
    assert "Opened conformer_shaw_fs2.pt" in window.log_pane.toPlainText()
    assert window.log_pane.toPlainText().count("Opened ") == 1


def test_no_other_checkpoint_opens_while_a_conversion_runs(make_window, qtbot, tmp_path, monkeypatch):
    from speechport.core.storage import safetensors_writer

    copy = safetensors_writer._Copier.copy

    def slow_copy(self, *args, **kwargs):  # a slow disk: the conversion takes a while
        threading.Event().wait(0.03)
        return copy(self, *args, **kwargs)

    monkeypatch.setattr(safetensors_writer._Copier, "copy", slow_copy)
    source = checkpoint_path("cs_s64")
    window = make_window(source=source, output=tmp_path / "out")
    wait_open(qtbot, window)
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.findChild(QProgressBar, "conversionProgress").value() > 0, timeout=OPEN_TIMEOUT_MS)
    window.open_source(checkpoint_path("cs_s48"))  # as File ▸ Open recent does, whose items stay enabled
    drop(window, checkpoint_path("cs_s48"))
    assert window.prepared.source == source and window.busy_converting()
    assert window.findChild(QLineEdit, "sourcePath").text() == str(source)
    qtbot.waitUntil(lambda: not window.busy(), timeout=OPEN_TIMEOUT_MS)
    assert window.result is not None and window.result.output == tmp_path / "out"
    assert window.prepared.source == source


# -- fixes not saved to a mapping file are never lost without asking ---------------------------------------


def make_fixes(window, *keys: str) -> Overrides:
    for key in keys or (BROKEN_KEY,):
        window.rename_target(key, WRONG_TARGET.replace("0", key.split(".")[2]))
    assert window.isWindowModified()
    return Overrides(dict(window.fixes.rename), dict(window.fixes.drop), list(window.fixes.rules))


def type_source(qtbot, window, path, enter: bool = True) -> None:
    field = window.findChild(QLineEdit, "sourcePath")
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, str(path))
    if enter:
        qtbot.keyClick(field, Qt.Key.Key_Return)


def open_by_dialog(qtbot, window, answers, path) -> None:
    answers.open_file = path
    window.act_open.trigger()


def open_by_field(qtbot, window, answers, path) -> None:
    type_source(qtbot, window, path)


def open_by_drop(qtbot, window, answers, path) -> None:
    drop(window, path)


def open_the_demo(qtbot, window, answers, path) -> None:
    window.act_demo.trigger()


def reload_another_file(qtbot, window, answers, path) -> None:
    type_source(qtbot, window, path, enter=False)
    window.act_reload.trigger()


OPENINGS = [open_by_dialog, open_by_field, open_by_drop, open_the_demo, reload_another_file]


def assert_kept(window, source: Path, fixes: Overrides, steps: int) -> None:
    """The checkpoint still open, with its fixes and their whole undo history."""
    assert window.prepared.source == source
    assert window.findChild(QLineEdit, "sourcePath").text() == str(source)
    assert window.fixes.rename == fixes.rename and window.fixes.drop == fixes.drop
    assert window.undo_stack.count() == steps and window.undo_stack.canUndo() and window.isWindowModified()
    assert window.windowTitle().startswith(source.name)


@pytest.mark.parametrize("opening", OPENINGS, ids=lambda f: f.__name__)
def test_cancel_keeps_the_checkpoint_its_fixes_and_their_history(make_window, answers, qtbot, tmp_path, opening):
    source = checkpoint_path("cs_s64")
    window = make_window(source=source, output=tmp_path / "out")
    wait_open(qtbot, window)
    fixes = make_fixes(window)
    answers.reply = Button.Cancel
    opening(qtbot, window, answers, checkpoint_path("cs_s48"))
    wait_idle(qtbot, window)
    assert [question[0] for question in answers.questions] == ["Save your fixes?"]
    title, text, default = answers.questions[0]
    assert source.name in text and "opening another checkpoint" in text.lower() and default == Button.Save
    assert_kept(window, source, fixes, steps=1)
    window.undo_stack.undo()  # the history is whole
    assert window.fixes.is_empty() and not window.isWindowModified()
    if opening is open_the_demo:
        assert not same_path(window.prepared.source, DEMO_CHECKPOINT)


@pytest.mark.parametrize("opening", [open_by_field, open_by_drop], ids=lambda f: f.__name__)
def test_save_writes_the_fixes_where_the_user_says_then_opens(make_window, answers, qtbot, tmp_path, opening):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    fixes = make_fixes(window)
    mapping = tmp_path / "fixes.toml"
    answers.reply = Button.Save
    answers.save_file = mapping
    opening(qtbot, window, answers, checkpoint_path("cs_s48"))
    qtbot.waitUntil(lambda: window.prepared is not None and window.prepared.source == checkpoint_path("cs_s48"),
                    timeout=OPEN_TIMEOUT_MS)
    wait_idle(qtbot, window)
    saved = Overrides.load(mapping)
    assert saved.rename == fixes.rename and saved.drop == fixes.drop
    assert window.fixes.is_empty() and window.undo_stack.count() == 0 and not window.isWindowModified()
    assert window.model.rowCount() == 109 and len(answers.questions) == 1


def test_save_goes_to_the_mapping_file_saved_before_without_asking_where(make_window, answers, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    make_fixes(window)
    mapping = tmp_path / "fixes.toml"
    answers.save_file = mapping
    window.act_save_mapping.trigger()
    qtbot.waitUntil(lambda: not window.isWindowModified())
    fixes = make_fixes(window, OTHER_KEY)
    answers.save_file = None  # a save dialog now fails the test
    answers.reply = Button.Save
    window.open_source(checkpoint_path("cs_s48"))
    qtbot.waitUntil(lambda: window.prepared is not None and window.prepared.source == checkpoint_path("cs_s48"),
                    timeout=OPEN_TIMEOUT_MS)
    saved = Overrides.load(mapping)
    assert saved.rename == fixes.rename and len(saved.rename) == 2


def test_save_with_the_save_dialog_cancelled_does_nothing(make_window, answers, qtbot, tmp_path):
    source = checkpoint_path("cs_s64")
    window = make_window(source=source, output=tmp_path / "out")
    wait_open(qtbot, window)
    fixes = make_fixes(window)
    answers.reply = Button.Save
    answers.save_file = ""  # the dialog's Cancel
    window.open_source(checkpoint_path("cs_s48"))
    wait_idle(qtbot, window)
    assert_kept(window, source, fixes, steps=1)
    assert [p.name for p in tmp_path.iterdir() if p.name != "settings.ini"] == []  # no mapping file written


def test_discard_opens_the_other_checkpoint_without_its_fixes(make_window, answers, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    make_fixes(window)
    answers.reply = Button.Discard
    window.open_source(checkpoint_path("cs_s48"))
    wait_open(qtbot, window)
    assert window.prepared.source == checkpoint_path("cs_s48") and window.model.rowCount() == 109
    assert window.fixes.is_empty() and window.undo_stack.count() == 0 and not window.isWindowModified()
    assert not window.act_undo.isEnabled()
    assert [p.name for p in tmp_path.iterdir() if p.name != "settings.ini"] == []  # no mapping file written
    assert "Discarded your unsaved fixes to conformer_shaw_fs2.pt" in window.log_pane.toPlainText()


def test_reopening_the_same_checkpoint_keeps_its_fixes_without_asking(make_window, answers, qtbot, tmp_path):
    source = checkpoint_path("cs_s64")
    window = make_window(source=source, output=tmp_path / "out")
    wait_open(qtbot, window)
    fixes = make_fixes(window)
    window.act_reload.trigger()  # F5, or choosing the same file again
    window.open_source(source)
    wait_open(qtbot, window)
    assert answers.questions == []
    assert_kept(window, source, fixes, steps=1)


# -- closing and quitting ------------------------------------------------------------------------------------


def close_by_window(qtbot, window) -> None:
    window.close()


def quit_by_shortcut(qtbot, window) -> None:
    press(qtbot, window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)


@pytest.mark.parametrize("closing", [close_by_window, quit_by_shortcut], ids=["close", "Ctrl+Q"])
def test_closing_with_unsaved_fixes_asks_and_each_answer_does_what_it_says(make_window, answers, qtbot, tmp_path,
                                                                            closing):
    source = checkpoint_path("cs_s64")
    window = make_window(source=source, output=tmp_path / "out")
    wait_open(qtbot, window)
    fixes = make_fixes(window)

    answers.reply = Button.Cancel
    closing(qtbot, window)
    assert window.isVisible() and "closing speechport" in answers.questions[-1][1].lower()
    assert_kept(window, source, fixes, steps=1)

    answers.reply = Button.Save
    answers.save_file = ""  # and then the save dialog's Cancel: still open
    closing(qtbot, window)
    assert window.isVisible() and len(answers.questions) == 2
    assert_kept(window, source, fixes, steps=1)

    answers.reply = Button.Discard
    closing(qtbot, window)
    assert not window.isVisible() and len(answers.questions) == 3


def test_save_on_close_writes_the_mapping_file_then_closes(make_window, answers, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    fixes = make_fixes(window, BROKEN_KEY, OTHER_KEY)
    mapping = tmp_path / "fixes.json"
    answers.reply = Button.Save
    answers.save_file = mapping
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible())
    saved = Overrides.load(mapping)
    assert saved.rename == fixes.rename and len(saved.rename) == 2


def test_closing_with_nothing_unsaved_asks_nothing(make_window, answers, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    make_fixes(window)
    window.undo_stack.undo()  # back where it was saved: nothing to lose
    window.close()
    assert not window.isVisible() and answers.questions == []
