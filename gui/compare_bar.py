"""The compare bar of the Audition tab, and the comparison it runs.

Top to bottom: the converted folder (the last conversion's unless the user picks another), the
tolerance, Compare with its progress and Cancel, and why Compare is disabled (or what it will
do). The comparison is `speechport compare` on one clip, on a worker: `open_sides` (skipped while
the models opened last time still match the checkpoint, base model and folder) then `compare_clips`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtGui import QDoubleValidator, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import Cancelled, SpeechportError
from . import theme, workers
from .formatting import human_seconds, short_number
from .sides_cache import SidesCache, SidesKey
from .widgets import PathField

if TYPE_CHECKING:
    from .main_window import MainWindow

DEFAULT_TOLERANCE = "5e-3"  # core.comparison.DEFAULT_TOLERANCE (importing that module loads torch)


@dataclass(frozen=True)
class Compared:
    """What a comparison was made of, for what is shown and exported with it."""

    clip: object  # core.audio.Clip
    source: Path
    base_model: Path | None
    converted: Path
    recipe: str


class CompareBar(QWidget):
    started = Signal()  # what was shown of an earlier comparison is stale
    finished = Signal(object, object, object)  # core.comparison.Comparison, Compared, core.verification.Sides
    stopped = Signal(str)  # not compared, and what the verdict area says instead

    def __init__(self, window: MainWindow, clip: Callable[[], object], reading_clip: Callable[[], bool],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("compareBar")
        self.main_window = window
        self._clip = clip  # the page's core.audio.Clip, or None
        self._reading_clip = reading_clip
        self.task: workers.Task | None = None
        self.sides_cache = SidesCache()
        self.converted_suggested = True  # the folder follows the last conversion until the user picks one

        self.converted_field = PathField(
            "convertedPath", settings=window.settings, recent_key="converted", folder=True,
            dialog_title="Choose the converted folder", placeholder="the transformers folder to compare (converted above)",
            tooltip="The converted model to compare with the original checkpoint; after a conversion, its output folder.",
            parent=self)
        converted_label = QLabel("Con&verted:", self)
        converted_label.setBuddy(self.converted_field.edit)
        self.tolerance_edit = QLineEdit(DEFAULT_TOLERANCE, self)
        self.tolerance_edit.setObjectName("toleranceEdit")
        validator = QDoubleValidator(0.0, 1e6, 12, self.tolerance_edit)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        self.tolerance_edit.setValidator(validator)
        self.tolerance_edit.setMaximumWidth(self.fontMetrics().horizontalAdvance("0.00005") + 24)
        self.tolerance_edit.setToolTip("The verdict passes when the largest |difference| is at most this "
                                       "(transformers' conversion script uses 5e-3)")
        tolerance_label = QLabel("&Tolerance:", self)
        tolerance_label.setBuddy(self.tolerance_edit)
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.setObjectName("compareButton")
        font = self.compare_button.font()
        font.setBold(True)
        self.compare_button.setFont(font)
        self.compare_button.setMinimumWidth(110)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setObjectName("compareProgress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setAccessibleName("Comparison progress")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("compareCancelButton")
        self.cancel_button.setToolTip("Stop the comparison (Esc)")
        self.reason = QLabel(self)
        self.reason.setObjectName("compareReason")
        # One line whatever it says, so a new reason never moves what is below it.
        self.reason.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

        converted_row = QHBoxLayout()
        converted_row.addWidget(converted_label)
        converted_row.addWidget(self.converted_field, 1)
        compare_row = QHBoxLayout()
        compare_row.addWidget(tolerance_label)
        compare_row.addWidget(self.tolerance_edit)
        compare_row.addWidget(self.compare_button)
        compare_row.addWidget(self.progress_bar, 1)
        compare_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(converted_row)
        layout.addLayout(compare_row)
        layout.addWidget(self.reason)

        self.converted_field.pathChosen.connect(self._converted_chosen)
        self.converted_field.edit.textEdited.connect(self._converted_typed)
        self.tolerance_edit.textChanged.connect(lambda _text: self.update_state())
        self.compare_button.clicked.connect(self.compare)
        self.cancel_button.clicked.connect(self.cancel)

    # -- what to compare ------------------------------------------------------------------------------

    def tolerance(self) -> float | None:
        """The typed tolerance: a finite number above 0 (what the core accepts), else None."""
        try:
            value = float(self.tolerance_edit.text().strip())
        except ValueError:
            return None
        return value if math.isfinite(value) and value > 0 else None

    def blocker(self) -> tuple[str, str]:
        """Why Compare is disabled (kind, sentence), or ("", "") when it is not."""
        window = self.main_window
        if self.task is not None:
            return "busy", "Comparing…"
        if window.busy_converting():
            return "info", "A conversion is running: compare once it is done."
        if window.prepared is None:
            if not window.inputs.source_field.path():
                return "info", "Open the original checkpoint above: it is one side of the comparison."
            if window.opener.busy():
                return "info", "Opening the checkpoint…"
            return "warning", "The checkpoint is not open: see the message above."
        if self._reading_clip():
            return "info", "Reading the clip…"
        if self._clip() is None:
            return "info", "Choose a clip to compare on (or one of the demo clips)."
        if not self.converted_field.path():
            return "info", "Choose the converted folder: convert first, or pick one."
        if self.tolerance() is None:
            return "warning", "Type a tolerance, e.g. 5e-3."
        return "", ""

    def _key(self) -> SidesKey:
        prepared = self.main_window.prepared
        return SidesKey.of(prepared.checkpoint, prepared.source, prepared.base_model, Path(self.converted_field.path()))

    def _converted_chosen(self, path: str) -> None:
        self.converted_suggested = not path
        self.update_state()

    def _converted_typed(self, text: str) -> None:
        self.converted_suggested = not text.strip()
        self.update_state()

    def suggested_converted(self) -> str:
        """The last conversion's folder, or the output folder when a converted model is already there."""
        window = self.main_window
        if window.result is not None:
            return str(window.result.output)
        output = window.inputs.output_field.path()
        if output and (Path(output).expanduser() / "config.json").is_file():
            return output
        return ""

    def conversion_finished(self, result) -> None:
        self.converted_field.set_path(result.output)
        self.converted_suggested = True

    def forget_models(self) -> None:
        """The checkpoint changed: the models opened from the old one are no use."""
        self.sides_cache.clear()

    # -- running ----------------------------------------------------------------------------------

    def compare(self) -> None:
        """Run both models on the clip (opening them first unless they are still open) and compare."""
        if self.blocker()[0]:
            return
        window = self.main_window
        prepared = window.prepared
        clip = self._clip()
        converted = Path(self.converted_field.path()).expanduser().absolute()
        key = self._key()
        sides = self.sides_cache.get(key)
        task = workers.Task(
            "compare", workers.compare_job, clip, sides=sides, checkpoint=prepared.checkpoint,
            detection=prepared.detection, base_model=prepared.base_model, converted=str(converted),
            tolerance=self.tolerance(), with_progress=True)
        task.key = key
        task.checkpoint = prepared.checkpoint
        task.compared = Compared(clip, prepared.source, prepared.base_model, converted, prepared.recipe.name)
        self.task = task
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting…")
        self.started.emit()
        window.log(f"Comparing on {clip.path.name}: {prepared.source.name} against {converted}"
                   + (" (both models still loaded)" if sides is not None else ""))
        window.runner.run(task, self._succeeded, self._failed, self._progress)
        window.update_all()

    def cancel(self) -> bool:
        """Ask a running comparison to stop (it stops between models); False when none runs."""
        if self.task is None or self.task.cancelled:
            return False
        self.task.cancel()
        self.progress_bar.setFormat("Cancelling…")
        self.main_window.log("Cancelling the comparison…")
        self.update_state()
        return True

    def busy(self) -> bool:
        return self.task is not None

    def _progress(self, task, event) -> None:
        if task is not self.task or task.cancelled:
            return
        if event.items_total:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(event.fraction * 1000))
        else:
            self.progress_bar.setRange(0, 0)  # loading a model: no measure of how far it is
        self.progress_bar.setFormat(event.stage[:1].upper() + event.stage[1:] + "…")

    def _succeeded(self, task, audition) -> None:
        if task is not self.task:
            return
        window = self.main_window
        self.task = None
        if audition.opened_sides:
            self.sides_cache.put(task.key, audition.sides, task.checkpoint)
        comparison = audition.comparison
        result = comparison.clips[0]
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat(f"{result.verdict} · {human_seconds(task.seconds)}")
        self.finished.emit(comparison, task.compared, audition.sides)
        where = f", first divergent layer {result.first_divergent_layer}" if result.first_divergent_layer else ""
        window.log(f"Compared on {task.compared.clip.path.name}: {result.verdict} (max |diff| "
                   f"{short_number(result.max_abs_diff)}, tolerance {short_number(comparison.tolerance)}{where}) "
                   f"in {task.seconds:.2f} s")
        for note in result.notes:
            window.log(f"note: {note}")
        window.update_all()

    def _failed(self, task, error) -> None:
        if task is not self.task:
            return
        window = self.main_window
        self.task = None
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        if isinstance(error, Cancelled):
            self.progress_bar.setFormat("Cancelled")
            self.stopped.emit("Not compared: cancelled.")
            window.log("Comparison cancelled.")
        else:
            self.progress_bar.setFormat("Failed")
            self.stopped.emit("Not compared: see the message above.")
            if isinstance(error, SpeechportError):
                window.show_error(f"Not compared: {error}")
            else:
                window.report_internal_error(error, task.traceback, context="comparing")
        window.update_all()

    # -- state → widgets ----------------------------------------------------------------------------

    def update_state(self) -> None:
        if self.converted_suggested:
            suggestion = self.suggested_converted()
            if suggestion != self.converted_field.path():
                self.converted_field.set_path(suggestion)
        kind, reason = self.blocker()
        self.compare_button.setEnabled(not kind)
        self.cancel_button.setEnabled(self.task is not None and not self.task.cancelled)
        if kind:
            colour = theme.message_colour(kind, QGuiApplication.palette()).name() if kind in theme.MESSAGE_COLOURS else ""
            self.reason.setStyleSheet(f"color: {colour}" if colour else "")
            self.compare_button.setToolTip(reason)
        else:
            loaded = " (both models are loaded)" if self.sides_cache.get(self._key()) is not None else ""
            reason = f"Ready: {self._clip().path.name} through both models{loaded}."
            self.reason.setStyleSheet("")
            self.compare_button.setToolTip("Run both models on the clip and compare their outputs")
        self.reason.setText(reason)
        for widget in (self.converted_field, self.tolerance_edit):
            widget.setEnabled(self.task is None)

    def restyle(self) -> None:
        self.cancel_button.setIcon(theme.glyph_icon("cancel", QGuiApplication.palette()))
