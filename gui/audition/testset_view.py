"""The Audition tab's test-set view: both models over a whole set of clips, as `speechport compare
--dataset` runs it, shown as it goes.

Choose (or drop) a folder of clips or a manifest, press Run: the set is compared in the background by
worker processes that each hold both models (`core.proof.testset`), with Cancel. The view counts the
clips done against the set with the time left, fills in the histogram of per-clip max |diff| against
the tolerance as results arrive, keeps the worst clips in a table — a double-click opens one in the
clip view — and, once done, sums the set up: the verdict, how the clips spread, what the two models
decide (top-1 agreement, accuracy, EER, speaker decisions, and for a speech recognition model how
alike both transcribe and how close each comes to the reference text). The report folder (results.jsonl,
summary.json, report.html) sits beside the set; Run again keeps what is already compared there with
these models and compares the rest, and Export report… saves the self-contained page.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.proof.testset_summary import histogram
from ...core.proof.testset_transcripts import transcription_rows
from ..shared import dialogs
from ..shared.elided_label import ElidedLabel
from ..shared.elided_progress_bar import ElidedProgressBar
from ..shared.formatting import human_seconds, short_number, time_left
from ..shared.plots import style_plot
from ..shared.widgets import PathField, local_paths
from ..workspace import workers
from ..workspace.workspace import Workspace

SET_SUFFIXES = (".csv", ".tsv", ".jsonl", ".scp", ".txt")  # what a test set is when it is a file
WORST_ROWS = 10
HTML_FILTER = "Web page (*.html)"
REDRAW_MS = 150  # the histogram is redrawn at most this often while results pour in
COLUMNS = ("Clip", "Verdict", "max |diff|", "First divergent layer")
MODEL_ROWS = ("agreement", "accuracy", "eer", "speakers", "transcripts")  # shown only where the model answers them


class RecordFeed(QObject):
    """Records of a running set, from the worker thread to the GUI thread (queued signals)."""

    started = Signal(int, str)  # clips in the set, the report folder
    arrived = Signal(object, int, int)  # a clip's record (compacted), clips known, clips in the set


def compact(record: dict) -> dict:
    """What the view keeps of a record: enough to plot it, list it and open its clip."""
    return {name: record.get(name) for name in ("key", "path", "segment", "verdict", "max_abs_diff",
                                                "first_divergent_layer", "error", "index")}


def testset_job(dataset: str, *, source: str, converted: str, base_model: str | None, backend: str,
                trust_pickle: bool, dictionary: str | None, recipe_class, tolerance: float, workers_count: int,
                feed: RecordFeed, progress):
    """On a worker thread: read the set, check its report folder (beside the set), run it with every
    clip already compared there with these models kept."""
    from ...core.conversion import open_sides
    from ...core.proof.datasets import read_dataset
    from ...core.proof.testset import check_report_folder, default_report_folder, run_testset
    from ...core.proof.testset_clip import ClipOptions, OpenModels

    progress.stage("reading the test set")
    found = read_dataset(dataset)
    folder = default_report_folder(dataset, beside=True)
    check_report_folder(folder, resume=True, converted=converted,
                        inputs=[path for path in (source, dataset, base_model) if path])
    models = OpenModels(open_sides, str(source), str(converted), str(base_model) if base_model else None, backend,
                        trust_pickle, dictionary=str(dictionary) if dictionary else None)
    feed.started.emit(len(found.clips), str(folder))
    return run_testset(models, found, folder, options=ClipOptions(tolerance=tolerance), recipe_class=recipe_class,
                       workers=workers_count, resume=True, progress=progress,
                       on_record=lambda record, done, total: feed.arrived.emit(compact(record), done, total),
                       about={"source": str(source), "converted": str(converted), "original_backend": backend,
                              "recipe": getattr(recipe_class, "name", "")})


def copy_report_job(report: str, target: str) -> str:
    import shutil

    try:
        shutil.copyfile(report, target)
    except OSError as exc:
        from ...core.errors import BadInput

        raise BadInput(f"{target}: cannot write the report ({exc.strerror or exc})") from None
    return target


def transcription_words(summary: dict) -> str:
    """A speech recognition model's numbers over the set as sentences: "Both models transcribe 18 of 20
    clips identically; character error rate between them 0.40 %. Against the text: …"; "—" for
    another model."""
    rows = transcription_rows(summary)
    if not rows:
        return "—"
    sentences = [rows[0][1]] + [f"{what}: {how}" for what, how in rows[1:]]
    return " ".join(f"{sentence[0].upper()}{sentence[1:]}." for sentence in sentences)


class LogAxis(pg.AxisItem):
    """A log10 axis labelled as the values themselves: 1e-6, 1e-4, 0.01."""

    def tickStrings(self, values, scale, spacing):
        return [short_number(10 ** value, 1) for value in values]


class DiffHistogram(pg.PlotWidget):
    """Clips per bin of max |diff| (the bins of report.html), the tolerance as a dashed line."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, axisItems={"bottom": LogAxis("bottom")})
        self.setObjectName("testsetHistogram")
        self.setAccessibleName("Histogram of per-clip max |diff|")
        self.counts: list[int] = []
        self.edges: list[float] = []
        item = self.getPlotItem()
        item.hideButtons()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.getAxis("left").setLabel("clips")
        item.getAxis("bottom").setLabel("max |diff| per clip")
        self.bars = pg.BarGraphItem(x0=[], x1=[], height=[], brushes=[])
        item.addItem(self.bars)
        self.line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#d1242f", width=2, style=Qt.PenStyle.DashLine),
                                    label="tolerance", labelOpts={"position": 0.92, "color": "#d1242f",
                                                                  "anchors": [(1, 0), (1, 0)]})
        item.addItem(self.line)
        self.setMinimumHeight(140)

    def show_values(self, values: list[float], tolerance: float) -> None:
        found = histogram(values, tolerance)
        self.edges, self.counts = found["edges"], found["counts"]
        logs = [math.log10(edge) for edge in self.edges]
        brushes = [pg.mkBrush("#2f7d4f" if self.edges[i + 1] <= tolerance * (1 + 1e-9) else "#c0392b")
                   for i in range(len(self.counts))]
        self.bars.setOpts(x0=logs[:-1], x1=logs[1:], height=self.counts, brushes=brushes)
        self.line.setValue(math.log10(tolerance))
        self.getPlotItem().setXRange(logs[0], logs[-1], padding=0.02)
        self.getPlotItem().setYRange(0, max([*self.counts, 1]) * 1.1, padding=0)
        self.setAccessibleDescription(f"{sum(self.counts)} clips; tolerance {tolerance:g}")

    def restyle(self, palette: QPalette) -> None:
        style_plot(self, palette)


class TestsetView(QWidget):
    clipChosen = Signal(str, object)  # a clip's path and its part (start, end) or None: open it in the clip view

    def __init__(self, workspace: Workspace, settings: QSettings, tolerance, backend, parent: QWidget | None = None):
        """`tolerance()` and `backend()`: the comparison's, as chosen in the clip view (one setting for both)."""
        super().__init__(parent)
        self.setObjectName("testsetView")
        self.setAcceptDrops(True)
        self.workspace = workspace
        self._tolerance = tolerance
        self._backend = backend
        self.slot = workspace.task_slot("Comparing on the test set", doing="comparing on the test set",
                                        refusal="Not compared: ")
        self.records: dict[str, dict] = {}
        self.total = 0
        self.folder: Path | None = None  # the report folder of the last run
        self.outcome = None  # core.proof.testset.TestsetOutcome of the last run (a stopped one too)
        self.feed = RecordFeed(self)
        self.feed.started.connect(self._set_started)
        self.feed.arrived.connect(self._arrived)
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._draw_records)
        self._last_event = None

        self.dataset_field = PathField(
            "testsetPath", settings=settings, recent_key="testset", folder=True, or_file=True,
            file_filter="Test sets (*.csv *.tsv *.jsonl *.scp *.txt);;All files (*)",
            dialog_title="Choose the test set",
            placeholder="a folder of clips, a manifest (.csv .tsv .jsonl), a wav.scp or a trial list — or drop it here",
            tooltip="The clips to compare on: a folder (with metadata.csv for labels or reference texts), a CSV, TSV or JSONL manifest with "
                    "a file_name column, a fairseq .tsv manifest, a Kaldi wav.scp or a speaker-verification trial list",
            parent=self)
        set_label = QLabel("Test set:", self)
        set_label.setBuddy(self.dataset_field.edit)
        self.workers_spin = QSpinBox(self)
        self.workers_spin.setObjectName("testsetWorkers")
        self.workers_spin.setRange(1, max(1, (os.cpu_count() or 1) * 2))
        self.workers_spin.setValue(os.cpu_count() or 1)
        self.workers_spin.setToolTip("Worker processes, each with both models loaded once (default: one per core)")
        self.workers_spin.setAccessibleName("Workers")
        workers_label = QLabel("Workers:", self)
        workers_label.setBuddy(self.workers_spin)
        self.run_button = QPushButton("Run", self)
        self.run_button.setObjectName("testsetRunButton")
        self.run_button.setToolTip("Compare both models on every clip of the set; clips already compared there with "
                                   "these models and options are kept, the rest compared")
        font = self.run_button.font()
        font.setBold(True)
        self.run_button.setFont(font)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("testsetCancelButton")
        self.cancel_button.setToolTip("Stop the run; every clip compared so far is kept (Esc)")
        self.progress_bar = ElidedProgressBar(self)
        self.progress_bar.setObjectName("testsetProgress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("")
        self.progress_bar.setAccessibleName("Test set progress")
        self.export_button = QPushButton("Export report…", self)
        self.export_button.setObjectName("testsetExportButton")
        self.export_button.setToolTip("Save report.html: one page with the histogram, the worst clips and the "
                                      "agreement, to send to a colleague")
        self.reason = ElidedLabel(parent=self)
        self.reason.setObjectName("testsetReason")

        self.histogram = DiffHistogram(self)
        self.verdict = QLabel(self)
        self.verdict.setObjectName("testsetVerdict")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.PlainText)
        summary = QWidget(self)
        summary.setObjectName("testsetSummary")
        self.summary_labels: dict[str, QLabel] = {}
        form = QFormLayout(summary)
        form.setContentsMargins(0, 0, 0, 0)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow(self.verdict)
        for key, title in (("clips", "Clips"), ("spread", "max |diff|"), ("agreement", "Top-1 agreement"),
                           ("accuracy", "Accuracy"), ("eer", "EER"), ("speakers", "Speaker decisions"),
                           ("transcripts", "Transcripts"), ("folder", "Report")):
            label = QLabel("—", summary)
            label.setObjectName(f"testsetSummary{key[0].upper()}{key[1:]}")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.summary_labels[key] = label
            form.addRow(f"{title}:", label)
        self._form = form

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("testsetWorstTable")
        self.table.setAccessibleName("The worst clips")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)  # a line of text each
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("The clips with the largest max |diff|: double-click one (or press Enter) to open it "
                              "in the clip view")
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        set_row = QHBoxLayout()
        self.set_row = set_row  # the page puts its mode switch at the head of this row
        set_row.addWidget(set_label)
        set_row.addWidget(self.dataset_field, 1)
        set_row.addWidget(workers_label)
        set_row.addWidget(self.workers_spin)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.progress_bar, 1)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.export_button)
        top = QSplitter(Qt.Orientation.Horizontal, self)
        top.setObjectName("testsetSplitter")
        top.addWidget(self.histogram)
        top.addWidget(summary)
        top.setChildrenCollapsible(False)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        body = QSplitter(Qt.Orientation.Vertical, self)
        body.setObjectName("testsetBody")
        body.addWidget(top)
        body.addWidget(self.table)
        body.setChildrenCollapsible(False)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(set_row)
        layout.addLayout(run_row)
        layout.addWidget(self.reason)
        layout.addWidget(body, 1)

        self.dataset_field.pathChosen.connect(lambda _path: self.update_state())
        self.dataset_field.editedChanged.connect(lambda _edited: self.update_state())
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.choose_export)
        self.table.cellDoubleClicked.connect(lambda row, _column: self.open_row(row))
        for key in ("Return", "Enter"):  # the keyboard's double-click
            opener = QShortcut(QKeySequence(key), self.table, lambda: self.open_row(self.table.currentRow()))
            opener.setContext(Qt.ShortcutContext.WidgetShortcut)
        workspace.changed.connect(self.update_state)
        self.clear()
        self.update_state()

    # -- what to run ------------------------------------------------------------------------------

    def dataset(self) -> str:
        return self.dataset_field.applied()

    def choose_dataset(self, path: str | os.PathLike) -> None:
        """Use a test set, as choosing it in the dialog does."""
        self.dataset_field.commit(str(path))

    def blocker(self) -> tuple[str, str]:
        """Why Run is disabled (kind, sentence), or ("", "") when it is not."""
        workspace = self.workspace
        if self.slot.busy():
            return "busy", "Comparing on the test set…"
        if workspace.converting.busy():
            return "info", "A conversion is running: run once it is done."
        if workspace.comparing.busy():
            return "info", "A comparison is running in the clip view."
        if workspace.prepared is None:
            return "info", "Open the original checkpoint above: it is one side of the comparison."
        if not workspace.converted:
            return "info", "Choose the converted folder (in the clip view), or convert first."
        if not self.dataset():
            return "info", "Choose a test set: a folder of clips or a manifest (or drop it here)."
        if self._tolerance() is None:
            return "warning", "Type a tolerance in the clip view, e.g. 5e-3."
        return "", ""

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> None:
        typed = self.dataset_field.take_typed() if not self.slot.busy() else None
        if typed is not None:
            self.dataset_field.pathChosen.emit(typed)
        if self.blocker()[0]:
            return
        prepared = self.workspace.prepared
        converted = Path(self.workspace.converted).expanduser().absolute()
        task = workers.Task(
            "testset", testset_job, self.dataset(), source=str(prepared.source), converted=str(converted),
            base_model=str(prepared.base_model) if prepared.base_model else None, backend=self._backend(),
            trust_pickle=bool(getattr(prepared.checkpoint, "trusted", False)),
            dictionary=getattr(prepared, "dictionary_path", None), recipe_class=type(prepared.recipe),
            tolerance=self._tolerance(), workers_count=self.workers_spin.value(), feed=self.feed, with_progress=True)
        self.clear()
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setFormat("Starting…")
        self.workspace.messages.log(f"Comparing on the test set {self.dataset()}: {prepared.source.name} against "
                                    f"{converted} with {self.workers_spin.value()} worker(s)")
        self.slot.start(task, self._succeeded, failed=self._failed, progressed=self._progress)
        self.update_state()

    def cancel(self) -> bool:
        if not self.slot.cancel():
            return False
        self.progress_bar.setFormat("Stopping… (what is done is kept)")
        self.workspace.messages.log("Stopping the test set…")
        self.update_state()
        return True

    def busy(self) -> bool:
        return self.slot.busy()

    def cancellable(self) -> bool:
        """A run that Cancel (Esc) would stop: running, and not asked to stop yet."""
        return self.slot.task is not None and not self.slot.task.cancelled

    def _set_started(self, total: int, folder: str) -> None:
        self.total = total
        self.folder = Path(folder)
        self.summary_labels["folder"].setText(folder)
        self._show_count()

    def _arrived(self, record: dict, done: int, total: int) -> None:
        self.records[record["key"]] = record
        self.total = total
        self._show_count()
        if not self._redraw.isActive():
            self._redraw.start()

    def _progress(self, task, event) -> None:
        if task.cancelled:
            return
        self._last_event = event
        if event.items_total:
            self._show_count()
        else:
            self.progress_bar.setRange(0, 0)
            self.progress_bar.setFormat(event.stage[:1].upper() + event.stage[1:] + "…")

    def _show_count(self) -> None:
        if not self.total or self.slot.task is None or self.slot.task.cancelled:
            return
        done = len(self.records)
        event = self._last_event
        left = f" — {time_left(event.eta)}" if event is not None and event.eta is not None and done < self.total else ""
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(int(1000 * done / self.total))
        self.progress_bar.set_text(f"{done} / {self.total} clips{left}", f"{done} / {self.total}")

    def _succeeded(self, task, outcome) -> None:
        self.outcome = outcome
        summary = outcome.summary
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat(f"{summary['verdict'] or 'no verdict'} · {summary['done']} clips · "
                                    f"{human_seconds(task.seconds)}")
        self._show_summary(summary)
        self.workspace.messages.log(f"Test set: {summary['verdict'] or 'no verdict'} ({summary['passed']} passed, "
                                    f"{summary['failed']} failed, {summary['unreadable']} not compared) in "
                                    f"{task.seconds:.1f} s; the report is {outcome.folder / 'report.html'}")
        self.update_state()

    def _failed(self, task, error) -> bool:
        outcome = getattr(error, "outcome", None)
        self.progress_bar.setRange(0, 1000)
        if outcome is not None:  # stopped: what was done is kept and summed up
            self.outcome = outcome
            self._show_summary(outcome.summary)
            self.progress_bar.setFormat(f"Stopped · {outcome.summary['done']} of {outcome.summary['clips']} clips kept")
            self.workspace.messages.log(f"Test set {error}")
        else:
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat("Failed")
        self.update_state()
        return outcome is not None  # a stop is said above; anything else the way every failure is

    # -- what it found ----------------------------------------------------------------------------

    def clear(self) -> None:
        self.records = {}
        self.total = 0
        self.outcome = None
        self._last_event = None
        self.verdict.setText("Run to compare both models on every clip of a test set.")
        for key, label in self.summary_labels.items():
            if key != "folder":
                label.setText("—")
        self._show_rows_that_apply()
        self.histogram.show_values([], self._tolerance() or 5e-3)
        self.table.setRowCount(0)

    def compared(self) -> list[dict]:
        return [r for r in self.records.values() if r["verdict"] in ("pass", "fail")]

    def worst(self) -> list[dict]:
        def diff(record):
            return math.inf if record["max_abs_diff"] is None else record["max_abs_diff"]

        return sorted(self.compared(), key=lambda r: (-diff(r), r.get("index") or 0))[:WORST_ROWS]

    def _draw_records(self) -> None:
        done = self.compared()
        values = [math.inf if r["max_abs_diff"] is None else r["max_abs_diff"] for r in done]
        self.histogram.show_values(values, self._tolerance() or 5e-3)
        self._fill_table(self.worst())
        failed = sum(1 for r in done if r["verdict"] == "fail")
        skipped = len(self.records) - len(done)
        self.summary_labels["clips"].setText(f"{len(self.records)} of {self.total}: {len(done) - failed} passed, "
                                             f"{failed} failed, {skipped} not compared")

    def _fill_table(self, rows: list[dict]) -> None:
        self.table.setRowCount(len(rows))
        for row, record in enumerate(rows):
            diff = "∞" if record["max_abs_diff"] is None else short_number(record["max_abs_diff"], 3)
            cells = (record["key"], record["verdict"], diff, record.get("first_divergent_layer") or "—")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(str(text))
                item.setData(Qt.ItemDataRole.UserRole, record)
                if column == 0:
                    item.setToolTip(record["path"])
                if column == 1 and record["verdict"] == "fail":
                    item.setForeground(QColor("#c0392b"))
                self.table.setItem(row, column, item)

    def _show_summary(self, summary: dict) -> None:
        self._redraw.stop()
        self._draw_records()
        self._fill_table([compact(r) for r in summary["worst_clips"]])
        tolerance = summary["tolerance"]
        verdict = summary["verdict"]
        if verdict == "pass":
            said = (f"Pass: on every one of the {summary['passed']} clips compared, the converted model's outputs "
                    f"match the original's within the {tolerance:g} tolerance.")
        elif verdict == "fail":
            said = (f"Fail: on {summary['failed']} of {summary['passed'] + summary['failed']} clips the converted "
                    f"model's outputs differ from the original's by more than {tolerance:g}.")
        elif not summary.get("complete", True):
            said = "Stopped before every clip was compared: no verdict. Run again to compare the rest."
        else:
            said = "No clip of the set could be compared: see why for each in the table's log."
        if verdict and not summary.get("complete", True):
            said += " (Stopped: not every clip was compared.)"
        self.verdict.setText(said)
        spread = summary["max_abs_diff"]
        self.summary_labels["clips"].setText(
            f"{summary['done']} of {summary['clips']}: {summary['passed']} passed, {summary['failed']} failed, "
            f"{summary['unreadable'] + summary['errors']} not compared")
        compared = summary["passed"] + summary["failed"]

        def value(name: str) -> str:
            if spread[name] is None:
                return "∞" if compared else "—"  # null is an infinite difference once clips were compared
            return short_number(spread[name], 3)

        self.summary_labels["spread"].setText("  ".join(f"{name} {value(name)}"
                                                        for name in ("median", "p95", "p99", "worst")))

        def percent(value) -> str:
            return "—" if value is None else f"{value * 100:.2f} %"

        self.summary_labels["agreement"].setText(percent(summary.get("top1_agreement")))
        self.summary_labels["accuracy"].setText(
            "—" if summary.get("accuracy_original") is None else
            f"original {percent(summary['accuracy_original'])}, converted {percent(summary['accuracy_converted'])} "
            f"({summary.get('labelled_clips')} labelled)")
        self.summary_labels["eer"].setText(
            "—" if not summary.get("trials") else
            f"original {percent(summary['eer_original'])}, converted {percent(summary['eer_converted'])} "
            f"({summary['trials_scored']} of {summary['trials']} trials)")
        speakers = summary.get("speaker_frame_disagreement")
        self.summary_labels["speakers"].setText(
            "—" if not speakers else f"{percent(speakers['mean'])} of frames differ on average, "
                                     f"{percent(speakers['worst'])} on the worst clip")
        self.summary_labels["transcripts"].setText(transcription_words(summary))
        self.summary_labels["folder"].setText(str(summary.get("report_folder", "")))
        self._show_rows_that_apply()

    def _show_rows_that_apply(self) -> None:
        """The rows of what a kind of model answers (classes, speakers, words) only where this one has
        something to say: an encoder's summary is not a list of dashes."""
        for key in MODEL_ROWS:
            label = self.summary_labels[key]
            self._form.setRowVisible(label, label.text() != "—")

    def open_row(self, row: int) -> None:
        item = self.table.item(row, 0)
        if item is None:
            return
        record = item.data(Qt.ItemDataRole.UserRole)
        segment = record.get("segment")
        part = (float(segment[0]), float(segment[1])) if segment and segment[1] is not None else None
        self.clipChosen.emit(record["path"], part)

    # -- export -------------------------------------------------------------------------------------

    def report_path(self) -> Path | None:
        if self.outcome is None:
            return None
        return self.outcome.folder / "report.html"

    def export_report(self, target: str | os.PathLike) -> None:
        """Copy report.html to `target`, on a worker."""
        source = self.report_path()
        if source is None:
            return
        task = workers.Task("export report", copy_report_job, str(source), str(target))
        slot = self.workspace.task_slot("Exporting the report", doing="exporting the report", keep_on_reset=True)
        self._export_slot = slot  # kept alive until it is done
        slot.start(task, lambda _task, written: self.workspace.messages.log(f"Exported the test set's report to "
                                                                            f"{written}"))

    def choose_export(self) -> None:
        source = self.report_path()
        if source is None:
            return
        path, _ = dialogs.save_file_name(self, "Export the test set's report", source.name, HTML_FILTER)
        if path:
            self.export_report(path)

    # -- state → widgets ----------------------------------------------------------------------------

    def update_state(self) -> None:
        kind, reason = self.blocker()
        busy = self.slot.busy()
        self.run_button.setEnabled(not kind)
        self.cancel_button.setEnabled(busy and not self.slot.task.cancelled)
        self.dataset_field.setEnabled(not busy)
        self.workers_spin.setEnabled(not busy)
        self.export_button.setEnabled(not busy and self.outcome is not None)
        self.reason.setText(reason if kind and kind != "busy" else "")
        self.reason.setVisible(bool(kind and kind != "busy"))

    def restyle(self, palette: QPalette) -> None:
        self.histogram.restyle(palette)

    def shutdown(self) -> None:
        self.slot.drop()

    # -- drop ---------------------------------------------------------------------------------------

    def _set_path(self, paths: list[str]) -> str | None:
        for path in paths:
            if Path(path).is_dir() or Path(path).suffix.lower() in SET_SUFFIXES:
                return path
        return None

    def dragEnterEvent(self, event) -> None:
        if self._set_path(local_paths(event.mimeData())) is not None and not self.slot.busy():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        path = self._set_path(local_paths(event.mimeData()))
        if path is None or self.slot.busy():
            return
        event.acceptProposedAction()
        self.choose_dataset(path)
