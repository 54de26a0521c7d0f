"""The mapping table's Qt model and its filter proxy, on plans the core builds from the fixtures."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QModelIndex, Qt  # noqa: E402

from speechport.core.planning.mapping_file import Overrides  # noqa: E402
from speechport.core.planning.plan import STATUS_HELP, Status  # noqa: E402
from speechport.gui.mapping.plan_model import (  # noqa: E402
    ALL_ROWS,
    PROBLEM_ROWS,
    ROW_ROLE,
    Column,
    PlanFilterProxy,
    PlanTableModel,
)
from speechport.gui.workspace import commands  # noqa: E402

from support import checkpoint_path  # noqa: E402

BROKEN_KEY = "encoder.layers.0.ffn1.inner_proj.weight"
ITS_TARGET = "encoder.layers.0.ffn1.intermediate_dense.weight"


@pytest.fixture(scope="module")
def prepared():
    from speechport.core.conversion import prepare

    opened = prepare(checkpoint_path("cs_s64"))
    yield opened
    opened.hasher.cancel()


@pytest.fixture
def clean_plan(prepared):
    return prepared.replan(Overrides())


@pytest.fixture
def broken_plan(prepared):
    return prepared.replan(Overrides(rename={BROKEN_KEY: "encoder.layers.0.ffn1.no_such.weight"}))


def test_model_passes_the_model_tester(qtmodeltester, clean_plan, broken_plan):
    model = PlanTableModel()
    model.set_plan(clean_plan)
    qtmodeltester.check(model)
    # The tester stays attached: changing plans must emit consistent signals too.
    model.set_plan(broken_plan)
    model.set_plan(clean_plan)
    model.set_plan(None)
    model.set_plan(broken_plan)
    qtmodeltester.check(model)


def test_proxy_passes_the_model_tester(qtmodeltester, clean_plan, broken_plan):
    model = PlanTableModel()
    model.set_plan(broken_plan)
    proxy = PlanFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    proxy.set_status_filter(PROBLEM_ROWS)
    qtmodeltester.check(proxy)
    proxy.set_text_filter("ffn1")
    model.set_plan(clean_plan)
    proxy.sort(Column.STATUS, Qt.SortOrder.AscendingOrder)
    qtmodeltester.check(proxy)


def test_one_row_per_source_key_with_shapes_and_status(clean_plan):
    model = PlanTableModel()
    model.set_plan(clean_plan)
    assert model.rowCount() == 77
    assert model.columnCount() == len(Column)
    keys = [model.index(r, Column.SOURCE).data() for r in range(model.rowCount())]
    assert len(set(keys)) == 77
    row = model.row_of_source(BROKEN_KEY)
    assert model.index(row, Column.SHAPE).data() == "[128, 64]"
    assert model.index(row, Column.DTYPE).data() == "float32"
    assert model.index(row, Column.TARGET).data() == ITS_TARGET
    assert model.index(row, Column.TARGET_SHAPE).data() == "[128, 64]"
    assert model.index(row, Column.STATUS).data() == "mapped"
    assert not model.index(row, Column.STATUS).data(Qt.ItemDataRole.DecorationRole).isNull()
    assert model.flags(model.index(row, Column.TARGET)) & Qt.ItemFlag.ItemIsEditable
    assert not model.flags(model.index(row, Column.SHAPE)) & Qt.ItemFlag.ItemIsEditable
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in Column]
    assert headers == ["Source key", "Shape", "Dtype", "Target key", "Target shape", "Status"]


def test_problem_rows_explain_themselves(broken_plan):
    model = PlanTableModel()
    model.set_plan(broken_plan)
    row = model.row_of_source(BROKEN_KEY)
    status = model.index(row, Column.STATUS)
    assert status.data() == Status.UNMAPPED.value
    tip = status.data(Qt.ItemDataRole.ToolTipRole)
    assert "no_such" in tip and "give it a target key" in tip  # the problem and the likely fix
    assert status.data(Qt.ItemDataRole.BackgroundRole) is not None  # tinted
    assert status.data(Qt.ItemDataRole.ForegroundRole).color().isValid()
    missing = model.row_of_missing_target(ITS_TARGET)
    assert missing >= 0
    assert model.index(missing, Column.SOURCE).data() == "— nothing —"
    assert STATUS_HELP[Status.MISSING].split(":")[0] in model.index(missing, Column.STATUS).data(Qt.ItemDataRole.ToolTipRole)
    # A missing target is fixed by choosing its source: that cell is the editable one.
    assert model.flags(model.index(missing, Column.SOURCE)) & Qt.ItemFlag.ItemIsEditable
    assert not model.flags(model.index(missing, Column.TARGET)) & Qt.ItemFlag.ItemIsEditable


def test_replan_updates_rows_in_place(qtbot, clean_plan, broken_plan):
    model = PlanTableModel()
    model.set_plan(clean_plan)
    with qtbot.assertNotEmitted(model.modelReset):
        with qtbot.waitSignal(model.rowsInserted):
            model.set_plan(broken_plan)
    assert model.rowCount() == 78  # the target the broken key no longer fills
    with qtbot.waitSignal(model.rowsRemoved):
        model.set_plan(clean_plan)
    assert model.rowCount() == 77


def test_edit_becomes_a_rename_request(qtbot, clean_plan, broken_plan):
    model = PlanTableModel()
    model.set_plan(clean_plan)
    row = model.row_of_source(BROKEN_KEY)
    with qtbot.waitSignal(model.renameRequested) as signal:
        assert model.setData(model.index(row, Column.TARGET), "encoder.other.weight")
    assert signal.args == [BROKEN_KEY, "encoder.other.weight"]
    model.set_plan(broken_plan)
    missing = model.row_of_missing_target(ITS_TARGET)
    with qtbot.waitSignal(model.renameRequested) as signal:
        assert model.setData(model.index(missing, Column.SOURCE), BROKEN_KEY)
    assert signal.args == [BROKEN_KEY, ITS_TARGET]
    model.set_editable(False)
    assert not model.setData(model.index(row, Column.TARGET), "x")


def test_proxy_filters_by_status_and_words(clean_plan, broken_plan):
    model = PlanTableModel()
    model.set_plan(broken_plan)
    proxy = PlanFilterProxy()
    proxy.setSourceModel(model)
    assert proxy.rowCount() == 78
    proxy.set_status_filter(PROBLEM_ROWS)
    statuses = {proxy.index(r, 0).data(ROW_ROLE).status for r in range(proxy.rowCount())}
    assert statuses == {Status.UNMAPPED, Status.MISSING}
    proxy.set_status_filter(Status.DROPPED.value)
    assert proxy.rowCount() == 8
    proxy.set_status_filter(ALL_ROWS)
    proxy.set_text_filter("LAYERS.1 ffn2")  # every word, case-insensitive, source or target key
    keys = [proxy.index(r, 0).data(ROW_ROLE).source_key for r in range(proxy.rowCount())]
    assert keys and all("layers.1." in k and "ffn2" in k for k in keys)
    proxy.set_text_filter("intermediate_dense")  # matches target keys too
    assert proxy.rowCount() == 2 * 2 * 2  # two layers, two FFNs, weight and bias
    model.set_plan(None)
    assert proxy.rowCount() == 0 and proxy.index(0, 0) == QModelIndex()


def test_status_sort_puts_problems_first(broken_plan):
    model = PlanTableModel()
    model.set_plan(broken_plan)
    proxy = PlanFilterProxy()
    proxy.setSourceModel(model)
    proxy.sort(Column.STATUS, Qt.SortOrder.AscendingOrder)
    first = [proxy.index(r, 0).data(ROW_ROLE).status for r in range(2)]
    assert all(status.is_problem for status in first)


def test_commands_edit_overrides_only():
    start = Overrides(rename={"a": "x"}, drop={"b": "why"})
    assert commands.renamed(start, {"b": "y", "a": ""}).rename == {"b": "y"}
    assert commands.dropped(start, ["a"]).drop == {"b": "why", "a": commands.DROP_REASON}
    assert commands.restored(start, ["a", "b"]).is_empty()
    assert start.rename == {"a": "x"} and start.drop == {"b": "why"}  # never mutated
    renames = commands.regex_renames(["enc.layers.0.q.weight", "enc.layers.1.q.bias", "other"], r"\.q\.", ".linear_q.")
    assert renames == {"enc.layers.0.q.weight": "enc.layers.0.linear_q.weight", "enc.layers.1.q.bias": "enc.layers.1.linear_q.bias"}


def test_a_confident_suggestion_is_shown_in_the_target_cell_of_its_row(qtmodeltester, qtbot, prepared):
    from speechport.core.planning.mapping_file import source_rule
    from speechport.core.planning.suggestions import Suggestion

    # A source rule renames the key to a name no rule knows: unmapped, with no target key.
    plan = prepared.replan(Overrides(source_rules=[source_rule(r"layers\.0\.ffn1\.inner_proj", "layers.0.ffn1.odd")]))
    model = PlanTableModel()
    model.set_plan(plan)
    qtmodeltester.check(model)
    row = model.row_of_source(BROKEN_KEY)
    assert model.row_at(row).status is Status.UNMAPPED and not model.row_at(row).target_key
    cell = model.index(row, Column.TARGET)
    sure = Suggestion(ITS_TARGET, shape_matches=True, similarity=0.9, same_layer=True, confident=True)
    unsure = Suggestion(ITS_TARGET, shape_matches=True, similarity=0.4, same_layer=True, confident=False)
    with qtbot.waitSignal(model.dataChanged):
        model.set_suggestions({BROKEN_KEY: [sure]})
    assert cell.data() == f"did you mean {ITS_TARGET}?"
    assert "did you mean:" in cell.data(Qt.ItemDataRole.ToolTipRole)
    assert cell.data(Qt.ItemDataRole.EditRole) == ""  # editing starts from what the row holds
    model.set_suggestions({BROKEN_KEY: [unsure]})  # not sure: only the tooltip names the candidates
    assert cell.data() == "— none —"
    assert ITS_TARGET in cell.data(Qt.ItemDataRole.ToolTipRole)
    qtmodeltester.check(model)
    prepared.replan(Overrides())
