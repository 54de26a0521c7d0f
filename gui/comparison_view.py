"""What one comparison found, for people: the verdict in large letters (and where the models start to
disagree when they do), the metrics, the task's own view — top-5 labels of both models, speaker
activity, or the speaker embeddings' similarity — every stage's largest difference, and the notes.

Everything shown is what the core's `ClipComparison` says; the stages can be clicked to show
their heatmaps in the timeline.
"""

from __future__ import annotations

import math

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
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .comparison_plots import as_frames
from .formatting import human_seconds, short_number
from .timeline_view import OUTPUT

METRICS = (  # object name suffix, label, tooltip; shown two to a row
    ("MaxAbsDiff", "max |diff|", "The largest absolute difference between the two outputs: the verdict compares it with the tolerance"),
    ("MeanAbsDiff", "mean |diff|", "The mean absolute difference over every compared value"),
    ("Nmse", "NMSE", "Normalised mean squared error: the difference's energy relative to the original's, in dB"),
    ("Tolerance", "tolerance", "The largest |difference| the verdict accepts"),
    ("CosineMin", "cosine min", "The lowest cosine similarity of the outputs over the frames (1 = same direction)"),
    ("CosineMean", "cosine mean", "The mean cosine similarity of the outputs over the frames"),
    ("Frames", "frames", "How many output frames were compared, and the time between them"),
    ("Seconds", "time", "How long the original and the converted model took on this clip"),
)


def _table(object_name: str, headers: list[str], parent: QWidget) -> QTableWidget:
    table = QTableWidget(0, len(headers), parent)
    table.setObjectName(object_name)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    return table


def _fit_rows(table: QTableWidget, most: int) -> None:
    """Tall enough for its rows (up to `most`), so short tables take no more room than they need."""
    rows = min(table.rowCount(), most)
    height = table.horizontalHeader().height() + rows * table.verticalHeader().defaultSectionSize() + 2 * table.frameWidth()
    table.setFixedHeight(height + 2)


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
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setWeight(QFont.Weight.Bold)
        self.verdict.setFont(font)
        self.subject = QLabel(self)
        self.subject.setObjectName("compareSubject")
        self.subject.setWordWrap(True)
        self.subject.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

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
            value = QLabel(self.metrics)
            value.setObjectName(f"metric{key}")
            value.setToolTip(tip)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            row, column = divmod(number, 2)
            grid.addWidget(name, row, column * 2)
            grid.addWidget(value, row, column * 2 + 1)
            self.metric_values[key] = value
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

        self.task_box = QGroupBox(self)
        self.task_box.setObjectName("taskView")
        self.task_pages = QStackedWidget(self.task_box)
        box_layout = QVBoxLayout(self.task_box)
        box_layout.setContentsMargins(6, 4, 6, 6)
        box_layout.addWidget(self.task_pages)
        self._build_task_pages()

        self.stages_title = QLabel("Stages — the largest |difference| after each (click one to see its heatmaps):", self)
        self.stages_title.setWordWrap(True)
        self.stage_table = _table("stageTable", ["Stage", "max |diff|", ""], self)
        self.stage_table.setToolTip("Each stage the two models share, in order; the first beyond the tolerance is "
                                    "where a bad mapping shows first.")
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
        layout.addWidget(self.subject)
        layout.addWidget(self.metrics)
        layout.addWidget(self.task_box)
        layout.addWidget(self.stages_title)
        layout.addWidget(self.stage_table)
        layout.addWidget(self.notes)
        layout.addStretch(1)
        # Each part as tall as its content; the room left over stays below them.
        for part in (self.verdict, self.subject, self.metrics, self.task_box, self.stages_title, self.notes,
                     self.top5_agreement, self.embedding_label):
            part.setSizePolicy(part.sizePolicy().horizontalPolicy(), QSizePolicy.Policy.Maximum)
        self.clear()

    def _build_task_pages(self) -> None:
        # Classification: both models' probabilities for the original's five best labels.
        self.labels_page = QWidget(self.task_pages)
        self.top5_table = _table("top5Table", ["Label", "Original", "Converted"], self.labels_page)
        self.top5_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.top5_agreement = QLabel(self.labels_page)
        self.top5_agreement.setObjectName("top5Agreement")
        labels_layout = QVBoxLayout(self.labels_page)
        labels_layout.setContentsMargins(0, 0, 0, 0)
        labels_layout.addWidget(self.top5_agreement)
        labels_layout.addWidget(self.top5_table)
        # Diarization: how much of the clip each speaker is active, per model (the timeline shows when).
        self.speakers_page = QWidget(self.task_pages)
        self.speaker_table = _table("speakerTable", ["Speaker", "Active (original)", "Active (converted)"], self.speakers_page)
        self.speaker_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        speakers_hint = QLabel("Share of the clip where sigmoid(frame logit) > 0.5", self.speakers_page)
        speakers_hint.setToolTip("The speaker timeline beside the heatmaps shows when each speaker is active")
        speakers_layout = QVBoxLayout(self.speakers_page)
        speakers_layout.setContentsMargins(0, 0, 0, 0)
        speakers_layout.addWidget(speakers_hint)
        speakers_layout.addWidget(self.speaker_table)
        # Speaker verification: how alike the two models' embeddings are.
        self.embedding_label = QLabel(self.task_pages)
        self.embedding_label.setObjectName("embeddingCosine")
        for page in (self.labels_page, self.speakers_page, self.embedding_label):
            self.task_pages.addWidget(page)

    def _show_task_page(self, page: QWidget) -> None:
        """Only the page shown takes room (a stack is otherwise as tall as its tallest page)."""
        for other in (self.labels_page, self.speakers_page, self.embedding_label):
            policy = QSizePolicy.Policy.Preferred if other is page else QSizePolicy.Policy.Ignored
            other.setSizePolicy(policy, policy)
        self.task_pages.setCurrentWidget(page)
        page.adjustSize()
        self.task_pages.adjustSize()

    # -- showing ------------------------------------------------------------------------------------

    def clear(self, text: str = "Not compared yet.") -> None:
        self.result = None
        self.verdict.setText(text)
        self._style_verdict("")
        self.subject.setText("Choose a clip and the converted folder, then Compare: both models run on the "
                             "clip and their outputs are compared at the tolerance.")
        for value in self.metric_values.values():
            value.setText("—")
        self.metrics.setVisible(False)
        self.task_box.setVisible(False)
        self.stages_title.setVisible(False)
        self.stage_table.setRowCount(0)
        self.stage_table.setVisible(False)
        self.notes.setText("")

    def show_result(self, result, tolerance: float, subject: str) -> None:
        """Show a `core.comparison.ClipComparison` made at `tolerance`."""
        self.result = result
        self.tolerance = tolerance
        self.verdict.setText(self.verdict_text(result, tolerance))
        self._style_verdict(result.verdict)
        self.subject.setText(subject)
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
            self.embedding_label.setToolTip("S3PRL's verification embedding (l2norm(ReLU(linear1))) against the same "
                                            "transform of transformers' embeddings")
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
        _fit_rows(self.top5_table, 5)
        agrees = bool(details.get("top1_agrees"))
        overlap = details.get("top5_overlap")
        text = f"Top-1 label {'agrees' if agrees else 'differs'}" + (
            f" · {overlap} of the top {len(top5)} in common" if overlap is not None else "")
        self.top5_agreement.setText(text)
        colour = theme.message_colour("success" if agrees else "error", QGuiApplication.palette())
        self.top5_agreement.setStyleSheet(f"color: {colour.name()}; font-weight: bold")
        self._show_task_page(self.labels_page)

    def _show_speakers(self, result) -> None:
        original = as_frames(result.original.primary, result.frames) > 0
        converted = as_frames(result.converted.primary, result.frames) > 0
        speakers = original.shape[1]
        self.task_box.setTitle("Speaker activity")
        self.speaker_table.setRowCount(speakers)
        for speaker in range(speakers):
            cells = (f"S{speaker + 1}", f"{np.mean(original[:, speaker]):.0%}", f"{np.mean(converted[:, speaker]):.0%}")
            for column, text in enumerate(cells):
                self.speaker_table.setItem(speaker, column, QTableWidgetItem(text))
        _fit_rows(self.speaker_table, 6)
        self._show_task_page(self.speakers_page)

    def _show_stages(self, result, tolerance: float) -> None:
        rows = list(result.stage_max_abs_diff.items())
        if result.original is not None and OUTPUT not in result.stage_max_abs_diff:
            rows.append((OUTPUT, result.max_abs_diff))
        palette = QGuiApplication.palette()
        table = self.stage_table
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
                if not within:
                    item.setForeground(theme.message_colour("error", palette))
                    item.setToolTip("the first stage beyond the tolerance: where the models start to disagree"
                                    if first else "beyond the tolerance")
                if first:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                table.setItem(row, column, item)
        table.blockSignals(False)
        _fit_rows(table, 8)
        self.stages_title.setVisible(bool(rows))
        table.setVisible(bool(rows))
        if result.first_divergent_layer:
            divergent = [r for r, (name, _) in enumerate(rows) if name == result.first_divergent_layer]
            if divergent:
                table.scrollToItem(table.item(divergent[0], 0))

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

    def restyle(self) -> None:
        self._style_verdict(self.verdict_kind)
        if self.result is not None:
            self._show_task(self.result)
            self._show_stages(self.result, self.tolerance)
