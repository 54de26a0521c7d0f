"""Renaming the checkpoint's own keys in the window: the wrapper prefix Speechport strips by itself
(an inferred fix the user can undo) and the rules the user writes in the bulk rename (source rules),
previewed on the plan before they are applied, each one step in the undo history."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402

from speechport.core.planning.mapping_file import Overrides  # noqa: E402
from speechport.core.planning.plan import Status  # noqa: E402

from gui_support import convert_button, press, row_of, wait_idle, wait_open  # noqa: E402
from support import load_fs2  # noqa: E402

KEY = "encoder.layers.0.ffn1.inner_proj.weight"
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def ddp_checkpoint(tmp_path):
    """cs_s64 as saved from inside torch DistributedDataParallel: every key starts with `module.`."""
    path = tmp_path / "ddp.pt"
    torch.save({"model": {"module." + key: value for key, value in load_fs2("cs_s64").items()}}, path)
    return path


@pytest.fixture
def backbone_checkpoint(tmp_path):
    """cs_s64 with its encoder's keys under `backbone.`: nothing maps them until a rule strips it."""
    path = tmp_path / "backbone.pt"
    state = {("backbone." + key if key.startswith("encoder.") else key): value
             for key, value in load_fs2("cs_s64").items()}
    torch.save({"model": state}, path)
    return path


def notice(window) -> QLabel:
    return window.findChild(QLabel, "inferredFixNoticeText")


def problems(window) -> int:
    return len(window.prepared.plan.problems())


def test_a_wrapper_prefix_is_stripped_as_a_fix_that_ctrl_z_undoes_and_redo_applies_again(
        make_window, answers, qtbot, tmp_path, ddp_checkpoint):
    window = make_window(source=ddp_checkpoint, output=tmp_path / "out")
    wait_open(qtbot, window)
    assert notice(window).isVisible()
    text = notice(window).text()
    assert "Every key starts with <code>module.</code>" in text and "DistributedDataParallel" in text
    assert "Speechport strips it" in text and "Undo" in text
    row = row_of(window, "module." + KEY)
    assert row.status is Status.MAPPED and row.via[0] == KEY
    assert window.prepared.plan.ok and convert_button(window).isEnabled()
    assert not window.isWindowModified()  # nothing of the user's to save yet
    assert "Strip 'module.'" in window.act_undo.text()

    press(qtbot, window, Qt.Key.Key_Z, CTRL)  # the keys as saved: the plan shows why the prefix is stripped
    assert row_of(window, "module." + KEY).status is Status.UNMAPPED
    assert problems(window) > 60 and not convert_button(window).isEnabled()
    assert "read as saved" in notice(window).text() and "Strip it again" in notice(window).text()
    assert "problem" in window.findChild(QLabel, "convertReason").text()

    press(qtbot, window, Qt.Key.Key_Z, CTRL | SHIFT)  # redo strips it again
    assert window.prepared.plan.ok and convert_button(window).isEnabled()
    assert row_of(window, "module." + KEY).target_key == KEY.replace("inner_proj", "intermediate_dense")

    # The notice's link is a step of the history as well; a reload keeps what the user chose.
    notice(window).linkActivated.emit("#keep")
    assert row_of(window, "module." + KEY).status is Status.UNMAPPED and window.undo_stack.count() == 2
    window.act_reload.trigger()
    wait_open(qtbot, window)
    assert row_of(window, "module." + KEY).status is Status.UNMAPPED and window.undo_stack.count() == 2
    notice(window).linkActivated.emit("#strip")
    assert window.prepared.plan.ok and window.undo_stack.count() == 3
    window.undo_stack.undo()
    assert row_of(window, "module." + KEY).status is Status.UNMAPPED


def test_undoing_the_prefix_strip_is_saved_with_the_fixes_and_the_cli_reads_the_keys_as_saved(
        make_window, answers, qtbot, tmp_path, ddp_checkpoint, run_cli):
    window = make_window(source=ddp_checkpoint, output=tmp_path / "out")
    wait_open(qtbot, window)
    notice(window).linkActivated.emit("#keep")
    assert window.isWindowModified()  # a choice of the user's, to save
    saved = tmp_path / "fixes.toml"
    window.save_mapping(saved)
    qtbot.waitUntil(lambda: not window.busy() and saved.is_file())
    assert "keep_wrapper_prefix = true" in saved.read_text()
    code, stdout, _ = run_cli("inspect", ddp_checkpoint, "--mapping", saved)
    assert code == 3 and "inferred fix" not in stdout  # the keys as saved, as in the window
    # Opened again with that file, the window reads them as saved too, and offers to strip it.
    window.load_mapping(saved)
    qtbot.waitUntil(lambda: not window.busy())
    assert row_of(window, "module." + KEY).status is Status.UNMAPPED
    assert "Strip it again" in notice(window).text()


def test_a_checkpoint_without_a_wrapper_prefix_says_nothing_about_one(make_window, qtbot, tmp_path, backbone_checkpoint):
    window = make_window(source=backbone_checkpoint, output=tmp_path / "out")
    wait_open(qtbot, window)
    assert not notice(window).isVisible() and window.undo_stack.count() == 0
    assert not window.prepared.plan.ok


def test_a_source_rule_is_previewed_on_the_plan_then_applied_in_one_undoable_step(
        make_window, answers, qtbot, tmp_path, backbone_checkpoint):
    window = make_window(source=backbone_checkpoint, output=tmp_path / "out")
    wait_open(qtbot, window)
    before = problems(window)
    assert row_of(window, "backbone." + KEY).status is Status.UNMAPPED
    window.act_bulk.trigger()
    dialog = window.fixes_editor.bulk_dialog
    assert dialog.mode_source.isChecked()  # unmapped keys: renaming the source keys comes first
    assert dialog.findChild(QLabel, "bulkScopeAll").isVisible() and not dialog.scope_filtered.isVisible()

    qtbot.keyClicks(dialog.pattern, r"^backbone\.")
    qtbot.waitUntil(lambda: dialog.result_preview is not None)
    preview = dialog.result_preview
    assert len(preview.rows) == dialog.preview.rowCount() == 64 and preview.count(Status.MAPPED) == 64
    first = [dialog.preview.item(0, column).text() for column in range(4)]
    assert first[0].startswith("backbone.encoder.") and first[1] == first[0].removeprefix("backbone.")
    assert first[3] == "mapped"
    assert "Renames 64 of 77 source keys: 64 map." in dialog.status.text()
    assert "no problems" in dialog.status.text()
    assert window.fixes.is_empty() and problems(window) == before  # only previewed
    assert dialog.ok_button.isEnabled()

    dialog.accept()
    assert window.prepared.plan.ok and convert_button(window).isEnabled()
    assert [(rule.pattern, rule.target) for rule in window.fixes.source_rules] == [(r"^backbone\.", "")]
    assert window.undo_stack.count() == 1 and "Rename source keys" in window.undo_stack.undoText()
    row = row_of(window, "backbone." + KEY)
    assert row.status is Status.MAPPED and row.by_fix

    mapping = tmp_path / "fixes.toml"  # saved as the mapping file's [[source_rules]]
    answers.save_file = mapping
    window.act_save_mapping.trigger()
    qtbot.waitUntil(mapping.exists)
    wait_idle(qtbot, window)
    saved = Overrides.load(mapping)
    assert [(rule.pattern, rule.target) for rule in saved.source_rules] == [(r"^backbone\.", "")]

    window.undo_stack.undo()
    assert window.fixes.is_empty() and problems(window) == before


def test_a_source_rule_that_leaves_problems_says_which(make_window, qtbot, tmp_path, backbone_checkpoint):
    window = make_window(source=backbone_checkpoint, output=tmp_path / "out")
    wait_open(qtbot, window)
    window.fixes_editor.bulk_rename("source")
    dialog = window.fixes_editor.bulk_dialog
    dialog.pattern.setText(r"^backbone\.encoder\.layers\.0\.")  # only the first layer
    dialog.replacement.setText("encoder.layers.0.")
    qtbot.waitUntil(lambda: dialog.result_preview is not None)
    assert dialog.result_preview.count(Status.MAPPED) == len(dialog.result_preview.rows) > 0
    assert "problem(s) remain" in dialog.status.text() and "unmapped source" in dialog.status.text()
    dialog.reject()
    wait_idle(qtbot, window)
    assert window.fixes.is_empty() and window.undo_stack.count() == 0


@pytest.mark.parametrize("pattern, said", [
    ("(", "invalid regular expression"),
    (r"^(\w+)+\.", "repeats a repetition"),
])
def test_a_pattern_the_core_refuses_is_said_in_the_dialog_and_disables_rename(
        make_window, answers, qtbot, tmp_path, backbone_checkpoint, pattern, said):
    window = make_window(source=backbone_checkpoint, output=tmp_path / "out")
    wait_open(qtbot, window)
    window.fixes_editor.bulk_rename("source")
    dialog = window.fixes_editor.bulk_dialog
    dialog.pattern.setText(pattern)
    qtbot.waitUntil(lambda: said in dialog.status.text())
    assert dialog.status.text().startswith("Not a valid pattern")
    assert not dialog.ok_button.isEnabled() and dialog.preview.rowCount() == 0
    dialog.accept()  # Enter: nothing is applied
    assert window.fixes.is_empty() and answers.criticals == []
    dialog.reject()


def test_a_pattern_that_backtracks_exponentially_is_refused_as_typed(make_window, answers, qtbot, tmp_path):
    # One key of forty 'a's and a '!': the pattern would try about 2**40 ways to match it.
    state = load_fs2("cs_s64")
    state["a" * 40 + "!"] = torch.zeros(1)
    path = tmp_path / "odd.pt"
    torch.save({"model": state}, path)
    window = make_window(source=path, output=tmp_path / "out")
    wait_open(qtbot, window)
    window.fixes_editor.bulk_rename("source")
    dialog = window.fixes_editor.bulk_dialog
    dialog.pattern.setText("^(a|aa)+$")
    qtbot.waitUntil(lambda: "can split a key among its repetitions in more than one way" in dialog.status.text())
    assert dialog.status.text().startswith("Not a valid pattern or replacement: the regular expression '^(a|aa)+$'")
    assert not dialog.ok_button.isEnabled() and answers.criticals == []
    dialog.reject()


def test_typing_is_previewed_once_it_pauses_and_applying_uses_what_was_previewed(
        make_window, qtbot, tmp_path, backbone_checkpoint):
    window = make_window(source=backbone_checkpoint, output=tmp_path / "out")
    wait_open(qtbot, window)
    window.fixes_editor.bulk_rename("source")
    dialog = window.fixes_editor.bulk_dialog
    started = []
    window.fixes_editor.previewing.busyChanged.connect(lambda busy: busy and started.append(dialog.pattern.text()))
    qtbot.keyClicks(dialog.pattern, r"^backbone\.")  # ten keystrokes, quicker than the pause
    qtbot.waitUntil(lambda: dialog.result_preview is not None)
    assert started == [r"^backbone\."]
    dialog.pattern.setText(r"^backbone\.encoder\.layers\.1\.")
    assert not dialog.ok_button.isEnabled()  # what is typed now is not previewed yet: Rename waits for it
    dialog.accept()
    assert window.fixes.is_empty()
    dialog.replacement.setText("encoder.layers.1.")
    qtbot.waitUntil(lambda: dialog.ok_button.isEnabled())
    dialog.accept()
    assert [(rule.pattern, rule.target) for rule in window.fixes.source_rules] == [
        (r"^backbone\.encoder\.layers\.1\.", "encoder.layers.1.")]
