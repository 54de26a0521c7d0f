"""Rivals that cannot take a parameter withhold nothing, and fixing one row never takes a confident
suggestion from another: a three-layer checkpoint saved from DDP with a few renamed keys and an
extra classifier whose shape fits no parameter, as a training run leaves it."""

from __future__ import annotations

import json

import pytest
import torch
from test_suggestions import expected_target

from speechport.core.conversion import prepare
from speechport.core.planning.mapping_file import Overrides
from speechport.core.planning.plan import Plan, PlanRow, Status, TargetTensor
from speechport.core.planning.suggestions import SIMILARITY_MARGIN, confident_fixes, suggest

from support import load_fs2

# cs_s48 has three layers (0, 1, 2) of width 48. The demo's name -> this training code's name.
RENAMES = {
    "encoder.layers.2.conv.depthwise_conv.weight": "encoder.layers.2.conv.dw_conv.weight",
    "encoder.layers.0.self_attn.q_proj.weight": "encoder.layers.0.self_attn.query.weight",
    "encoder.layers.1.ffn2_layer_norm.weight": "encoder.layers.1.ffn2_ln.weight",
    "encoder.layers.0.self_attn_layer_norm.weight": "encoder.layers.0.selfAttnLayerNorm.weight",
    "encoder.layers.1.self_attn.v_proj.bias": "encoder.layers.1.self_attn.value.bias",
}
DW_CONV = "module.encoder.layers.2.conv.dw_conv.weight"
AUX = "module.aux_classifier.weight"  # [10, 48]: no parameter of the model has that shape
# source key as saved -> the parameter it is
RIGHT = {"module." + new: expected_target(old) for old, new in RENAMES.items()}


def ddp_state(extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    state = {"module." + RENAMES.get(key, key): tensor for key, tensor in load_fs2("cs_s48").items()}
    state[AUX] = torch.randn(10, 48, generator=torch.Generator().manual_seed(0))
    state.update(extra or {})
    return state


@pytest.fixture(scope="module")
def ddp_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "trained.pt"
    torch.save({"model": ddp_state(), "epoch": 7}, path)
    return path


def opened(path):
    prepared = prepare(path)
    prepared.hasher.cancel()
    return prepared


def test_a_key_whose_shape_fits_no_parameter_withholds_nothing(ddp_checkpoint, run_cli):
    code, stdout, _ = run_cli("inspect", ddp_checkpoint, "--json")
    assert code == 3
    suggestions = json.loads(stdout)["suggestions"]
    assert set(suggestions) == set(RIGHT) | {AUX}
    # The only parameter of its shape in that layer, named alike: confident, though the classifier's
    # nearest name (of another shape) is the same parameter.
    assert suggestions[DW_CONV][0] == {"target": "encoder.layers.2.conv_module.depthwise_conv.weight",
                                       "shape_matches": True, "similarity": 1.0, "same_layer": True,
                                       "confident": True}
    assert suggestions[AUX][0]["target"] == "encoder.layers.2.conv_module.depthwise_conv.weight"
    assert not any(s["shape_matches"] or s["confident"] for s in suggestions[AUX])
    confident = {source: found[0]["target"] for source, found in suggestions.items() if found[0]["confident"]}
    assert confident == RIGHT
    code, stdout, _ = run_cli("inspect", ddp_checkpoint)
    assert (f"did you mean: {DW_CONV} -> encoder.layers.2.conv_module.depthwise_conv.weight (same shape, confident)"
            in stdout)


def test_a_rival_that_can_take_the_parameter_still_withholds_it(tmp_path):
    # A second key of the same shape, as alike, in the same layer: either could be the parameter.
    copy = "module.encoder.layers.2.conv.dw_conv_copy.weight"
    path = tmp_path / "two.pt"
    torch.save({"model": ddp_state({copy: torch.zeros(48, 1, 7)})}, path)
    suggestions = opened(path).suggestions()
    assert suggestions[copy][0].target == suggestions[DW_CONV][0].target == RIGHT[DW_CONV]
    assert confident_fixes(suggestions) == {source: target for source, target in RIGHT.items() if source != DW_CONV}


@pytest.mark.parametrize("fixed", sorted(RIGHT) + [AUX])
def test_fixing_one_row_leaves_every_other_confident_suggestion(ddp_checkpoint, fixed):
    prepared = opened(ddp_checkpoint)
    before = confident_fixes(prepared.suggestions())
    assert before == RIGHT
    fix = Overrides(drop={AUX: "the training run's classifier"}) if fixed == AUX else Overrides(
        rename={fixed: RIGHT[fixed]})
    prepared.replan(fix)
    assert [row.status for row in prepared.plan.rows if row.source_key == fixed] == [
        Status.DROPPED if fixed == AUX else Status.MAPPED]
    after = confident_fixes(prepared.suggestions())
    assert after == {source: target for source, target in before.items() if source != fixed}


def test_fixes_made_one_by_one_never_lower_the_count_of_the_others(ddp_checkpoint):
    # The order the issue met it in: the unsure row first (by hand), then the classifier, then the rest.
    prepared = opened(ddp_checkpoint)
    fixes = Overrides()
    counts = [len(confident_fixes(prepared.suggestions()))]
    for source in [DW_CONV, AUX, *sorted(set(RIGHT) - {DW_CONV})]:
        if source == AUX:
            fixes.drop[AUX] = "the training run's classifier"
        else:
            fixes.rename[source] = RIGHT[source]
        prepared.replan(fixes)
        counts.append(len(confident_fixes(prepared.suggestions())))
    assert counts == [5, 4, 4, 3, 2, 1, 0]
    assert prepared.plan.ok


def _row(source: str, shape: tuple[int, ...]) -> PlanRow:
    return PlanRow(source, shape, "float32", None, None, Status.UNMAPPED)


def test_a_near_rival_in_the_same_layer_is_seen_behind_one_of_another_layer():
    # Ranked: the same layer's `tau` (8/9 alike), the next layer's `tau` (as alike, another layer),
    # then the same layer's `tau rho` (8/10): less alike than the best by less than the margin, so
    # the best is never confident — not before the next layer's parameter is claimed, and not after.
    source = "net.0.alpha.beta.gamma.delta.omega.sigma.kappa"
    best, other_layer, near = (source + ".tau", source.replace(".0.", ".1.") + ".tau", source + ".tau.rho")
    targets = {key: TargetTensor((8, 8), "float32") for key in (best, other_layer, near)}
    plan = Plan("test", "test", "Test", [_row(source, (8, 8))])
    ranked = suggest(plan, targets)[source]
    assert [s.target for s in ranked] == [best, other_layer, near]
    assert 0 < ranked[0].similarity - ranked[2].similarity < SIMILARITY_MARGIN
    assert not ranked[0].confident
    claimed = PlanRow("x", (8, 8), "float32", other_layer, (8, 8), Status.MAPPED)
    assert not suggest(Plan("test", "test", "Test", [_row(source, (8, 8)), claimed]), targets)[source][0].confident
    # Without the near one, the best is confident: another layer's parameter alone raises no doubt.
    del targets[near]
    assert suggest(plan, targets)[source][0].confident


def test_the_window_notice_never_drops_for_rows_the_fix_did_not_touch(make_window, qtbot, tmp_path, ddp_checkpoint):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    from speechport.gui.mapping.plan_model import Column

    from gui_support import open_editor, proxy_index, row_of, wait_idle, wait_open

    window = make_window(source=ddp_checkpoint, output=tmp_path / "out")
    wait_open(qtbot, window)
    wait_idle(qtbot, window)
    notice = window.findChild(QLabel, "suggestionsNoticeText")

    def confident_count() -> int:
        wait_idle(qtbot, window)
        text = notice.text() if notice.isVisible() else ""
        return int(text.split(" ", 1)[0]) if text.startswith(tuple("0123456789")) else 0

    assert confident_count() == 5
    assert window.suggestions.confident() == RIGHT
    # The layer-2 depthwise conv, typed by hand: the four others stay confident.
    editor = open_editor(qtbot, window, proxy_index(window, DW_CONV, Column.TARGET))
    editor.setText(RIGHT[DW_CONV])
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: row_of(window, DW_CONV).status is Status.MAPPED)
    assert confident_count() == 4
    assert window.suggestions.confident() == {s: t for s, t in RIGHT.items() if s != DW_CONV}
    # The classifier dropped: still four.
    window.mapping_page.table.selectRow(proxy_index(window, AUX, Column.SOURCE).row())
    window.act_drop.trigger()
    qtbot.waitUntil(lambda: row_of(window, AUX).status is Status.DROPPED)
    assert confident_count() == 4
    window.act_suggestions.trigger()
    wait_idle(qtbot, window)
    assert window.prepared.plan.ok and confident_count() == 0
