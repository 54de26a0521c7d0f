"""What one comparison found, for people: the verdict in large letters (and where the models start to
disagree when they do) with one sentence in plain words beside it, how many rows only the user's
fixes prove, the metrics (each explained in its tooltip), the task's own view — top-5 labels of
both models, speaker activity, or the speaker embeddings' similarity — every stage's largest
difference, and the notes.

Everything shown is what the core's `Comparison` says; the tables are as tall as their rows (the
page scrolls, never a table inside it), and the stages can be clicked to show their heatmaps in
the timeline when the output has a course in time.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.proof.original_weights import fixes_sentence
from ..shared import theme
from ..shared.elided_label import ElidedLabel
from ..shared.formatting import human_seconds, short_number
from ..shared.widgets import FocusTableWidget
from . import plain_words
from .comparison_plots import as_frames, speaker_name
from .timeline_view import OUTPUT

METRICS = (  # object name suffix, label, tooltip; shown two to a row
    ("MaxAbsDiff", "max |diff|", plain_words.MAX_DIFF),
    ("MeanAbsDiff", "mean |diff|", plain_words.MEAN_DIFF),
    ("Nmse", "NMSE", plain_words.NMSE),
    ("Tolerance", "tolerance", plain_words.TOLERANCE),
    ("CosineMin", "cosine min", "The lowest over the frames. " + plain_words.COSINE),
    ("CosineMean", "cosine mean", "The mean over the frames. " + plain_words.COSINE),
    ("Frames", "frames", plain_words.FRAMES),
    ("Seconds", "time", plain_words.TIME),
)
FIXES_LINK = "rows"  # the link in the fixes line that shows or hides which rows


class KeyRowsLabel(QLabel):
    """Rows of "checkpoint key → converted key", one a line, never broken inside a key: a row too wide
    for the label goes on two lines (the key, then "→ the other key"), and a key too wide for a line
    loses its middle to "…" (its start and its parameter's own name are what tell it apart). The
    whole of each row is in the tooltip."""

    ARROW = " → "
    CONTINUED = "   "  # before the arrow of a row's second line: it reads as the row above's

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rows: list[tuple[str, str]] = []
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(False)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # As wide as the column it is in allows, never wider: the lines are made to fit it.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)

    def set_rows(self, rows: Sequence[tuple[str, str]]) -> None:
        self._rows = list(rows)
        self.setToolTip("\n".join(f"{source}{self.ARROW}{target}" for source, target in self._rows))
        self._lay_out()

    def lines(self, width: int) -> list[str]:
        """The lines the rows take in `width` pixels."""
        metrics = self.fontMetrics()

        def fit(text: str) -> str:
            return metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, width) if width > 0 else text

        lines = []
        for source, target in self._rows:
            whole = f"{source}{self.ARROW}{target}"
            if width <= 0 or metrics.horizontalAdvance(whole) <= width:
                lines.append(whole)
            else:
                lines += [fit(source), fit(self.CONTINUED + self.ARROW.lstrip() + target)]
        return lines

    def _lay_out(self) -> None:
        width = self.contentsRect().width() if self.isVisible() else 0
        super().setText("\n".join(self.lines(width)))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._lay_out()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._lay_out()


def _table(object_name: str, headers: list[str], parent: QWidget) -> QTableWidget:
    table = FocusTableWidget(0, len(headers), parent)  # Tab leaves it; its current cell is framed
    table.setObjectName(object_name)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    # As tall as its rows (`_fit_rows`): the page scrolls, the table never does.
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    return table


def _fit_rows(table: QTableWidget) -> None:
    """Exactly as tall as its header and rows: nothing to scroll inside it."""
    header = table.horizontalHeader()
    header_height = header.height() if header.height() > 0 and table.isVisible() else header.sizeHint().height()
    rows = sum(table.rowHeight(row) for row in range(table.rowCount()))
    table.setFixedHeight(header_height + rows + 2 * table.frameWidth())


class ComparisonView(QWidget):
    stageChosen = Signal(str)  # a stage name, or timeline_view.OUTPUT

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("comparisonView")
        self.result = None  # core.comparison.ClipComparison shown
        self.tolerance = 0.0
        self.verdict_kind = ""

        self.verdict = QLabel(self)
        self.verdict.setObjectName("compareVerdict")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.PlainText)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.verdict.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setWeight(QFont.Weight.Bold)
        self.verdict.setFont(font)
        self.verdict.setToolTip(plain_words.MAX_DIFF)
        # The verdict in plain words: how close, next to the tolerance, and where the models part.
        self.sentence = QLabel(self)
        self.sentence.setObjectName("compareSentence")
        self.sentence.setWordWrap(True)
        self.sentence.setTextFormat(Qt.TextFormat.PlainText)
        self.sentence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Rows the original model could only read through the user's fixes: proven by their word alone.
        self.fixes = QLabel(self)
        self.fixes.setObjectName("compareFixes")
        self.fixes.setWordWrap(True)
        self.fixes.setTextFormat(Qt.TextFormat.RichText)
        self.fixes.linkActivated.connect(lambda _link: self.show_fixed_rows(not self.fixes_rows.isVisible()))
        self.fixes_rows = KeyRowsLabel(self)
        self.fixes_rows.setObjectName("compareFixesRows")
        self.fixes_used: list[dict[str, str]] = []
        # The clip and the two models, on one line; all of it in the tooltip.
        self.subject = ElidedLabel(parent=self)
        self.subject.setObjectName("compareSubject")

        self.metrics = QWidget(self)
        self.metrics.setObjectName("compareMetrics")
        grid = QGridLayout(self.metrics)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        self.metric_values: dict[str, QLabel] = {}
        for number, (key, text, tip) in enumerate(METRICS):
            name = QLabel(text + ":", self.metrics)
            name.setToolTip(tip)
            # A column narrower than four metrics side by side (large fonts, a small window) cuts the
            # values with "…", the whole value in the tooltip: never past the column's edge.
            value = ElidedLabel(parent=self.metrics, tooltip=tip)
            value.setObjectName(f"metric{key}")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            row, column = divmod(number, 2)
            grid.addWidget(name, row, column * 2)
            grid.addWidget(value, row, column * 2 + 1)
            self.metric_values[key] = value
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

        self.task_box = QGroupBox(self)
        self.task_box.setObjectName("taskView")
        # The task's own view: one of its pages shown, the others hidden (and taking no room).
        self.task_pages = QWidget(self.task_box)
        box_layout = QVBoxLayout(self.task_box)
        box_layout.setContentsMargins(6, 4, 6, 6)
        box_layout.addWidget(self.task_pages)
        self._build_task_pages()

        self.stages_title = QLabel(self)
        self.stages_title.setWordWrap(True)
        self.stage_table = _table("stageTable", ["Stage", "max |diff|", ""], self)
        self.stage_table.setToolTip("Each stage the two models share, in order; the first beyond the tolerance is "
                                    "where a bad mapping shows first.")
        self.stage_table.horizontalHeaderItem(1).setToolTip(plain_words.MAX_DIFF)
        self.stage_table.itemSelectionChanged.connect(self._stage_selected)

        self.notes = QLabel(self)
        self.notes.setObjectName("compareNotes")
        self.notes.setWordWrap(True)
        self.notes.setTextFormat(Qt.TextFormat.PlainText)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.verdict)
        layout.addWidget(self.sentence)
        layout.addWidget(self.fixes)
        layout.addWidget(self.fixes_rows)
        layout.addWidget(self.subject)
        layout.addWidget(self.metrics)
        layout.addWidget(self.task_box)
        layout.addWidget(self.stages_title)
        layout.addWidget(self.stage_table)
        layout.addWidget(self.notes)
        layout.addStretch(1)
        # Each part as tall as its content; the room left over stays below them.
        for part in (self.verdict, self.sentence, self.fixes, self.fixes_rows, self.subject, self.metrics,
                     self.task_box, self.stages_title, self.notes, self.top5_agreement, self.embedding_label):
            part.setSizePolicy(part.sizePolicy().horizontalPolicy(), QSizePolicy.Policy.Maximum)
        self.clear()

    def _build_task_pages(self) -> None:
        # Classification: both models' probabilities for the original's five best labels.
        self.labels_page = QWidget(self.task_pages)
        self.top5_table = _table("top5Table", ["Label", "Original", "Converted"], self.labels_page)
        self.top5_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.top5_agreement = QLabel(self.labels_page)
        self.top5_agreement.setObjectName("top5Agreement")
        self.top5_agreement.setWordWrap(True)
        labels_layout = QVBoxLayout(self.labels_page)
        labels_layout.setContentsMargins(0, 0, 0, 0)
        labels_layout.addWidget(self.top5_agreement)
        labels_layout.addWidget(self.top5_table)
        # Diarization: how much of the clip each speaker is active, per model (the timeline shows when).
        self.speakers_page = QWidget(self.task_pages)
        self.speaker_table = _table("speakerTable", ["Speaker", "Active (original)", "Active (converted)"], self.speakers_page)
        self.speaker_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        speakers_hint = QLabel("Share of the clip where sigmoid(frame logit) > 0.5", self.speakers_page)
        speakers_hint.setWordWrap(True)
        speakers_hint.setToolTip("The speaker lanes under the waveform show when each speaker is active")
        speakers_layout = QVBoxLayout(self.speakers_page)
        speakers_layout.setContentsMargins(0, 0, 0, 0)
        speakers_layout.addWidget(speakers_hint)
        speakers_layout.addWidget(self.speaker_table)
        # Speaker verification: how alike the two models' embeddings are.
        self.embedding_label = QLabel(self.task_pages)
        self.embedding_label.setObjectName("embeddingCosine")
        self.embedding_label.setWordWrap(True)
        pages_layout = QVBoxLayout(self.task_pages)
        pages_layout.setContentsMargins(0, 0, 0, 0)
        for page in (self.labels_page, self.speakers_page, self.embedding_label):
            pages_layout.addWidget(page)

    def _show_task_page(self, page: QWidget) -> None:
        for other in (self.labels_page, self.speakers_page, self.embedding_label):
            other.setVisible(other is page)

    # -- showing ------------------------------------------------------------------------------------

    def clear(self, text: str = "Not compared yet.") -> None:
        self.result = None
        self.verdict.setText(text)
        self._style_verdict("")
        self.sentence.setText("Choose a clip and the converted folder, then Compare: both models run on the "
                              "clip and their outputs are compared at the tolerance.")
        self.show_fixes([])
        self.subject.setText("")
        self.subject.setVisible(False)
        for value in self.metric_values.values():
            value.setText("—")
        self.metrics.setVisible(False)
        self.task_box.setVisible(False)
        self.stages_title.setVisible(False)
        self.stage_table.setRowCount(0)
        self.stage_table.setVisible(False)
        self.notes.setText("")

    def show_result(self, result, tolerance: float, subject: str, fixes_used: Sequence[dict[str, str]] = ()) -> None:
        """Show a `core.comparison.ClipComparison` made at `tolerance`; `fixes_used`: the rows the
        original model read only through the user's fixes (`Comparison.fixes_used`)."""
        self.result = result
        self.tolerance = tolerance
        self.verdict.setText(self.verdict_text(result, tolerance))
        self._style_verdict(result.verdict)
        self.sentence.setText(plain_words.verdict_sentence(result, tolerance, result.segment))
        self.show_fixes(list(fixes_used))
        self.subject.setText(subject)
        self.subject.setVisible(True)
        self._show_metrics(result)
        self._show_task(result)
        self._show_stages(result, tolerance)
        self.notes.setText("\n".join(f"• {note}" for note in result.notes))
        self.notes.setVisible(bool(result.notes))

    @staticmethod
    def verdict_text(result, tolerance: float) -> str:
        if math.isinf(result.max_abs_diff):
            headline = "✕ fail — the converted output has another shape than the original's"
        elif result.verdict == "pass":
            headline = f"✓ pass — max |diff| {short_number(result.max_abs_diff)} ≤ {short_number(tolerance)}"
        else:
            headline = f"✕ fail — max |diff| {short_number(result.max_abs_diff)} > {short_number(tolerance)}"
        if result.verdict != "pass" and result.first_divergent_layer:
            headline += f"\nfirst divergent layer: {result.first_divergent_layer}"
        return headline

    def show_fixes(self, fixes_used: list[dict[str, str]]) -> None:
        """How many rows only the user's fixes prove, with a link that lists them (and a tooltip that does)."""
        self.fixes_used = fixes_used
        self.fixes_rows.set_rows([(row["source"], row["target"]) for row in fixes_used])
        self.fixes.setToolTip(self.fixes_rows.toolTip())
        self.fixes.setVisible(bool(fixes_used))
        self.show_fixed_rows(False)
        self._style_fixes()

    def show_fixed_rows(self, shown: bool) -> None:
        """Show (or hide) the fixed rows under the fixes line: checkpoint key → converted key."""
        shown = shown and bool(self.fixes_used)
        self.fixes_rows.setVisible(shown)
        link = "Hide the rows" if shown else "Which rows?"
        self.fixes.setText(f"{html.escape(fixes_sentence(len(self.fixes_used)))} <a href='{FIXES_LINK}'>{link}</a>"
                           if self.fixes_used else "")

    def _show_metrics(self, result) -> None:
        values = self.metric_values
        values["MaxAbsDiff"].setText(short_number(result.max_abs_diff))
        values["MeanAbsDiff"].setText(short_number(result.mean_abs_diff))
        values["Nmse"].setText("identical" if result.nmse_db <= -300 else f"{result.nmse_db:.1f} dB")
        values["CosineMin"].setText(f"{result.cosine_min:.6f}")
        values["CosineMean"].setText(f"{result.cosine_mean:.6f}")
        values["Frames"].setText(f"{result.frames} × {result.frame_seconds * 1000:.0f} ms" if result.frames > 1 else "1 per clip")
        values["Tolerance"].setText(short_number(self.tolerance))
        values["Seconds"].setText(f"{human_seconds(result.seconds_original)} / {human_seconds(result.seconds_converted)}")
        self.metrics.setVisible(True)

    def _show_task(self, result) -> None:
        details = result.details or {}
        kind = result.converted.extras.get("kind") if result.converted is not None else None
        if "top5" in details:
            self._show_labels(details)
        elif "verification_embedding_cosine" in details:
            cosine = details["verification_embedding_cosine"]
            self.task_box.setTitle("Speaker embedding")
            self.embedding_label.setText(f"Cosine similarity of the two models' embeddings: {cosine:.6f}")
            self.embedding_label.setToolTip(f"{plain_words.SIMILARITY} Compared: S3PRL's verification embedding "
                                            "(l2norm(ReLU(linear1))) and the same transform of transformers' embeddings.")
            self._show_task_page(self.embedding_label)
        elif kind == "sd":
            self._show_speakers(result)
        else:
            self.task_box.setVisible(False)
            return
        self.task_box.setVisible(True)

    def _show_labels(self, details: dict) -> None:
        top5 = details["top5"]
        self.task_box.setTitle(f"Top-{len(top5)} labels of both models")
        self.top5_table.setRowCount(len(top5))
        for row, entry in enumerate(top5):
            for column, text in enumerate((entry["label"], f"{entry['original']:.1%}", f"{entry['converted']:.1%}")):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    item.setToolTip(f"{entry['original' if column == 1 else 'converted']:.6f}")
                self.top5_table.setItem(row, column, item)
        _fit_rows(self.top5_table)
        agrees = bool(details.get("top1_agrees"))
        overlap = details.get("top5_overlap")
        best = f": both pick '{top5[0]['label']}'" if agrees else ""
        text = f"Top-1 label {'agrees' if agrees else 'differs'}{best}" + (
            f" · {overlap} of the top {len(top5)} in common" if overlap is not None else "")
        self.top5_agreement.setText(text)
        colour = theme.message_colour("success" if agrees else "error", QGuiApplication.palette())
        self.top5_agreement.setStyleSheet(f"color: {colour.name()}; font-weight: bold")
        self._show_task_page(self.labels_page)

    def _show_speakers(self, result) -> None:
        original = as_frames(result.original.primary, result.frames) > 0
        converted = as_frames(result.converted.primary, result.frames) > 0
        speakers = original.shape[1]
        names = result.converted.extras.get("labels") or ()  # as the lanes and the Labels row name them
        self.task_box.setTitle("Speaker activity")
        self.speaker_table.setRowCount(speakers)
        for speaker in range(speakers):
            cells = (speaker_name(names, speaker), f"{np.mean(original[:, speaker]):.0%}",
                     f"{np.mean(converted[:, speaker]):.0%}")
            for column, text in enumerate(cells):
                self.speaker_table.setItem(speaker, column, QTableWidgetItem(text))
        _fit_rows(self.speaker_table)
        self._show_task_page(self.speakers_page)

    def _show_stages(self, result, tolerance: float) -> None:
        rows = list(result.stage_max_abs_diff.items())
        if result.original is not None and OUTPUT not in result.stage_max_abs_diff:
            rows.append((OUTPUT, result.max_abs_diff))
        palette = QGuiApplication.palette()
        table = self.stage_table
        # Heatmaps exist for outputs with a course in time; one answer per clip has none to click to.
        over_time = result.original is not None and result.original.primary.dim() > 1
        self.stages_title.setText("Stages — the largest |difference| after each"
                                  + (" (click one to see its heatmaps):" if over_time else ":"))
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection if over_time
                               else QAbstractItemView.SelectionMode.NoSelection)
        table.blockSignals(True)
        table.setRowCount(len(rows))
        for row, (name, diff) in enumerate(rows):
            within = diff <= tolerance
            first = name == result.first_divergent_layer
            mark = "✕ first" if first else ("✓" if within else "✕")
            for column, text in enumerate((name if name != OUTPUT else "output (compared)", short_number(diff), mark)):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, name)
                if column == 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                why = ""
                if not within:
                    item.setForeground(theme.message_colour("error", palette))
                    why = ("the first stage beyond the tolerance: where the models start to disagree"
                           if first else "beyond the tolerance")
                item.setToolTip("\n".join(part for part in (text if column == 0 else "", why,
                                                               plain_words.MAX_DIFF if column == 1 else "") if part))
                if first:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                table.setItem(row, column, item)
        table.blockSignals(False)
        _fit_rows(table)
        self.stages_title.setVisible(bool(rows))
        table.setVisible(bool(rows))

    def select_stage(self, name: str) -> None:
        """Mark the stage whose heatmaps the timeline shows."""
        for row in range(self.stage_table.rowCount()):
            if self.stage_table.item(row, 0).data(Qt.ItemDataRole.UserRole) == name:
                self.stage_table.blockSignals(True)
                self.stage_table.selectRow(row)
                self.stage_table.blockSignals(False)
                return

    def _stage_selected(self) -> None:
        rows = self.stage_table.selectionModel().selectedRows()
        if rows:
            self.stageChosen.emit(self.stage_table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole))

    # -- looks --------------------------------------------------------------------------------------

    def _style_verdict(self, verdict: str) -> None:
        self.verdict_kind = verdict
        palette = QGuiApplication.palette()
        if verdict in ("pass", "fail"):
            colour = theme.message_colour("success" if verdict == "pass" else "error", palette)
            tint = f"rgba({colour.red()}, {colour.green()}, {colour.blue()}, {48 if theme.is_dark(palette) else 28})"
            sheet = (f"QLabel#compareVerdict {{ color: {colour.name()}; background: {tint}; "
                     f"border: 1px solid {colour.name()}; border-radius: 4px; padding: 6px 10px; }}")
        else:
            sheet = "QLabel#compareVerdict { padding: 6px 0px; }"
        self.verdict.setStyleSheet(sheet)

    def _style_fixes(self) -> None:
        colour = theme.message_colour("warning", QGuiApplication.palette()).name()
        self.fixes.setStyleSheet(f"QLabel#compareFixes {{ color: {colour}; }}")

    def restyle(self) -> None:
        self._style_verdict(self.verdict_kind)
        self._style_fixes()
        if self.result is not None:
            self._show_task(self.result)
            self._show_stages(self.result, self.tolerance)
