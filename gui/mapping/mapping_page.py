"""The Mapping tab: the plan table with its text and status filters, the row actions beside them,
notices about the plan as a whole above it (`PlanNotices`), a summary of the statuses under it,
and what to do while no plan is open.

The page shows a `core.plan.Plan` and reports what the user asks for (a rename typed in a cell,
the rows selected); the user's fixes themselves live in `FixesEditor`.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...core.planning.plan import Plan, PlanRow, Status
from ..shared import theme
from ..shared.widgets import ActionButton, FocusTableView
from .key_completion import KeyCandidate, KeyEditorDelegate, source_candidates, target_candidates
from .plan_model import ALL_ROWS, PROBLEM_ROWS, Column, PlanFilterProxy, PlanTableModel

EDIT_TRIGGERS = QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed


# What the first window offers a new user: the demo, converted and auditioned in one click.
TRY_DEMO = "Try the demo: convert and audition a small model"


class MappingPage(QWidget):
    statusMessage = Signal(str, int)  # text, milliseconds: for the window's status bar
    openRequested = Signal()
    demoRequested = Signal()
    guideRequested = Signal()

    def __init__(
        self,
        *,
        prepared: Callable[[], object],
        drop_action: QAction,
        restore_action: QAction,
        bulk_action: QAction,
        problems_action: QAction,
        suggestions_action: QAction,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("mappingPage")
        self._prepared = prepared  # the window's core.conversion.Prepared, or None
        self._problems_action = problems_action
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.setSpacing(5)

        tools = QHBoxLayout()
        tools.setSpacing(6)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setObjectName("mappingFilter")
        self.filter_edit.setPlaceholderText("Filter keys… (Ctrl+F)")
        self.filter_edit.setToolTip("Show rows whose source or target key contains every word typed")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Filter keys")
        self.status_filter = QComboBox(self)
        self.status_filter.setObjectName("statusFilter")
        self.status_filter.setToolTip("Show rows of one status, or every problem")
        self.status_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.status_filter.setAccessibleName("Status filter")
        self.fill_status_filter(None)
        tools.addWidget(self.filter_edit, 2)
        tools.addWidget(self.status_filter)
        tools.addStretch(1)
        self.drop_button = ActionButton(drop_action, "dropButton", self)
        self.restore_button = ActionButton(restore_action, "restoreButton", self)
        self.bulk_button = ActionButton(bulk_action, "bulkRenameButton", self)
        self.suggestions_button = ActionButton(suggestions_action, "applySuggestionsButton", self)
        for button in (self.suggestions_button, self.drop_button, self.restore_button, self.bulk_button):
            tools.addWidget(button)
        layout.addLayout(tools)
        self._notices_at = layout.count()  # where `set_notices` puts them: between the tools and the table

        self.model = PlanTableModel(self)
        self.proxy = PlanFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = self._build_table(drop_action)
        self.empty_state = self._build_empty_state()
        self.table_stack = QStackedWidget(self)
        self.table_stack.addWidget(self.empty_state)
        self.table_stack.addWidget(self.table)
        layout.addWidget(self.table_stack, 1)

        self.summary_label = QLabel(self)
        self.summary_label.setObjectName("statusSummary")
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)

        self.filter_edit.textChanged.connect(self.proxy.set_text_filter)
        self.filter_edit.textChanged.connect(self.update_summary)
        self.status_filter.currentIndexChanged.connect(self._status_filter_chosen)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset, self.proxy.layoutChanged):
            signal.connect(self.update_summary)

    def _build_table(self, drop_action: QAction) -> QTableView:
        table = FocusTableView(self)  # Tab leaves it; its current cell is framed
        table.setObjectName("mappingTable")
        table.setModel(self.proxy)
        table.setAccessibleName("Mapping plan")
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.setEditTriggers(EDIT_TRIGGERS)
        table.setAlternatingRowColors(True)
        table.setWordWrap(False)
        table.setTextElideMode(Qt.TextElideMode.ElideLeft)
        table.verticalHeader().hide()
        table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)  # room for the status icon
        table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        table.addAction(drop_action)  # Delete drops rows only here, not while typing elsewhere
        self.delegate = KeyEditorDelegate(self._completion_candidates, table)
        table.setItemDelegateForColumn(Column.TARGET, self.delegate)
        table.setItemDelegateForColumn(Column.SOURCE, self.delegate)
        header = table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # the checkpoint's order until a header is clicked
        table.setSortingEnabled(True)
        metrics = self.fontMetrics()
        widths = {Column.SHAPE: "[1024, 1024, 31]", Column.DTYPE: "bfloat16", Column.TARGET_SHAPE: "[1024, 1024, 31]",
                  Column.STATUS: "shape mismatch__"}
        for column in Column:
            if column in widths:
                header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(column, metrics.horizontalAdvance(widths[column]) + 34)
            else:
                header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        return table

    def _build_empty_state(self) -> QWidget:
        page = QWidget(self)
        page.setObjectName("emptyState")
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        self.empty_title = QLabel(page)
        self.empty_title.setObjectName("emptyTitle")
        font = self.empty_title.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        self.empty_title.setFont(font)
        self.empty_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint = QLabel(page)
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        open_button = QPushButton("Open checkpoint…", page)
        open_button.setObjectName("emptyOpenButton")
        open_button.clicked.connect(self.openRequested)
        demo_button = QPushButton(TRY_DEMO, page)
        demo_button.setObjectName("emptyDemoButton")
        demo_button.clicked.connect(self.demoRequested)
        guide_button = QPushButton("Getting started", page)
        guide_button.setObjectName("emptyGuideButton")
        guide_button.clicked.connect(self.guideRequested)
        buttons.addWidget(open_button)
        buttons.addWidget(demo_button)
        buttons.addWidget(guide_button)
        buttons.addStretch(1)
        layout.addWidget(self.empty_title)
        layout.addWidget(self.empty_hint)
        layout.addSpacing(8)
        layout.addLayout(buttons)
        layout.addStretch(2)
        return page

    # -- what is shown ------------------------------------------------------------------------------

    def set_notices(self, notices: QWidget) -> None:
        """What is said about the plan as a whole, above the table."""
        self.layout().insertWidget(self._notices_at, notices)

    def show_plan(self, plan: Plan | None) -> None:
        self.model.set_plan(plan)
        if plan is not None:
            self.table_stack.setCurrentWidget(self.table)

    def show_empty(self, title: str, hint: str) -> None:
        """What the page says while there is no plan to show."""
        self.empty_title.setText(title)
        self.empty_hint.setText(hint)
        self.table_stack.setCurrentWidget(self.empty_state)

    def set_editable(self, editable: bool) -> None:
        self.model.set_editable(editable)
        self.table.setEditTriggers(EDIT_TRIGGERS if editable else QAbstractItemView.EditTrigger.NoEditTriggers)

    def refresh_colours(self) -> None:
        self.model.refresh_colours()
        self.update_summary()

    def fill_status_filter(self, plan: Plan | None) -> None:
        counts = plan.counts() if plan is not None else {}
        problems = sum(n for status, n in counts.items() if Status(status).is_problem)
        total = len(plan.rows) if plan is not None else 0
        entries = [(ALL_ROWS, f"All statuses ({total})"), (PROBLEM_ROWS, f"Problems only ({problems})")]
        entries += [(status.value, f"{status.value} ({counts.get(status.value, 0)})") for status in Status]
        current = self.status_filter.currentData() or ALL_ROWS
        self.status_filter.blockSignals(True)
        self.status_filter.clear()
        for data, text in entries:
            self.status_filter.addItem(text, data)
        for number in range(2, self.status_filter.count()):
            self.status_filter.setItemIcon(number, theme.status_icon(Status(self.status_filter.itemData(number))))
        self.status_filter.setCurrentIndex(max(0, self.status_filter.findData(current)))
        self.status_filter.blockSignals(False)

    def update_summary(self, *_) -> None:
        plan = self.model.plan
        self.fill_status_filter(plan)
        if plan is None:
            self.summary_label.setText("")
            return
        counts = plan.counts()
        parts = []
        for status in Status:
            count = counts[status.value]
            if count:
                colour = theme.status_colour(status, self.palette()).name() if status.is_problem else None
                text = f"{count} {status.value}"
                parts.append(f"<span style='color:{colour}'><b>{text}</b></span>" if colour else text)
        problems = len(plan.problems()) + len(plan.config_conflicts)
        if plan.config_conflicts:
            parts.append(f"<span style='color:{theme.message_colour('error', self.palette()).name()}'>"
                         f"<b>{len(plan.config_conflicts)} config conflict(s)</b></span>")
        sources = sum(1 for row in plan.rows if row.source_key is not None)
        verdict = (f"<span style='color:{theme.message_colour('success', self.palette()).name()}'>no problems</span>"
                   if problems == 0 else f"<b>{problems} problem(s) to fix</b>")
        shown = self.proxy.rowCount()
        filtered = f" — showing {shown} of {len(plan.rows)}" if shown != len(plan.rows) else ""
        self.summary_label.setText(f"{sources} source keys: " + " · ".join(parts) + f" — {verdict}{filtered}")

    # -- filters and navigation --------------------------------------------------------------------

    def _status_filter_chosen(self, number: int) -> None:
        value = self.status_filter.itemData(number) or ALL_ROWS
        self.proxy.set_status_filter(value)
        self._problems_action.setChecked(value == PROBLEM_ROWS)
        self.update_summary()

    def show_all_statuses(self) -> None:
        """Another checkpoint: a status chosen for the last one's rows would hide this one's."""
        self.status_filter.setCurrentIndex(self.status_filter.findData(ALL_ROWS))

    def toggle_problems(self, checked: bool) -> None:
        self.status_filter.setCurrentIndex(self.status_filter.findData(PROBLEM_ROWS if checked else ALL_ROWS))

    def focus_filter(self) -> None:
        self.filter_edit.setFocus()
        self.filter_edit.selectAll()

    def next_problem(self) -> None:
        count = self.proxy.rowCount()
        start = self.table.currentIndex().row() if self.table.currentIndex().isValid() else -1
        for step in range(1, count + 1):
            proxy_row = (start + step) % count
            row = self.model.row_at(self.proxy.mapToSource(self.proxy.index(proxy_row, 0)).row())
            if row.status.is_problem:
                index = self.proxy.index(proxy_row, Column.TARGET)
                self.table.setCurrentIndex(index)
                self.table.selectRow(proxy_row)
                self.table.scrollTo(index)
                return
        self.statusMessage.emit("No problems: ready to convert.", 3000)

    def select_source_key(self, source_key: str) -> None:
        row = self.model.row_of_source(source_key)
        if row < 0:
            return
        index = self.proxy.mapFromSource(self.model.index(row, Column.TARGET))
        if index.isValid():
            self.table.setCurrentIndex(index)
            self.table.selectRow(index.row())
            self.table.scrollTo(index)

    def selected_rows(self) -> list[PlanRow]:
        rows = self.proxy.source_rows(self.table.selectionModel().selectedRows())
        return [self.model.row_at(r) for r in rows]

    def has_selection(self) -> bool:
        return self.table.selectionModel().hasSelection()

    def visible_source_keys(self) -> list[str | None]:
        """The source keys of the rows the filters show, in the table's order."""
        return [self.model.row_at(r).source_key for r in self.proxy.visible_source_rows()]

    # -- editing a cell ----------------------------------------------------------------------------

    def edit_current(self) -> None:
        index = self.table.currentIndex()
        if not index.isValid():
            if self.proxy.rowCount() == 0:
                return
            index = self.proxy.index(0, 0)
        row = self.model.row_at(self.proxy.mapToSource(index).row())
        column = Column.SOURCE if row.source_key is None else Column.TARGET
        target = self.proxy.index(index.row(), column)
        self.table.setCurrentIndex(target)
        self.table.edit(target)

    def _completion_candidates(self, index) -> list[KeyCandidate]:
        prepared = self._prepared()
        if prepared is None:
            return []
        row = self.model.row_at(self.proxy.mapToSource(index).row())
        if row.source_key is None:  # a missing target: which checkpoint tensor fills it?
            return source_candidates(row, self.model.rows())
        open_targets = {key: prepared.targets[key].shape for key in prepared.unclaimed_targets()}
        return target_candidates(row, open_targets, self.model.suggestions_for(row))
