"""The compare bar of the Audition tab, and the comparison it runs.

Top to bottom: the converted folder (the open checkpoint's last conversion unless the user picks
another after opening it — never a folder of a checkpoint opened before), the tolerance, Compare
with its progress (how far, and about how long is left) and Cancel, and why Compare is disabled (or
what it will do). The comparison is `speechport compare` on one clip, on a worker: the part of the
clip chosen on its waveform read (when it is not the whole clip as already read), `open_sides`
(skipped while the models opened last time still match the checkpoint, base model and folder),
then `compare_clips`, which reports layer by layer and stops between layers when cancelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QDoubleValidator, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import Cancelled
from ..shared import theme
from ..shared.elided_label import ElidedLabel
from ..shared.elided_progress_bar import ElidedProgressBar
from ..shared.formatting import human_seconds, short_number, time_left
from ..shared.widgets import PathField
from ..workspace import workers
from ..workspace.sides_cache import SidesCache, SidesKey
from ..workspace.workspace import Workspace
from .plain_words import seconds_span

DEFAULT_TOLERANCE = "5e-3"  # core.comparison.DEFAULT_TOLERANCE (importing that module loads torch)
# Compare from anywhere on the Audition page; Ctrl+Return is Convert's, wherever the focus is.
COMPARE_KEYS = ("Ctrl+Shift+Return", "Ctrl+Shift+Enter")


def progress_texts(clip_name: str, event) -> list[str]:
    """What the bar says of a comparison's progress, then shorter forms of it for a narrow bar: how far
    it is stays longest, then the time left; the clip's name goes first."""
    doing, percent = f"Comparing {clip_name}", f"{int(event.fraction * 100)} %"
    left = [time_left(event.eta)] if event.eta is not None and event.fraction < 1.0 else []
    forms = [" — ".join([doing, percent, *left]), " — ".join([doing, percent]), " — ".join([percent, *left]), percent]
    return list(dict.fromkeys(forms))


@dataclass(frozen=True)
class Compared:
    """What a comparison was made of, for what is shown and exported with it."""

    clip: object  # core.audio.Clip compared: the whole clip, or the segment of it (`clip.segment`)
    source: Path
    base_model: Path | None
    converted: Path
    recipe: str
    clip_seconds: float = 0.0  # the whole clip's length
    recorded: object = None  # core.proof.record.Recorded: whether the folder's report took the comparison

    @property
    def segment(self) -> tuple[float, float] | None:
        """(start, end) seconds of the clip that were compared, or None for the whole clip."""
        return self.clip.segment


RECORDED_BY = "Speechport's window"  # who compared, as the folder's report records it
# What can run the original model, as the window names them (core.planning.recipe: original_backends).
BACKEND_NAMES = {"reference": "Speechport reference", "fairseq2": "genuine fairseq2 (witness)",
                 "s3prl": "S3PRL's own modules"}
INSTALL = "install witness"  # the entry of the backend list that installs the witness
BACKEND_NAMES[INSTALL] = "Install the fairseq2 witness…"
BACKEND_TIPS = {"reference": "Speechport's own implementation of the original model (the default)",
                "fairseq2": "the genuine fairseq2 0.2.1, in its witness environment: slower to start, the original "
                            "library itself", "s3prl": "S3PRL 0.4.18's own featurizer and head modules",
                INSTALL: "Install the genuine fairseq2 0.2.1 in an environment of its own, so that it can run the "
                         "original model (about 5.1 GB, a few minutes): asks first"}
WITNESS = "fairseq2"  # the backend that runs in a witness environment, installed on request


def available_backends(recipe) -> list[str]:
    """The recipe's original backends this machine can run now: the reference always, a witness once
    installed (a look at its folder: no interpreter is started), S3PRL where it is importable."""
    import importlib.util

    from ...core.witnesses import environments

    found = []
    for backend in getattr(recipe, "original_backends", ("reference",)):
        if backend == WITNESS and environments.find(WITNESS) is None:
            continue
        if backend == "s3prl" and importlib.util.find_spec("s3prl") is None:
            continue
        found.append(backend)
    return found or ["reference"]


def compare_and_record(clip, *, progress, **options):
    """On the worker: what `speechport compare` does for one clip (`workers.compare_job`), then the
    comparison recorded in the converted folder's report and model card (core.proof.record), which
    says so when the folder cannot take it. Returns (Audition, Recorded)."""
    from ...core.proof.record import record_comparison

    audition = workers.compare_job(clip, progress=progress, **options)
    recorded = record_comparison(audition.sides, audition.comparison, by=RECORDED_BY)
    return audition, recorded


class CompareBar(QWidget):
    started = Signal()  # what was shown of an earlier comparison is stale
    finished = Signal(object, object, object)  # core.comparison.Comparison, Compared, core.verification.Sides
    stopped = Signal(str)  # not compared, and what the verdict area says instead

    def __init__(self, workspace: Workspace, settings: QSettings, clip: Callable[[], object],
                 reading_clip: Callable[[], bool], segment: Callable[[], tuple[float, float] | None] = lambda: None,
                 parent: QWidget | None = None):
        """`clip`: the page's core.audio.Clip (the whole clip as read), or None; `segment`: the part of it
        to compare, (start, end) in seconds, or None for the clip as read."""
        super().__init__(parent)
        self.setObjectName("compareBar")
        self.workspace = workspace
        self.slot = workspace.comparing
        self._clip = clip
        self._reading_clip = reading_clip
        self._segment = segment
        self._failed_attempt = None  # (sides key, clip, segment) of the last comparison that could not run

        self.converted_field = PathField(
            "convertedPath", settings=settings, recent_key="converted", folder=True,
            dialog_title="Choose the converted folder", placeholder="the transformers folder to compare (converted above)",
            tooltip="The converted model to compare with the original checkpoint; after a conversion, its output folder.",
            parent=self)
        converted_label = QLabel("Converte&d:", self)
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
        self.backend_combo = QComboBox(self)
        self.backend_combo.setObjectName("originalBackendCombo")
        self.backend_combo.setToolTip("What runs the original model: Speechport's own implementation of it, or the "
                                      "genuine library where it is installed")
        backend_label = QLabel("Original:", self)  # every letter of it is taken as an Alt key: reached by Tab
        backend_label.setBuddy(self.backend_combo)
        self._backends_for = None  # the recipe the backend choice was made for
        self._chosen_index = 0  # the backend chosen before "Install the fairseq2 witness…" was picked
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.setObjectName("compareButton")
        font = self.compare_button.font()
        font.setBold(True)
        self.compare_button.setFont(font)
        self.compare_button.setMinimumWidth(110)
        self.progress_bar = ElidedProgressBar(self)
        self.progress_bar.setObjectName("compareProgress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setAccessibleName("Comparison progress")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("compareCancelButton")
        self.cancel_button.setToolTip("Stop the comparison (Esc)")
        # One line whatever it says, so a new reason never moves what is below it; all of it in its tooltip.
        self.reason = ElidedLabel(parent=self)
        self.reason.setObjectName("compareReason")

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
        # The original's backend shares the line of the reason, which gives up its width first.
        reason_row = QHBoxLayout()
        reason_row.addWidget(self.reason, 1)
        reason_row.addWidget(backend_label)
        reason_row.addWidget(self.backend_combo)
        self._backend_label = backend_label
        layout.addLayout(reason_row)

        self.converted_field.pathChosen.connect(self._converted_chosen)
        self.tolerance_edit.textChanged.connect(lambda _text: self.update_state())
        self.compare_button.clicked.connect(self.compare)
        self.cancel_button.clicked.connect(self.cancel)
        self.backend_combo.currentIndexChanged.connect(self._backend_picked)
        workspace.changed.connect(self.update_state)
        workspace.checkpointChanged.connect(self._forget_progress)

    @property
    def task(self) -> workers.Task | None:
        return self.slot.task

    @property
    def sides_cache(self) -> SidesCache:
        return self.workspace.sides

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
        workspace = self.workspace
        if self.slot.busy():
            installing = getattr(self.slot.task, "kind", "") == "install witness"
            return "busy", "Installing the fairseq2 witness…" if installing else "Comparing…"
        if workspace.converting.busy():
            return "info", "A conversion is running: compare once it is done."
        if workspace.prepared is None:
            if not workspace.source:
                return "info", "Open the original checkpoint above: it is one side of the comparison."
            if workspace.is_opening():
                return "info", "Opening the checkpoint…"
            return "warning", "The checkpoint is not open: see the message above."
        if self._reading_clip():
            return "info", "Reading the clip…"
        if self._clip() is None:
            return "info", "Choose a clip to compare on (or one of the demo clips)."
        if not workspace.converted:
            return "info", "Choose the converted folder: convert first, or pick one."
        if self.tolerance() is None:
            return "warning", "Type a tolerance, e.g. 5e-3."
        return "", ""

    def _key(self) -> SidesKey:
        prepared = self.workspace.prepared
        return SidesKey.of(prepared.checkpoint, prepared.source, prepared.base_model, Path(self.workspace.converted),
                           self.backend())

    def backend(self) -> str:
        """The chosen original backend ("reference" until another is chosen)."""
        return self.backend_combo.currentData() or "reference"

    def _sync_backends(self) -> None:
        """The backends of the open checkpoint's recipe this machine can run, the choice kept when it still
        can; and, while the witness the recipe could use is not installed, the way to install it."""
        prepared = self.workspace.prepared
        recipe = prepared.recipe if prepared is not None else None
        available = available_backends(recipe) if recipe is not None else ["reference"]
        wants_witness = recipe is not None and WITNESS in getattr(recipe, "original_backends", ())
        items = available + ([INSTALL] if wants_witness and WITNESS not in available else [])
        shown = [self.backend_combo.itemData(i) for i in range(self.backend_combo.count())]
        if shown != items or self._backends_for is not recipe:
            chosen = self.backend() if self._backends_for is recipe else "reference"
            combo = self.backend_combo
            combo.blockSignals(True)
            combo.clear()
            for item in items:
                combo.addItem(BACKEND_NAMES.get(item, item), item)
                combo.setItemData(combo.count() - 1, BACKEND_TIPS.get(item, item), Qt.ItemDataRole.ToolTipRole)
            combo.setCurrentIndex(available.index(chosen) if chosen in available else 0)
            self._chosen_index = combo.currentIndex()
            combo.blockSignals(False)
            self._backends_for = recipe
        for widget in (self.backend_combo, self._backend_label):
            widget.setVisible(len(items) > 1)

    def _backend_picked(self, index: int) -> None:
        if self.backend_combo.itemData(index) == INSTALL:
            self.backend_combo.blockSignals(True)
            self.backend_combo.setCurrentIndex(self._chosen_index)  # installing is an action, not a choice
            self.backend_combo.blockSignals(False)
            QTimer.singleShot(0, self.install_witness)
            return
        self._chosen_index = index
        self.update_state()

    # -- the witness, installed on request ------------------------------------------------------

    def install_witness(self) -> None:
        """Say what installing the genuine fairseq2 costs, then install it in the background: progress in
        the bar, Cancel stops it and leaves nothing."""
        from ...core.witnesses import environments

        spec = environments.SPECS[WITNESS]
        if self.slot.busy():
            return
        answer = QMessageBox.question(
            self, "Install the fairseq2 witness?",
            f"Speechport will install {spec.title} (with torch 2.2.2) in an environment of its own, in "
            f"{environments.witnesses_home() / spec.name}, so that the genuine library can run the original model.\n\n"
            f"It takes about {spec.disk_bytes / 1e9:.1f} GB of disk ({spec.why_so_large}) and about "
            f"{spec.minutes:g} minutes with a fast connection. You can cancel it; nothing is left behind.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        task = workers.Task("install witness", workers.install_witness_job, WITNESS, with_progress=True)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setFormat("Installing the fairseq2 witness…")
        self.workspace.messages.log(f"Installing {spec.title} as a witness in {environments.witnesses_home()}")
        self.slot.start(task, self._witness_installed, failed=self._witness_failed, progressed=self._install_progress)
        self.update_state()

    def _install_progress(self, task, event) -> None:
        if task.cancelled:
            return
        line = event.message or (event.stage[:1].upper() + event.stage[1:])
        self.progress_bar.setRange(0, 0)
        self.progress_bar.set_text(f"Installing the fairseq2 witness — {line}", "Installing the fairseq2 witness…")

    def _witness_installed(self, task, witness) -> None:
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat("Witness installed")
        self.workspace.messages.log(f"Installed the fairseq2 witness in {witness.folder}: {witness.describe()}")
        self._sync_backends()
        index = self.backend_combo.findData(WITNESS)
        if index >= 0:
            self.backend_combo.setCurrentIndex(index)
        self.update_state()

    def _witness_failed(self, task, error) -> bool:
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Cancelled" if isinstance(error, Cancelled) else "Not installed")
        if isinstance(error, Cancelled):
            self.workspace.messages.log("Installing the witness was cancelled; nothing was left behind.")
            self.update_state()
            return True  # said: nothing more to show
        return False  # said the way every failure is

    def _converted_chosen(self, path: str) -> None:
        workspace = self.workspace
        if path:
            workspace.set_converted(path, chosen=True)
        else:  # emptied: back to the last conversion's folder, if this checkpoint has one
            workspace.set_converted(str(workspace.result.output) if workspace.result is not None else "", chosen=False)

    def _forget_progress(self) -> None:
        """Another checkpoint: what the bar said about the last one's comparison is gone."""
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")

    # -- running ----------------------------------------------------------------------------------

    def compare(self) -> None:
        """Run both models on the clip, or the part of it chosen (opening them first unless they are
        still open), and compare. A folder typed and not applied yet is applied first: Compare, like
        Enter, says to use it."""
        typed = self.converted_field.take_typed() if self.task is None else None
        if typed is not None:
            self._converted_chosen(typed)
        if self.blocker()[0]:
            return
        workspace = self.workspace
        prepared = workspace.prepared
        clip = self._clip()
        segment = self._segment()
        converted = Path(workspace.converted).expanduser().absolute()
        key = self._key()
        sides = workspace.sides.get(key)
        task = workers.Task(
            "compare", compare_and_record, clip, segment=segment, sides=sides, checkpoint=prepared.checkpoint,
            detection=prepared.detection, base_model=prepared.base_model, dictionary=prepared.dictionary_path,
            converted=str(converted),
            tolerance=self.tolerance(), backend=self.backend(), with_progress=True)
        task.key = key
        task.attempt = (key, clip, segment)
        task.checkpoint = prepared.checkpoint
        task.compared = Compared(clip, prepared.source, prepared.base_model, converted, prepared.recipe.name,
                                 clip.seconds)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting…")
        part = f"{seconds_span(*segment)} of " if segment is not None else ""
        workspace.messages.log(f"Comparing on {part}{clip.path.name}: {prepared.source.name} against {converted}"
                               + (" (both models still loaded)" if sides is not None else ""))
        self.slot.start(task, self._succeeded, failed=self._failed, progressed=self._progress)
        workspace.set_comparison(None)
        self.started.emit()

    def cancel(self) -> bool:
        """Ask a running comparison to stop (it stops before the next layer); False when none runs."""
        if not self.slot.cancel():
            return False
        self.progress_bar.setFormat("Cancelling…")
        installing = getattr(self.slot.task, "kind", "") == "install witness"
        self.workspace.messages.log("Cancelling the install…" if installing else "Cancelling the comparison…")
        self.update_state()
        return True

    def busy(self) -> bool:
        return self.slot.busy()

    def _progress(self, task, event) -> None:
        if task.cancelled:
            return
        if event.items_total or event.bytes_total:
            # Only the models' run reports how far it is: layer by layer, in both models.
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(event.fraction * 1000))
            self.progress_bar.set_text(*progress_texts(task.compared.clip.path.name, event))
        else:
            self.progress_bar.setRange(0, 0)  # reading the clip, loading a model: no measure of how far it is
            self.progress_bar.setFormat(event.stage[:1].upper() + event.stage[1:] + "…")

    def _succeeded(self, task, outcome) -> None:
        audition, recorded = outcome
        workspace = self.workspace
        if audition.opened_sides:
            workspace.sides.put(task.key, audition.sides, task.checkpoint)
        self._failed_attempt = None
        comparison = audition.comparison
        result = comparison.clips[0]
        compared = replace(task.compared, clip=audition.clip, recorded=recorded)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat(f"{result.verdict} · {human_seconds(task.seconds)}")
        workspace.set_comparison(comparison, compared)
        self.finished.emit(comparison, compared, audition.sides)
        where = f", first divergent layer {result.first_divergent_layer}" if result.first_divergent_layer else ""
        part = f"{seconds_span(*compared.segment)} of " if compared.segment is not None else ""
        log = workspace.messages.log
        log(f"Compared on {part}{compared.clip.path.name}: {result.verdict} (max |diff| "
            f"{short_number(result.max_abs_diff)}, tolerance {short_number(comparison.tolerance)}{where}) "
            f"in {task.seconds:.2f} s")
        for note in result.notes:
            log(f"note: {note}")
        log(recorded.line()[:1].upper() + recorded.line()[1:])
        if not recorded.recorded:  # compared all the same: said once, not as an error
            workspace.messages.status(f"Compared, but {recorded.line()}", 8000)

    def _failed(self, task, error) -> bool:
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        if isinstance(error, Cancelled):
            self.progress_bar.setFormat("Cancelled")
            self.stopped.emit("Not compared: cancelled.")
        else:
            self.progress_bar.setFormat("Failed")
            self._failed_attempt = task.attempt
            self.stopped.emit("Not compared: see the message above.")
        return False  # said the way every failure is

    # -- state → widgets ----------------------------------------------------------------------------

    def update_state(self) -> None:
        self.converted_field.sync(self.workspace.converted)
        self._sync_backends()
        kind, reason = self.blocker()
        self.compare_button.setEnabled(not kind)
        task = self.slot.task
        self.cancel_button.setEnabled(task is not None and not task.cancelled)
        if kind:
            colour = theme.message_colour(kind, QGuiApplication.palette()).name() if kind in theme.MESSAGE_COLOURS else ""
            self.reason.setStyleSheet(f"color: {colour}" if colour else "")
            self.compare_button.setToolTip(reason)
        else:
            loaded = " (both models are loaded)" if self.workspace.sides.get(self._key()) is not None else ""
            segment = self._segment()
            part = f"{seconds_span(*segment)} of " if segment is not None else ""
            reason = f"Ready: {part}{self._clip().path.name} through both models{loaded}."
            self.reason.setStyleSheet("")
            if self._failed_again(segment):
                # Nothing changed since it could not run: "Ready" would promise what failed.
                reason = (f"Could not compare {part}{self._clip().path.name} with "
                          f"{Path(self.workspace.converted).name}: see the message above. Choose another converted "
                          "folder or clip, or Compare to try again.")
                colour = theme.message_colour("warning", QGuiApplication.palette()).name()
                self.reason.setStyleSheet(f"color: {colour}")
            keys = QKeySequence(COMPARE_KEYS[0]).toString(QKeySequence.SequenceFormat.NativeText)
            self.compare_button.setToolTip(
                f"Run both models on the clip and compare their outputs ({keys})" if segment is None else
                f"Run both models on {seconds_span(*segment)} of the clip (the shaded part of the waveform) and "
                f"compare their outputs ({keys})")
        self.reason.setText(reason)
        for widget in (self.converted_field, self.tolerance_edit, self.backend_combo):
            widget.setEnabled(task is None)

    def _failed_again(self, segment) -> bool:
        """The last comparison could not run, and Compare would run it on the same models, folder and clip."""
        failed = self._failed_attempt
        return failed is not None and failed[1] is self._clip() and failed[2] == segment and failed[0] == self._key()

    def restyle(self) -> None:
        self.cancel_button.setIcon(theme.glyph_icon("cancel", QGuiApplication.palette()))
