"""What the mapping page says above the table about the plan as a whole, in plain words.

Three notices, each shown only when it has something to say:
- the fixes Speechport inferred itself — a training wrapper's prefix stripped from every key — with
  a link that undoes them (or strips the prefix again);
- the suggestions: how many unmapped keys have a confident one, with a link that applies them; or,
  when too many keys are unmapped to compare one by one, the likely cause and where to fix it;
- the problems, one line per kind with layer indices collapsed, shown in their first two lines
  with "Show all" for the rest (a config that contradicts the checkpoint makes dozens). Each line
  stays one line, ending in "…" when it is longer than the window is wide (the whole of it in the
  tooltip), so the notice is exactly as tall as the lines it shows.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from ...core.planning.wrapper_prefix import wrapper_prefix
from ..shared import theme
from ..shared.elided_lines import ElidedLines
from ..workspace.workspace import Workspace
from .plan_suggestions import PlanSuggestions

COLLAPSED_PROBLEM_LINES = 2  # the count and the first problem, until "Show all"
EXPANDED_PROBLEM_LINES = 12  # beyond that the problems scroll, and the table keeps its room


class PlanNotices(QWidget):
    inferredFixesRequested = Signal(bool)  # apply Speechport's inferred fixes (True) or read the keys as saved
    sourceRenameRequested = Signal()  # open the bulk rename on source keys

    def __init__(self, workspace: Workspace, suggestions: PlanSuggestions, apply_suggestions: QAction,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("planNotices")
        self.workspace = workspace
        self.suggestions = suggestions
        self.apply_suggestions = apply_suggestions
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)

        self.inferred_frame, self.inferred = self._notice("inferredFixNotice")
        self.suggestions_frame, self.suggestions_text = self._notice("suggestionsNotice")
        self.problems_frame = QFrame(self)
        self.problems_frame.setObjectName("problemsNotice")
        self.problems = ElidedLines(self.problems_frame)
        self.problems.setObjectName("problemsText")
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_view = QScrollArea(self.problems_frame)
        self.problems_view.setObjectName("problemsView")
        self.problems_view.setWidget(self.problems)
        self.problems_view.setWidgetResizable(True)
        self.problems_view.setFrameShape(QFrame.Shape.NoFrame)
        self.problems_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.problems_view.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.problems_view.viewport().setAutoFillBackground(False)
        self.problems.setAutoFillBackground(False)
        self.problems_toggle = QToolButton(self.problems_frame)
        self.problems_toggle.setObjectName("problemsShowAll")
        self.problems_toggle.setAutoRaise(True)
        self.problems_expanded = False
        self.problems_toggle.clicked.connect(self._toggle_problems)
        row = QHBoxLayout(self.problems_frame)
        row.setContentsMargins(8, 3, 4, 3)
        row.addWidget(self.problems_view, 1)
        row.addWidget(self.problems_toggle, 0, Qt.AlignmentFlag.AlignTop)
        for frame in (self.inferred_frame, self.suggestions_frame, self.problems_frame):
            layout.addWidget(frame)
            frame.hide()

        self.inferred.linkActivated.connect(self._inferred_link)
        self.suggestions_text.linkActivated.connect(self._suggestions_link)
        workspace.changed.connect(self.refresh)
        suggestions.changed.connect(self.refresh)
        self.refresh()

    def _notice(self, name: str) -> tuple[QFrame, QLabel]:
        frame = QFrame(self)
        frame.setObjectName(name)
        label = QLabel(frame)
        label.setObjectName(f"{name}Text")
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        row = QHBoxLayout(frame)
        row.setContentsMargins(8, 3, 8, 3)
        row.addWidget(label)
        return frame, label

    # -- what is said ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        prepared = self.workspace.prepared
        self._show(self.inferred_frame, self.inferred, self._inferred_text(prepared), "info")
        self._show(self.suggestions_frame, self.suggestions_text, self._suggestions_text(prepared), "info")
        plan = prepared.plan if prepared is not None else None
        lines = plan.problem_lines() if plan is not None else []
        count = len(plan.problems()) + len(plan.config_conflicts) if plan is not None else 0
        text = f"{count} problem(s) stop the conversion:\n" + "\n".join(lines) if lines else ""
        if text != self.problems.text():
            self.problems.setText(text)
            self._fit_problems()
        self.problems_frame.setVisible(bool(text))
        self._tint(self.problems_frame, "error")

    def _toggle_problems(self) -> None:
        self.problems_expanded = not self.problems_expanded
        self._fit_problems()

    def _fit_problems(self) -> None:
        """As tall as the lines shown: the first COLLAPSED_PROBLEM_LINES, or with "Show all" up to
        EXPANDED_PROBLEM_LINES (the rest scroll)."""
        count = len(self.problems.lines())
        more = count > COLLAPSED_PROBLEM_LINES
        self.problems_toggle.setVisible(more)
        self.problems_toggle.setText("Show less" if self.problems_expanded else "Show all")
        shown = min(count, EXPANDED_PROBLEM_LINES if self.problems_expanded else COLLAPSED_PROBLEM_LINES)
        scrolls = self.problems_expanded and count > shown
        self.problems_view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if scrolls
                                                      else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.problems_view.setFixedHeight(self.problems.height_of(shown) + 2 * self.problems_view.frameWidth())
        if not self.problems_expanded:
            self.problems_view.verticalScrollBar().setValue(0)

    def _inferred_text(self, prepared) -> str:
        workspace = self.workspace
        if prepared is None or not workspace.inferred_found:
            return ""
        found = wrapper_prefix(prepared.tensors)
        if found is None:
            return ""
        prefix, saved_by = found
        where = f"saved from {', then '.join(saved_by)}"
        if workspace.inferred_applied:
            return (f"Every key starts with <code>{html.escape(prefix)}</code> ({html.escape(where)}): Speechport "
                    "strips it, so the recipe's rules see the model's own names. <a href='#keep'>Undo</a>")
        return (f"The keys are read as saved, each starting with <code>{html.escape(prefix)}</code> "
                f"({html.escape(where)}), so the recipe's rules do not know them. <a href='#strip'>Strip it again</a>")

    def _suggestions_text(self, prepared) -> str:
        if prepared is None:
            return ""
        confident = self.suggestions.confident()
        if confident:
            return (f"{len(confident)} unmapped key(s) have a confident suggestion: a parameter of the same shape and "
                    "layer with an alike name. <a href='#apply'>Apply them</a> (one step you can undo)")
        if self.suggestions.too_many:
            return (f"{self.suggestions.too_many} keys are unmapped — too many to compare one by one. When they all "
                    "differ the same way (a prefix, another word), one pattern renames them: "
                    "<a href='#rename-source'>Rename source keys…</a>")
        return ""

    def _show(self, frame: QFrame, label: QLabel, text: str, kind: str) -> None:
        if text != label.text():
            label.setText(text)
        frame.setVisible(bool(text))
        self._tint(frame, kind)

    def _tint(self, frame: QFrame, kind: str) -> None:
        palette = QGuiApplication.palette()
        colour = theme.message_colour(kind, palette)
        tint = f"rgba({colour.red()}, {colour.green()}, {colour.blue()}, {36 if theme.is_dark(palette) else 20})"
        sheet = (f"QFrame#{frame.objectName()} {{ background: {tint}; border-left: 3px solid {colour.name()}; "
                 "border-radius: 2px; }")
        if sheet != frame.styleSheet():  # setting a style sheet changes the palette: only when needed
            frame.setStyleSheet(sheet)

    # -- links -----------------------------------------------------------------------------------------

    def _inferred_link(self, link: str) -> None:
        self.inferredFixesRequested.emit(link == "#strip")

    def _suggestions_link(self, link: str) -> None:
        if link == "#apply":
            self.apply_suggestions.trigger()
        elif link == "#rename-source":
            self.sourceRenameRequested.emit()
