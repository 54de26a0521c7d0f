"""Questions the window asks, its file choosers and small notices, and the bulk-rename dialog.

The questions are plain functions so the window reads as a sequence of decisions, and so tests
can answer them. Every risky question defaults to the safe answer: No.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import BadInput, UnsafePickle
from . import theme
from .commands import regex_renames

PREVIEW_ROWS = 200


def ask_trust_pickle(parent: QWidget, error: UnsafePickle) -> bool:
    """Loading such a pickle can run code from the file: only a clear Yes loads it."""
    names = "\n".join(f"  • {name}" for name in error.globals_needed)
    answer = QMessageBox.question(
        parent,
        "Trust this checkpoint?",
        f"{error.path}\n\nThis file asks to run Python code when it is loaded. It needs:\n{names}\n\n"
        "A checkpoint only needs this when it was saved with custom objects; it is also how a "
        "malicious file would take over your computer.\n\nLoad it anyway? Answer Yes only if you "
        "trust where this file came from.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def ask_replace_folder(parent: QWidget, path: str) -> bool:
    answer = QMessageBox.question(
        parent,
        "Replace the output folder?",
        f"{path}\n\nThis folder is not empty. Replace its contents with the converted model?\n\n"
        "The old contents are removed only once the new folder is complete.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


SAVE, DISCARD, CANCEL = "save", "discard", "cancel"


def ask_save_fixes(parent: QWidget, checkpoint: str, doing: str) -> str:
    """Fixes not saved to a mapping file are about to be left behind: SAVE, DISCARD or CANCEL."""
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(
        parent,
        "Save your fixes?",
        f"Your fixes to {checkpoint} are not saved to a mapping file.\n\n"
        f"{doing[:1].upper()}{doing[1:]} throws them and their undo history away. Save them first?",
        buttons.Save | buttons.Discard | buttons.Cancel,
        buttons.Save,
    )
    return {buttons.Save: SAVE, buttons.Discard: DISCARD}.get(answer, CANCEL)


def show_internal_error(parent: QWidget, text: str) -> None:
    QMessageBox.critical(parent, "Speechport: internal error", text)


# The file choosers are looked up on QFileDialog at call time, so tests can answer them.


def open_file_name(parent: QWidget, title: str, start: str, filters: str) -> tuple[str, str]:
    return QFileDialog.getOpenFileName(parent, title, start, filters)


def save_file_name(parent: QWidget, title: str, start: str, filters: str) -> tuple[str, str]:
    return QFileDialog.getSaveFileName(parent, title, start, filters)


def show_shortcuts(parent: QWidget, actions: Iterable[QAction], first_word_only: Iterable[QAction] = ()) -> None:
    """A table of the actions and their keys; `first_word_only` are actions whose text names a step
    ("Undo Rename …"), listed by their first word."""
    short = set(first_word_only)
    lines = []
    for act in actions:
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in act.shortcuts())
        name = act.text().replace("&", "")
        if act in short:
            name = name.split(" ", 1)[0]
        lines.append(f"<tr><td style='padding-right:18px'>{html.escape(name)}</td><td><b>{html.escape(keys)}</b></td></tr>")
    box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", "", QMessageBox.StandardButton.Close, parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText("<table>" + "".join(lines) + "</table>")
    box.open()


def show_about(parent: QWidget) -> None:
    from .. import __version__

    QMessageBox.about(
        parent, "About Speechport",
        f"<h3>Speechport {__version__}</h3><p>Port speech-model checkpoints into Hugging Face "
        "<code>transformers</code> folders, and check that they still behave like the original.</p>",
    )


class BulkRenameDialog(QDialog):
    """Rename many rows with one regular expression, previewed before it is applied.

    The pattern is applied to each row's *source key* (the name in the checkpoint, which is what a
    mapping file records); the result becomes the row's target key. Rows the pattern does not
    match are left alone. The whole rename is one step in the undo history.
    """

    def __init__(
        self,
        parent: QWidget,
        *,
        selected: list[str],
        filtered: list[str],
        known_targets: set[str],
        on_apply: Callable[[dict[str, str], str], None] | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("bulkRenameDialog")
        self.setWindowTitle("Bulk rename")
        self.resize(860, 520)
        self._selected = selected
        self._filtered = filtered
        self._known = known_targets
        self._on_apply = on_apply
        self.renames: dict[str, str] = {}

        explanation = QLabel(
            "The pattern (a Python regular expression) is searched in each row's <b>source key</b>; "
            "<code>re.sub(pattern, replacement, source key)</code> becomes its target key. "
            "Use <code>\\1</code> or <code>\\g&lt;name&gt;</code> for groups. Rows it does not match are left alone.",
            self,
        )
        explanation.setWordWrap(True)
        self.pattern = QLineEdit(self)
        self.pattern.setObjectName("bulkPattern")
        self.pattern.setPlaceholderText(r"e.g. ^encoder\.layers\.(\d+)\.old_name\.")
        self.replacement = QLineEdit(self)
        self.replacement.setObjectName("bulkReplacement")
        self.replacement.setPlaceholderText(r"e.g. encoder.layers.\1.new_name.")
        self.scope_selected = QRadioButton(f"Selected rows ({len(selected)})", self)
        self.scope_selected.setObjectName("bulkScopeSelected")
        self.scope_filtered = QRadioButton(f"Rows shown by the filter ({len(filtered)})", self)
        self.scope_filtered.setObjectName("bulkScopeFiltered")
        group = QButtonGroup(self)
        group.addButton(self.scope_selected)
        group.addButton(self.scope_filtered)
        (self.scope_selected if len(selected) > 1 else self.scope_filtered).setChecked(True)
        self.scope_selected.setEnabled(bool(selected))

        self.preview = QTableWidget(0, 3, self)
        self.preview.setObjectName("bulkPreview")
        self.preview.setHorizontalHeaderLabels(["Source key", "New target key", ""])
        self.preview.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.preview.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.preview.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.preview.verticalHeader().hide()
        self.preview.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.status = QLabel(self)
        self.status.setObjectName("bulkStatus")
        self.status.setWordWrap(True)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Rename")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("&Pattern:", self.pattern)
        form.addRow("&Replacement:", self.replacement)
        form.addRow("Apply to:", self.scope_selected)
        form.addRow("", self.scope_filtered)
        layout = QVBoxLayout(self)
        layout.addWidget(explanation)
        layout.addLayout(form)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        for signal in (self.pattern.textChanged, self.replacement.textChanged):
            signal.connect(self._update_preview)
        self.scope_selected.toggled.connect(self._update_preview)
        self._update_preview()

    def scope(self) -> list[str]:
        return self._selected if self.scope_selected.isChecked() else self._filtered

    def _update_preview(self) -> None:
        ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.preview.setRowCount(0)
        self.renames = {}
        if not self.pattern.text():
            self._say("Type a pattern to see which rows it renames.", "info")
            ok_button.setEnabled(False)
            return
        try:
            renames = regex_renames(self.scope(), self.pattern.text(), self.replacement.text())
        except BadInput as exc:
            self._say(f"Not a valid pattern or replacement: {exc}", "error")
            ok_button.setEnabled(False)
            return
        self.renames = renames
        unknown = [target for target in renames.values() if target not in self._known]
        shown = list(renames.items())[:PREVIEW_ROWS]
        self.preview.setRowCount(len(shown))
        for number, (source, target) in enumerate(shown):
            self.preview.setItem(number, 0, QTableWidgetItem(source))
            self.preview.setItem(number, 1, QTableWidgetItem(target))
            known = target in self._known
            mark = QTableWidgetItem("✓ in the model" if known else "not in the model")
            mark.setForeground(theme.message_colour("success" if known else "warning", self.palette()))
            self.preview.setItem(number, 2, mark)
        if not renames:
            self._say(f"The pattern matches none of the {len(self.scope())} rows.", "warning")
        else:
            more = f" (the first {PREVIEW_ROWS} shown)" if len(renames) > PREVIEW_ROWS else ""
            warn = f"; {len(unknown)} new key(s) are not parameters of the model" if unknown else ""
            self._say(f"{len(renames)} of {len(self.scope())} rows renamed{more}{warn}.", "warning" if unknown else "success")
        ok_button.setEnabled(bool(renames))

    def _say(self, text: str, kind: str) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {theme.message_colour(kind, self.palette()).name()}")

    def accept(self) -> None:
        if self.renames and self._on_apply is not None:
            self._on_apply(dict(self.renames), self.pattern.text())
        super().accept()
