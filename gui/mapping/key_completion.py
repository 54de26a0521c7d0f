"""Completing a key typed in the mapping table: the candidates that fit first, the others marked.

For a target key, the candidates are the model's parameters nothing claims yet: Speechport's ranked
suggestions for the row first (`core.suggestions`: same shape, then alike names, then the layer),
then the other parameters of the row's shape, then those of another shape — still listed, since the
user may know better, but greyed and marked as not fitting, so a [96] layer norm is never offered as
if it fitted a [96, 96] weight. For the source cell of a missing target, the checkpoint's tensors
that are not mapped, those of the target's shape first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QGuiApplication, QPalette
from PySide6.QtWidgets import QCompleter, QLineEdit, QStyledItemDelegate

from ...core.planning.plan import PlanRow, Status
from .plan_model import SUGGESTION_ROLE, format_shape


@dataclass(frozen=True)
class KeyCandidate:
    key: str
    fits: bool  # its shape is the row's
    note: str = ""  # said after the key in the list


def target_candidates(row: PlanRow, open_targets: Mapping[str, Sequence[int]], ranked: Iterable = ()) -> list[KeyCandidate]:
    """Candidate target keys for a source row: `open_targets` (key -> shape) are the parameters no
    row claims yet, `ranked` the row's `core.suggestions.Suggestion`s, best first."""
    shape = tuple(row.source_shape or ())
    candidates = []
    for suggestion in ranked:
        if suggestion.target in open_targets and suggestion.shape_matches:
            candidates.append(KeyCandidate(suggestion.target, True, "best match" if suggestion.confident else ""))
    offered = {candidate.key for candidate in candidates}
    rest = [key for key in open_targets if key not in offered]
    candidates += [KeyCandidate(key, True) for key in rest if tuple(open_targets[key]) == shape]
    candidates += [KeyCandidate(key, False, _misfit(open_targets[key], shape)) for key in rest
                   if tuple(open_targets[key]) != shape]
    return candidates


def source_candidates(row: PlanRow, rows: Iterable[PlanRow]) -> list[KeyCandidate]:
    """Candidate source keys for a missing target: the checkpoint's tensors not mapped yet."""
    shape = tuple(row.target_shape or ())
    free = [r for r in rows if r.source_key is not None and r.source_shape is not None and r.status is not Status.MAPPED]
    return ([KeyCandidate(r.source_key, True) for r in free if tuple(r.source_shape) == shape]
            + [KeyCandidate(r.source_key, False, _misfit(r.source_shape, shape)) for r in free
               if tuple(r.source_shape) != shape])


def _misfit(shape, wanted) -> str:
    return f"{format_shape(shape)} does not fit {format_shape(wanted)}"


class CandidateListModel(QAbstractListModel):
    """The candidates as the completion list shows them: the key, then its note; a key that does
    not fit is greyed. Completion matches and inserts the key alone (its edit role)."""

    def __init__(self, candidates: list[KeyCandidate], parent=None):
        super().__init__(parent)
        self._candidates = list(candidates)

    def keys(self) -> list[str]:
        return [candidate.key for candidate in self._candidates]

    def candidates(self) -> list[KeyCandidate]:
        return list(self._candidates)

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._candidates)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._candidates):
            return None
        candidate = self._candidates[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{candidate.key}    — {candidate.note}" if candidate.note else candidate.key
        if role == Qt.ItemDataRole.EditRole:
            return candidate.key
        if role == Qt.ItemDataRole.ToolTipRole:
            if not candidate.fits:
                return f"Its shape {candidate.note}: choosing it gives a shape mismatch."
            if candidate.note:
                return "Speechport is confident this is the parameter: same shape, same layer, alike names."
            return None
        if role == Qt.ItemDataRole.ForegroundRole and not candidate.fits:
            palette = QGuiApplication.palette()
            return QBrush(palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        return None


class KeyEditorDelegate(QStyledItemDelegate):
    """Edits a key inline, completing from the keys that would fix something (see the module).

    Picking a completion commits at once; the list opens with every candidate shown, narrowing as
    you type.
    """

    def __init__(self, candidates: Callable[[object], list[KeyCandidate]], parent=None):
        super().__init__(parent)
        self._candidates = candidates

    def createEditor(self, parent, option, index):
        editor = QLineEdit(parent)
        editor.setObjectName("keyEditor")
        completer = QCompleter(CandidateListModel(self._candidates(index), editor), editor)
        completer.setObjectName("keyCompleter")
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        completer.setMaxVisibleItems(12)
        editor.setCompleter(completer)
        completer.activated[str].connect(self._completion_chosen)
        QTimer.singleShot(0, self._open_completions)
        self._editor = editor
        return editor

    def _open_completions(self) -> None:
        editor = getattr(self, "_editor", None)
        try:
            if editor is None or not editor.isVisible():
                return
        except RuntimeError:  # the editor closed before the list could open
            return
        completer = editor.completer()
        if completer.model().rowCount():
            popup = completer.popup()
            # Wide enough for the notes after the keys, within the table: the cell alone cuts them off.
            room = editor.parentWidget().width() - editor.x() if editor.parentWidget() is not None else editor.width()
            wanted = popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width() + 2 * popup.frameWidth()
            popup.setMinimumWidth(max(editor.width(), min(wanted, room)))
            completer.setCompletionPrefix("" if editor.hasSelectedText() else editor.text())
            completer.complete()

    def _completion_chosen(self, text: str) -> None:
        completer = self.sender()
        editor = completer.widget() if completer is not None else None
        if isinstance(editor, QLineEdit):
            editor.setText(text)
            self.commitData.emit(editor)
            self.closeEditor.emit(editor, QStyledItemDelegate.EndEditHint.NoHint)

    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        suggested = index.data(SUGGESTION_ROLE)
        if suggested and option.fontMetrics.horizontalAdvance(option.text) > option.rect.width() - 8:
            option.text = f"{suggested}?"  # a narrow column: the key matters more than "did you mean"

    def setEditorData(self, editor, index) -> None:
        editor.setText(index.data(Qt.ItemDataRole.EditRole) or "")
        editor.selectAll()

    def setModelData(self, editor, model, index) -> None:
        model.setData(index, editor.text(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor, option, index) -> None:
        editor.setGeometry(option.rect)
