"""The bulk-rename dialog: one regular expression renames many keys, previewed on the plan first.

Two ways to rename (see `rename_preview`): *Rename source keys* adds a rule that renames the
checkpoint's keys before the recipe's rules see them (strip `backbone.`, say that their `query` is
our `q_proj`), so the recipe maps them as it maps its own; *Set target keys* gives the rows in
scope target keys of their own. The preview replans a copy of the checkpoint on a worker a moment
after typing stops, and lists the rows the pattern touches with what they become; a pattern the
core refuses (invalid, nested repetition, too slow) is said in the dialog and disables Rename.
Applying is one step in the undo history.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QRadioButton,
    QStyle,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import BadInput
from ...core.planning.mapping_file import Overrides
from ...core.planning.plan import Status
from ..shared import theme
from ..workspace import workers
from ..workspace.task_slot import TaskSlot
from .rename_preview import ORIGIN, SOURCE_KEYS, TARGET_KEYS, RenamePreview, changed_span, preview

PREVIEW_ROWS = 200
CHANGED_SPAN = Qt.ItemDataRole.UserRole + 1  # (start, end) of what the rename changes in a key cell
TYPING_PAUSE_MS = 150  # the preview waits for a pause in typing

EXPLANATIONS = {
    SOURCE_KEYS: ("The pattern (a Python regular expression) renames the checkpoint's <b>source keys</b> before the "
                  "recipe's rules see them — strip a prefix (<code>^backbone\\.</code> → nothing), or say that their "
                  "<code>\\.query\\.</code> is our <code>.q_proj.</code> — so the recipe maps them as its own. "
                  "It applies to every key and is saved as a source rule in the mapping file."),
    TARGET_KEYS: ("The pattern (a Python regular expression) is searched in each row's <b>source key</b>; "
                  "<code>re.sub(pattern, replacement, source key)</code> becomes its <b>target key</b>. "
                  "Use <code>\\1</code> or <code>\\g&lt;name&gt;</code> for groups. Rows it does not match are left alone."),
}
PLACEHOLDERS = {
    SOURCE_KEYS: (r"e.g. ^backbone\.", "e.g. nothing, to strip it"),
    TARGET_KEYS: (r"e.g. ^encoder\.layers\.(\d+)\.old_name\.", r"e.g. encoder.layers.\1.new_name."),
}
HEADERS = {
    SOURCE_KEYS: ["Source key", "Renamed to", "Then maps to", "Status after"],
    TARGET_KEYS: ["Source key", "New target key", "Status after"],
}


def elide_around(text: str, span: tuple[int, int], metrics: QFontMetrics, width: int) -> str:
    """`text` in `width` pixels with the part at `span` kept in view: elided in the middle when that
    keeps the part whole, else around it ("…layers.1.self_attn.q_proj.wei…"), as much on each side
    as fits. A part wider than the width keeps its own start and end."""
    if metrics.horizontalAdvance(text) <= width:
        return text
    start, end = span
    middle = metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, width)
    head, _, tail = middle.partition("…")
    if end <= len(head) or start >= len(text) - len(tail):
        return middle
    part = text[start:end]

    def shown(left: int, right: int) -> str:
        return ("…" if left > 0 else "") + text[left:right] + ("…" if right < len(text) else "")

    if metrics.horizontalAdvance(shown(start, end)) > width:
        return metrics.elidedText(part, Qt.TextElideMode.ElideMiddle, width)
    left, right = start, end
    grew = True
    while grew:  # one character more on each side in turn, while it fits
        grew = False
        for side in ("right", "left"):
            wider = (left, right + 1) if side == "right" else (left - 1, right)
            if 0 <= wider[0] and wider[1] <= len(text) and metrics.horizontalAdvance(shown(*wider)) <= width:
                left, right = wider
                grew = True
    return shown(left, right)


class KeyCellDelegate(QStyledItemDelegate):
    """Draws a key cell with the part the rename changes always in view (`elide_around`)."""

    def displayed_text(self, option, index) -> str:
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        span = index.data(CHANGED_SPAN)
        if span is None:
            return text
        style = option.widget.style() if option.widget is not None else None
        margin = (style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, option.widget) + 1) if style else 3
        return elide_around(text, tuple(span), option.fontMetrics, option.rect.width() - 2 * margin)

    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        option.text = self.displayed_text(option, index)


class BulkRenameDialog(QDialog):
    def __init__(
        self,
        parent: QWidget,
        *,
        prepared,
        fixes: Overrides,
        slot: TaskSlot,
        selected: list[str],
        filtered: list[str],
        mode: str = TARGET_KEYS,
        on_apply: Callable[[RenamePreview], None] | None = None,
    ):
        """`prepared` is the open checkpoint (`core.conversion.Prepared`) and `fixes` the user's;
        `slot` runs the previews; `on_apply` receives the preview the user accepted."""
        super().__init__(parent)
        self.setObjectName("bulkRenameDialog")
        self.setWindowTitle("Bulk rename")
        self.resize(900, 560)
        self._prepared = copy.copy(prepared)  # what the previews replan: the plan as it is now
        self._fixes = fixes
        self._slot = slot
        self._selected = selected
        self._filtered = filtered
        self._on_apply = on_apply
        self.result_preview: RenamePreview | None = None  # the preview of what is typed now, once computed

        self.mode_source = QRadioButton("Rename &source keys (before the recipe's rules)", self)
        self.mode_source.setObjectName("bulkModeSource")
        self.mode_target = QRadioButton("Set &target keys of rows", self)
        self.mode_target.setObjectName("bulkModeTarget")
        modes = QButtonGroup(self)
        modes.addButton(self.mode_source)
        modes.addButton(self.mode_target)
        (self.mode_source if mode == SOURCE_KEYS else self.mode_target).setChecked(True)
        self.explanation = QLabel(self)
        self.explanation.setObjectName("bulkExplanation")
        self.explanation.setWordWrap(True)

        self.pattern = QLineEdit(self)
        self.pattern.setObjectName("bulkPattern")
        self.replacement = QLineEdit(self)
        self.replacement.setObjectName("bulkReplacement")
        self.scope_selected = QRadioButton(f"Selected rows ({len(selected)})", self)
        self.scope_selected.setObjectName("bulkScopeSelected")
        self.scope_filtered = QRadioButton(f"Rows shown by the filter ({len(filtered)})", self)
        self.scope_filtered.setObjectName("bulkScopeFiltered")
        scopes = QButtonGroup(self)
        scopes.addButton(self.scope_selected)
        scopes.addButton(self.scope_filtered)
        (self.scope_selected if len(selected) > 1 else self.scope_filtered).setChecked(True)
        self.scope_selected.setEnabled(bool(selected))
        self.scope_all = QLabel(f"Every tensor of the checkpoint ({len(prepared.tensors)})", self)
        self.scope_all.setObjectName("bulkScopeAll")

        self.preview = QTableWidget(0, 3, self)
        self.preview.setObjectName("bulkPreview")
        self.preview.verticalHeader().hide()
        self.preview.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.preview.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview.setWordWrap(False)
        self.preview.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.key_delegate = KeyCellDelegate(self.preview)
        for column in (0, 1):  # the key and what the rename makes of it, in both modes
            self.preview.setItemDelegateForColumn(column, self.key_delegate)
        self.status = QLabel(self)
        self.status.setObjectName("bulkStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Rename")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        mode_row = QHBoxLayout()
        mode_row.addWidget(self.mode_source)
        mode_row.addWidget(self.mode_target)
        mode_row.addStretch(1)
        scope_column = QVBoxLayout()
        scope_column.setSpacing(2)
        for widget in (self.scope_all, self.scope_selected, self.scope_filtered):
            scope_column.addWidget(widget)
        form = QFormLayout()
        form.addRow("&Pattern:", self.pattern)
        form.addRow("&Replacement:", self.replacement)
        form.addRow("Apply to:", scope_column)
        layout = QVBoxLayout(self)
        layout.addLayout(mode_row)
        layout.addWidget(self.explanation)
        layout.addLayout(form)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(TYPING_PAUSE_MS)
        self._typing.timeout.connect(self._start_preview)
        for signal in (self.pattern.textChanged, self.replacement.textChanged):
            signal.connect(self._request_preview)
        self.scope_selected.toggled.connect(self._request_preview)
        self.mode_source.toggled.connect(self._mode_changed)
        self.finished.connect(lambda _result: self._slot.drop())
        self._mode_changed()
        self.pattern.setFocus(Qt.FocusReason.OtherFocusReason)  # what is typed first is the pattern

    # -- what is asked --------------------------------------------------------------------------------

    def mode(self) -> str:
        return SOURCE_KEYS if self.mode_source.isChecked() else TARGET_KEYS

    def scope(self) -> list[str]:
        if self.mode() == SOURCE_KEYS:
            return list(self._prepared.tensors)
        return self._selected if self.scope_selected.isChecked() else self._filtered

    def _request(self) -> tuple:
        return (self.mode(), self.pattern.text(), self.replacement.text(), tuple(self.scope()))

    # -- the preview ---------------------------------------------------------------------------------

    def _mode_changed(self, *_) -> None:
        mode = self.mode()
        self.explanation.setText(EXPLANATIONS[mode])
        pattern_hint, replacement_hint = PLACEHOLDERS[mode]
        self.pattern.setPlaceholderText(pattern_hint)
        self.replacement.setPlaceholderText(replacement_hint)
        self.scope_all.setVisible(mode == SOURCE_KEYS)
        for button in (self.scope_selected, self.scope_filtered):
            button.setVisible(mode == TARGET_KEYS)
        self._request_preview()

    def _request_preview(self, *_) -> None:
        """Something changed: the preview shown is no longer of it, and a new one follows a pause."""
        self.result_preview = None
        self.ok_button.setEnabled(False)
        self._slot.drop()
        if not self.pattern.text():
            self._typing.stop()
            self._show_rows(None)
            self._say("Type a pattern to see which keys it renames and what the plan becomes.", "info")
            return
        self._say("Previewing…", "info")
        self._typing.start()

    def _start_preview(self) -> None:
        mode, pattern, replacement, scope = self._request()
        task = workers.Task("preview rename", preview, self._prepared, self._fixes, mode, pattern, replacement,
                            list(scope))
        task.request = self._request()
        self._slot.start(task, self._previewed, failed=self._preview_failed)

    def _previewed(self, task, result: RenamePreview) -> None:
        if task.request != self._request():
            return  # typed on meanwhile: the next preview is on its way
        self.result_preview = result
        self._show_rows(result)
        self._summarise(result)
        self.ok_button.setEnabled(bool(result.rows))

    def _preview_failed(self, task, error: BaseException) -> bool:
        if not isinstance(error, BadInput):
            return False  # said the way every failure is
        if task.request == self._request():
            self._show_rows(None)
            self._say(f"Not a valid pattern or replacement: {str(error).removeprefix(f'{ORIGIN}: ')}", "error")
        return True

    def _show_rows(self, result: RenamePreview | None) -> None:
        headers = HEADERS[self.mode()]
        self.preview.setColumnCount(len(headers))
        self.preview.setHorizontalHeaderLabels(headers)
        header = self.preview.horizontalHeader()
        for column in range(len(headers)):
            last = column == len(headers) - 1
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents if last
                                        else QHeaderView.ResizeMode.Stretch)
        rows = result.rows[:PREVIEW_ROWS] if result is not None else []
        self.preview.setRowCount(len(rows))
        for number, row in enumerate(rows):
            cells = [row.source, row.renamed]
            if self.mode() == SOURCE_KEYS:
                cells.append(row.target or "—")
            spans = changed_span(row.source, row.renamed)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column < len(spans):
                    item.setData(CHANGED_SPAN, spans[column])
                self.preview.setItem(number, column, item)
            status = QTableWidgetItem(_status_text(row.status, result.mode))
            status.setIcon(theme.status_icon(row.status))
            status.setForeground(theme.status_colour(row.status, self.palette()))
            self.preview.setItem(number, len(cells), status)

    def _summarise(self, result: RenamePreview) -> None:
        if not result.rows:
            what = "source keys" if result.mode == SOURCE_KEYS else "rows"
            self._say(f"The pattern matches none of the {result.scope} {what}.", "warning")
            return
        more = f" (the first {PREVIEW_ROWS} shown)" if len(result.rows) > PREVIEW_ROWS else ""
        if result.mode == SOURCE_KEYS:
            mapped = result.count(Status.MAPPED)
            unmapped = result.count(Status.UNMAPPED)
            first = f"Renames {len(result.rows)} of {result.scope} source keys{more}: {mapped} map"
            first += f", {unmapped} stay unmapped" if unmapped else ""
            other = len(result.rows) - mapped - unmapped - result.count(Status.DROPPED)
            first += f", {other} get another problem" if other else ""
            sentences = [first + "."]
        else:
            sentences = [f"{len(result.rows)} of {result.scope} rows renamed{more}"
                         + (f"; {result.unknown_targets} new key(s) are not parameters of the model."
                            if result.unknown_targets else ".")]
        sentences.append(_problems_after(result))
        kind = "success" if result.problems_after == 0 else "warning"
        self._say(" ".join(sentences), kind)

    def _say(self, text: str, kind: str) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {theme.message_colour(kind, self.palette()).name()}")

    # -- applying -------------------------------------------------------------------------------------

    def accept(self) -> None:
        result = self.result_preview
        if result is None or not result.rows:
            return  # Enter before the preview of what is typed arrived: nothing is applied unseen
        if self._on_apply is not None:
            self._on_apply(result)
        super().accept()


def _status_text(status: Status, mode: str) -> str:
    if status is Status.MAPPED:
        return "mapped"  # the row has its status icon beside the word
    if status is Status.UNMAPPED and mode == TARGET_KEYS:
        return "not in the model"
    return status.value


def _problems_after(result: RenamePreview) -> str:
    if result.problems_after == 0:
        return "Then the plan has no problems." if result.problems_before else "The plan stays without problems."
    change = f" (now {result.problems_before})" if result.problems_after != result.problems_before else ""
    first = result.problem_lines[0] if result.problem_lines else ""
    if len(first) > 160:
        first = first[:159] + "…"
    return f"Then {result.problems_after} problem(s) remain{change}, e.g. {first}"
