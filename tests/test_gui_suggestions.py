"""Suggestions in the mapping table: the parameters that fit offered first when a key is typed, the
others marked; an unmapped row that surely is some parameter says so; and the confident ones are
applied in one undoable step."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLabel, QPushButton  # noqa: E402
from test_suggestions import EIGHT_RENAMES, expected_target  # noqa: E402

from speechport.core.planning.plan import Status  # noqa: E402
from speechport.gui.mapping import plan_suggestions  # noqa: E402
from speechport.gui.mapping.plan_model import Column  # noqa: E402

from gui_support import convert_button, open_editor, proxy_index, row_of, wait_idle, wait_open  # noqa: E402
from support import load_fs2  # noqa: E402


def saved(tmp_path, name, state):
    path = tmp_path / name
    torch.save({"model": state}, path)
    return path


@pytest.fixture
def eight_renamed(tmp_path):
    state = load_fs2("cs_s64")
    for old, new in EIGHT_RENAMES.items():
        state[new] = state.pop(old)
    return saved(tmp_path, "eight.pt", state)


def test_confident_suggestions_are_shown_and_applied_in_one_undoable_step(make_window, qtbot, tmp_path, eight_renamed):
    window = make_window(source=eight_renamed, output=tmp_path / "out")
    wait_open(qtbot, window)
    wait_idle(qtbot, window)  # the ranking runs in the background
    unmapped = [row.source_key for row in window.prepared.plan.problems() if row.status is Status.UNMAPPED]
    assert sorted(unmapped) == sorted(EIGHT_RENAMES.values()) and not convert_button(window).isEnabled()

    # Each unmapped row says which parameter it surely is.
    for old, new in EIGHT_RENAMES.items():
        cell = proxy_index(window, new, Column.TARGET)
        assert cell.data() == f"did you mean {expected_target(old)}?", new
        assert "did you mean" in cell.data(Qt.ItemDataRole.ToolTipRole)
    notice = window.findChild(QLabel, "suggestionsNoticeText")
    assert notice.isVisible() and notice.text().startswith("8 unmapped key(s) have a confident suggestion")
    button = window.findChild(QPushButton, "applySuggestionsButton")
    assert button.isEnabled() and window.act_suggestions.isEnabled()

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert window.prepared.plan.ok and convert_button(window).isEnabled()
    assert window.fixes.rename == {new: expected_target(old) for old, new in EIGHT_RENAMES.items()}
    assert window.undo_stack.count() == 1 and window.undo_stack.undoText() == "Apply 8 confident suggestion(s)"
    wait_idle(qtbot, window)
    assert not window.act_suggestions.isEnabled() and not notice.isVisible()

    window.act_undo.trigger()  # one step back: all eight problems again
    unmapped = [row.source_key for row in window.prepared.plan.problems() if row.status is Status.UNMAPPED]
    assert sorted(unmapped) == sorted(EIGHT_RENAMES.values()) and window.fixes.is_empty()
    assert not convert_button(window).isEnabled()
    wait_idle(qtbot, window)
    assert window.act_suggestions.isEnabled()


def test_completion_offers_the_parameters_that_fit_first_and_marks_the_others(make_window, qtbot, tmp_path):
    # A [64, 64] projection and a [64] layer norm, both under names no rule knows.
    state = load_fs2("cs_s64")
    weight = "encoder.layers.0.self_attn.normed_q.weight"
    state[weight] = state.pop("encoder.layers.0.self_attn.q_proj.weight")
    state["encoder.layers.0.attn_prenorm.weight"] = state.pop("encoder.layers.0.self_attn_layer_norm.weight")
    window = make_window(source=saved(tmp_path, "two.pt", state), output=tmp_path / "out")
    wait_open(qtbot, window)
    wait_idle(qtbot, window)
    editor = open_editor(qtbot, window, proxy_index(window, weight, Column.TARGET))
    model = editor.completer().model()
    candidates = model.candidates()
    assert [c.key for c in candidates] == ["encoder.layers.0.self_attn.linear_q.weight",
                                            "encoder.layers.0.self_attn_layer_norm.weight"]
    assert candidates[0].fits and not candidates[1].fits
    shown = [model.index(n, 0).data() for n in range(model.rowCount())]
    assert shown[0].startswith("encoder.layers.0.self_attn.linear_q.weight")
    assert shown[1] == "encoder.layers.0.self_attn_layer_norm.weight    — [64] does not fit [64, 64]"
    assert model.index(1, 0).data(Qt.ItemDataRole.EditRole) == "encoder.layers.0.self_attn_layer_norm.weight"
    assert "shape mismatch" in model.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)
    popup = editor.completer().popup()
    qtbot.waitUntil(popup.isVisible)
    popup.setCurrentIndex(editor.completer().completionModel().index(0, 0))
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: row_of(window, weight).status is Status.MAPPED)

    # The source cell of the missing layer norm offers the [64] tensor before any other.
    missing = window.model.row_of_missing_target("encoder.layers.0.self_attn_layer_norm.weight")
    index = window.proxy.mapFromSource(window.model.index(missing, Column.SOURCE))
    keys = [c for c in open_editor(qtbot, window, index).completer().model().candidates()]
    assert keys[0].key == "encoder.layers.0.attn_prenorm.weight" and keys[0].fits


def test_too_many_unmapped_keys_to_compare_point_to_a_source_rule(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(plan_suggestions, "PAIR_LIMIT", 100)
    state = {("backbone." + key if key.startswith("encoder.") else key): value for key, value in load_fs2("cs_s64").items()}
    window = make_window(source=saved(tmp_path, "backbone.pt", state), output=tmp_path / "out")
    wait_open(qtbot, window)
    wait_idle(qtbot, window)
    notice = window.findChild(QLabel, "suggestionsNoticeText")
    assert notice.isVisible() and notice.text().startswith("64 keys are unmapped — too many to compare one by one")
    assert not window.act_suggestions.isEnabled()
    notice.linkActivated.emit("#rename-source")
    dialog = window.fixes_editor.bulk_dialog
    assert dialog is not None and dialog.isVisible() and dialog.mode_source.isChecked()
    dialog.reject()
