"""The mapping plan as a Qt table: one row per plan row, plus a proxy that filters by status and text.

The model only shows a `core.plan.Plan`; it never changes one. An edit of a key is turned into a
request (`renameRequested`) that the window records as an undoable change of the user's fixes,
after which the core computes a new plan and the model shows it. An unmapped row whose best
suggestion is confident (`core.suggestions`) says which parameter it probably is.
"""

from __future__ import annotations

from enum import IntEnum

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QFont, QGuiApplication, QPalette

from ...core.planning.plan import STATUS_HELP, Plan, PlanRow, Status
from ..shared import theme

MISSING_SOURCE_TEXT = "— nothing —"
SUGGESTION_TEXT = "did you mean {}?"
DROPPED_TARGET_TEXT = "— dropped —"
NO_TARGET_TEXT = "— none —"

# Filter choices besides a single status.
ALL_ROWS = "all"
PROBLEM_ROWS = "problems"


class Column(IntEnum):
    SOURCE = 0
    SHAPE = 1
    DTYPE = 2
    TARGET = 3
    TARGET_SHAPE = 4
    STATUS = 5


HEADERS = {
    Column.SOURCE: "Source key",
    Column.SHAPE: "Shape",
    Column.DTYPE: "Dtype",
    Column.TARGET: "Target key",
    Column.TARGET_SHAPE: "Target shape",
    Column.STATUS: "Status",
}

HEADER_TIPS = {
    Column.SOURCE: "The key in the checkpoint file",
    Column.SHAPE: "The tensor's shape in the checkpoint",
    Column.DTYPE: "The tensor's dtype in the checkpoint (kept as is)",
    Column.TARGET: "The transformers parameter it becomes; double-click or F2 to change it",
    Column.TARGET_SHAPE: "The parameter's shape in the target model (built on the meta device)",
    Column.STATUS: "What happens to the key, and whether that is a problem",
}

# Roles beyond Qt's own, for the proxy, the delegates and the tests.
ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the PlanRow
STATUS_ROLE = Qt.ItemDataRole.UserRole + 2  # the Status value (a str)
SUGGESTION_ROLE = Qt.ItemDataRole.UserRole + 3  # the target key an unmapped row surely is, or None


def format_shape(shape) -> str:
    if shape is None:
        return ""
    return "[" + ", ".join(str(n) for n in shape) + "]"


def row_tooltip(row: PlanRow, suggestions=()) -> str:
    """What the status means for this row and the likely fix, in a sentence or two; with the row's
    ranked `core.suggestions.Suggestion`s, which parameters it probably is."""
    lines = [f"<b>{row.status.value}</b>"]
    help_text = STATUS_HELP[row.status]
    if row.reason and row.reason != help_text:
        lines.append(_escape(row.reason) if help_text in row.reason else f"{_escape(row.reason)}<br>{_escape(help_text)}")
    else:
        lines.append(_escape(help_text))
    if row.rule:
        lines.append(f"<i>rule:</i> {_escape(row.rule)}")
    if row.via:
        lines.append(f"<i>via:</i> {_escape(' → '.join(row.via))}")
    fitting = [s for s in suggestions if s.shape_matches]
    if fitting and fitting[0].confident:
        lines.append(f"<i>did you mean:</i> {_escape(fitting[0].target)} — same shape, same layer, alike names. "
                     "Apply confident suggestions fixes it, with every other such row.")
    elif fitting:
        lines.append("<i>parameters of its shape, most alike first:</i> " + _escape(", ".join(s.target for s in fitting[:3])))
    return "<p style='white-space:pre-wrap'>" + "<br>".join(lines) + "</p>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def row_identity(row: PlanRow) -> tuple[str, str]:
    """Rows keep their place across plans: source rows by source key, missing rows by target key."""
    return ("source", row.source_key) if row.source_key is not None else ("missing", row.target_key or "")


class PlanTableModel(QAbstractTableModel):
    # source key, new target key ("" = back to the recipe's rules); emitted by an inline edit
    renameRequested = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[PlanRow] = []
        self._plan: Plan | None = None
        self._editable = True
        self._suggestions: dict[str, list] = {}  # source key -> core.suggestions.Suggestion, best first
        self._mono = QFont("monospace")
        self._mono.setStyleHint(QFont.StyleHint.TypeWriter)
        self._hint = QFont()
        self._hint.setItalic(True)

    # -- content ------------------------------------------------------------------------------
    @property
    def plan(self) -> Plan | None:
        return self._plan

    def rows(self) -> list[PlanRow]:
        return list(self._rows)

    def row_at(self, row: int) -> PlanRow:
        return self._rows[row]

    def row_of_source(self, source_key: str) -> int:
        for number, row in enumerate(self._rows):
            if row.source_key == source_key:
                return number
        return -1

    def row_of_missing_target(self, target_key: str) -> int:
        for number, row in enumerate(self._rows):
            if row.source_key is None and row.target_key == target_key:
                return number
        return -1

    def set_plan(self, plan: Plan | None) -> None:
        """Show a new plan, keeping rows (and so the selection) in place when only statuses changed.

        A replan keeps every source row in order and only changes the trailing missing-target
        rows, so those are inserted or removed and the rest are updated in place.
        """
        new_rows = list(plan.rows) if plan is not None else []
        old_ids = [row_identity(r) for r in self._rows]
        new_ids = [row_identity(r) for r in new_rows]
        self._plan = plan
        common = 0
        while common < min(len(old_ids), len(new_ids)) and old_ids[common] == new_ids[common]:
            common += 1
        if common == 0 and (old_ids or new_ids):
            self.beginResetModel()
            self._rows = new_rows
            self.endResetModel()
            return
        if len(old_ids) > common:
            self.beginRemoveRows(QModelIndex(), common, len(old_ids) - 1)
            self._rows = self._rows[:common]
            self.endRemoveRows()
        self._rows[:common] = new_rows[:common]
        if common:
            self.dataChanged.emit(self.index(0, 0), self.index(common - 1, len(Column) - 1))
        if len(new_ids) > common:
            self.beginInsertRows(QModelIndex(), common, len(new_ids) - 1)
            self._rows = new_rows
            self.endInsertRows()

    def set_suggestions(self, ranked: dict[str, list]) -> None:
        """The ranked suggestions for the plan shown (`PlanSuggestions.ranked`)."""
        if ranked == self._suggestions:
            return
        self._suggestions = ranked
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(Column) - 1))

    def suggestions_for(self, row: PlanRow) -> list:
        return self._suggestions.get(row.source_key, []) if row.source_key is not None else []

    def confident_suggestion(self, row: PlanRow) -> str | None:
        """The parameter an unmapped row surely is, or None."""
        found = self.suggestions_for(row)
        if found and found[0].confident and row.status is Status.UNMAPPED and not row.target_key:
            return found[0].target
        return None

    def set_editable(self, editable: bool) -> None:
        """While a conversion runs the plan must not change under it."""
        self._editable = editable

    def refresh_colours(self) -> None:
        """The palette changed (light <-> dark): repaint with the matching status colours."""
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(Column) - 1))

    # -- QAbstractTableModel --------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(Column):
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[Column(section)]
            if role == Qt.ItemDataRole.ToolTipRole:
                return HEADER_TIPS[Column(section)]
        if orientation == Qt.Orientation.Vertical and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self._rows):
            return str(section + 1)
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if self._editable and self.is_editable(index.row(), index.column()):
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def is_editable(self, row: int, column: int) -> bool:
        plan_row = self._rows[row]
        if column == Column.TARGET:
            return plan_row.source_key is not None and plan_row.source_shape is not None  # a tensor
        if column == Column.SOURCE:
            return plan_row.source_key is None  # a missing target: choose the source that fills it
        return False

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        column = Column(index.column())
        suggested = self.confident_suggestion(row) if column == Column.TARGET else None
        if suggested is not None and role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ForegroundRole,
                                              Qt.ItemDataRole.FontRole):
            if role == Qt.ItemDataRole.DisplayRole:
                return SUGGESTION_TEXT.format(suggested)
            if role == Qt.ItemDataRole.ForegroundRole:
                return QBrush(theme.message_colour("info"))
            return self._hint
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.EditRole:
            if column == Column.TARGET:
                return row.target_key or ""
            if column == Column.SOURCE:
                return row.source_key or ""
            return self._display(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return row_tooltip(row, self.suggestions_for(row))
        if role == Qt.ItemDataRole.DecorationRole and column == Column.STATUS:
            return theme.status_icon(row.status)
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == Column.STATUS:
                return QBrush(theme.status_colour(row.status))
            if self._is_placeholder(row, column) or row.status is Status.DROPPED:
                palette = QGuiApplication.palette()
                return QBrush(palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
            return None
        if role == Qt.ItemDataRole.BackgroundRole:
            tint = theme.status_tint(row.status)
            return QBrush(tint) if tint is not None else None
        if role == Qt.ItemDataRole.FontRole and column in (Column.SOURCE, Column.TARGET) and not self._is_placeholder(row, column):
            return self._mono
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.SHAPE, Column.TARGET_SHAPE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == SUGGESTION_ROLE:
            return suggested
        if role == ROW_ROLE:
            return row
        if role == STATUS_ROLE:
            return row.status.value
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not (self.flags(index) & Qt.ItemFlag.ItemIsEditable):
            return False
        row = self._rows[index.row()]
        text = str(value).strip()
        if index.column() == Column.TARGET:
            if text == (row.target_key or ""):
                return False
            self.renameRequested.emit(row.source_key, text)
            return True
        if index.column() == Column.SOURCE and text:
            # Map the chosen source key onto this missing target.
            self.renameRequested.emit(text, row.target_key)
            return True
        return False

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _is_placeholder(row: PlanRow, column: Column) -> bool:
        return (column == Column.SOURCE and row.source_key is None) or (column == Column.TARGET and not row.target_key)

    @staticmethod
    def _display(row: PlanRow, column: Column) -> str:
        if column == Column.SOURCE:
            return row.source_key if row.source_key is not None else MISSING_SOURCE_TEXT
        if column == Column.SHAPE:
            return format_shape(row.source_shape) if row.source_shape is not None else ("" if row.source_key is None else "not a tensor")
        if column == Column.DTYPE:
            return row.source_dtype or ""
        if column == Column.TARGET:
            if row.target_key:
                return row.target_key
            return DROPPED_TARGET_TEXT if row.status is Status.DROPPED else NO_TARGET_TEXT
        if column == Column.TARGET_SHAPE:
            return format_shape(row.target_shape)
        return row.status.value

    def sort_key(self, row_number: int, column: int):
        return self._sort_key(self._rows[row_number], Column(column), row_number)

    @staticmethod
    def _sort_key(row: PlanRow, column: Column, position: int):
        if column == Column.SHAPE:
            return (_numel(row.source_shape), position)
        if column == Column.TARGET_SHAPE:
            return (_numel(row.target_shape), position)
        if column == Column.STATUS:
            # Problems first, then by kind; ties keep the checkpoint's order.
            return (0 if row.status.is_problem else 1, list(Status).index(row.status), position)
        return (PlanTableModel._display(row, column).lower(), position)


def _numel(shape) -> int:
    if shape is None:
        return -1
    total = 1
    for n in shape:
        total *= n
    return total


class PlanFilterProxy(QSortFilterProxyModel):
    """Shows the rows of one status (or every problem) whose keys contain every word typed."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._status = ALL_ROWS
        self._words: list[str] = []
        self.setDynamicSortFilter(True)

    @property
    def status_filter(self) -> str:
        return self._status

    def set_status_filter(self, status: str) -> None:
        """`ALL_ROWS`, `PROBLEM_ROWS` or a `Status` value."""
        if status != self._status:
            self._change_filter(lambda: setattr(self, "_status", status))

    def set_text_filter(self, text: str) -> None:
        words = text.lower().split()
        if words != self._words:
            self._change_filter(lambda: setattr(self, "_words", words))

    def _change_filter(self, change) -> None:
        if hasattr(self, "endFilterChange"):  # Qt 6.10+
            self.beginFilterChange()
            change()
            self.endFilterChange()
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        model = self.sourceModel()
        row: PlanRow = model.data(model.index(source_row, 0, source_parent), ROW_ROLE)
        if row is None:
            return False
        if self._status == PROBLEM_ROWS and not row.status.is_problem:
            return False
        if self._status not in (ALL_ROWS, PROBLEM_ROWS) and row.status.value != self._status:
            return False
        if self._words:
            haystack = f"{row.source_key or ''}\n{row.target_key or ''}".lower()
            return all(word in haystack for word in self._words)
        return True

    def lessThan(self, left, right) -> bool:
        # Sort keys are tuples (problems first, then checkpoint order): compared in Python.
        model = self.sourceModel()
        return model.sort_key(left.row(), left.column()) < model.sort_key(right.row(), right.column())

    def source_rows(self, proxy_indexes) -> list[int]:
        """Distinct model rows of proxy indexes (e.g. a selection), in table order."""
        rows = {self.mapToSource(index).row() for index in proxy_indexes if index.isValid()}
        return sorted(rows)

    def visible_source_rows(self) -> list[int]:
        return [self.mapToSource(self.index(r, 0)).row() for r in range(self.rowCount())]
