"""The conversion bar at the bottom of the window, and the conversion it runs.

Left to right: why Convert is disabled (or what it will write), the progress with tensors and
bytes, the time left, Cancel and Convert. The conversion runs on a worker; the bar shows its
progress and, at the end, the window's message bar says what was written.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
)

from ..core.errors import Cancelled, OutputNotEmpty, PlanProblems, SpeechportError
from . import dialogs, theme, workers
from .formatting import human_bytes, human_seconds, time_left

if TYPE_CHECKING:
    from .main_window import MainWindow


class ConversionBar(QFrame):
    def __init__(self, window: MainWindow, convert_action: QAction, cancel_action: QAction):
        super().__init__(window)
        self.setObjectName("conversionBar")
        self.main_window = window
        self.convert_action = convert_action
        self.cancel_action = cancel_action
        self.task: workers.Task | None = None
        self.last_stage = ""

        row = QHBoxLayout(self)
        row.setContentsMargins(0, 2, 0, 0)
        row.setSpacing(8)
        self.reason = QLabel(self)
        self.reason.setObjectName("convertReason")
        self.reason.setWordWrap(True)
        self.reason.setTextFormat(Qt.TextFormat.RichText)
        self.reason.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setObjectName("conversionProgress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("")
        self.progress_bar.setMinimumWidth(320)
        self.progress_bar.setAccessibleName("Conversion progress")
        self.eta_label = QLabel(self)
        self.eta_label.setObjectName("etaLabel")
        self.eta_label.setMinimumWidth(90)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("Stop; nothing is left behind (Esc)")
        self.convert_button = QPushButton("Convert", self)
        self.convert_button.setObjectName("convertButton")
        self.convert_button.setMinimumWidth(120)
        font = self.convert_button.font()
        font.setBold(True)
        self.convert_button.setFont(font)
        row.addWidget(self.reason, 1)
        row.addWidget(self.progress_bar)
        row.addWidget(self.eta_label)
        row.addWidget(self.cancel_button)
        row.addWidget(self.convert_button)
        self.convert_button.clicked.connect(convert_action.trigger)
        self.cancel_button.clicked.connect(cancel_action.trigger)

    def busy(self) -> bool:
        return self.task is not None

    def set_icons(self) -> None:
        self.convert_button.setIcon(self.convert_action.icon())
        self.cancel_button.setIcon(self.cancel_action.icon())

    # -- running --------------------------------------------------------------------------------------

    def convert(self, force: bool = False) -> None:
        window = self.main_window
        if not self.convert_action.isEnabled() and not force:
            return
        out = window.inputs.output_field.path()
        window.message_bar.hide()
        window.result = None
        self.last_stage = ""
        task = workers.Task("convert", workers.convert_job, window.prepared, out, force=bool(force), with_progress=True)
        task.out = out
        self.task = task
        window.model.set_editable(False)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting…")
        self.eta_label.clear()
        window.log(f"Converting {window.prepared.source.name} → {out}" + (" (replacing it)" if force else ""))
        window.runner.run(task, self._succeeded, self._failed, self._progress)
        window.update_all()

    def cancel(self) -> bool:
        """Ask a running conversion to stop; False when there is none to stop."""
        if self.task is None or self.task.cancelled:
            return False
        self.task.cancel()
        self.progress_bar.setFormat("Cancelling…")
        self.main_window.log("Cancelling the conversion…")
        return True

    def _progress(self, task, event) -> None:
        if task is not self.task:
            return
        if event.stage != self.last_stage:
            self.last_stage = event.stage
            self.main_window.log(f"  {event.stage}")
        if event.message:
            self.main_window.log(f"  {event.message}")
        if task.cancelled:
            return
        self.progress_bar.setValue(int(event.fraction * 1000))
        parts = [event.stage]
        if event.items_total:
            parts.append(f"{event.items_done}/{event.items_total} tensors")
        if event.bytes_total:
            parts.append(f"{human_bytes(event.bytes_done)} / {human_bytes(event.bytes_total)}")
        self.progress_bar.setFormat(" · ".join(parts) + (f" — {event.fraction:.0%}" if event.bytes_total or event.items_total else ""))
        self.eta_label.setText(time_left(event.eta) if event.eta is not None and event.fraction < 1 else "")

    def _succeeded(self, task, result) -> None:
        if task is not self.task:
            return
        window = self.main_window
        self.task = None
        window.result = result
        window.model.set_editable(True)
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat(f"Done in {human_seconds(result.seconds)}")
        self.eta_label.clear()
        weights = result.weights
        prepared = window.prepared
        window.log(f"Converted in {result.seconds:.2f} s: {', '.join(weights.files)} ({human_bytes(weights.total_bytes)}) → {result.output}")
        window.message_bar.show_message(
            "success",
            f"Converted {prepared.source.name} in {human_seconds(result.seconds)} → {result.output}\n"
            f"{len(prepared.plan.mapped())} tensors, {human_bytes(weights.total_bytes)} in {', '.join(weights.files)}; "
            f"load it with {prepared.plan.target_class}.from_pretrained(folder).",
            [("Open folder", window.open_output_folder, "openFolderButton"),
             ("Show report", lambda: window.tabs.setCurrentWidget(window.report_view), "showReportButton")],
        )
        window.report_view.show_result(result, window.fixes)
        window.conversion_finished(result)
        window.update_all()

    def _failed(self, task, error) -> None:
        if task is not self.task:
            return
        window = self.main_window
        self.task = None
        window.model.set_editable(True)
        self.eta_label.clear()
        self.progress_bar.setValue(0)
        if isinstance(error, OutputNotEmpty):
            self.progress_bar.setFormat("")
            if dialogs.ask_replace_folder(window, str(error.path)):
                self.convert(force=True)
                return
            window.show_error(f"Not converted: {error.path} is not empty. Choose another output folder, "
                              "or convert again and agree to replace it.", kind="warning")
        elif isinstance(error, Cancelled):
            self.progress_bar.setFormat("Cancelled")
            window.log(str(error))
            window.message_bar.show_message("info", "Conversion cancelled; nothing was written.")
        elif isinstance(error, PlanProblems):
            self.progress_bar.setFormat("")
            window.show_error(f"{error}: " + "; ".join(error.plan.problem_lines()[:5]))
        elif isinstance(error, SpeechportError):
            self.progress_bar.setFormat("Failed")
            window.show_error(str(error))
        else:
            self.progress_bar.setFormat("Failed")
            window.report_internal_error(error, task.traceback, context="converting")
        window.update_all()

    # -- state → widgets ----------------------------------------------------------------------------

    def blocker(self) -> tuple[str, str]:
        """Why Convert is disabled (kind, sentence), or ("", "") when it is not."""
        window = self.main_window
        opener = window.opener
        if self.task is not None:
            return "busy", "Converting…"
        if not window.inputs.source_field.path():
            return "info", "Open a checkpoint to convert it."
        if opener.task is not None or (opener.wanted and window.libraries is None):
            waiting = " (waiting for torch and transformers)" if window.libraries is None else ""
            return "info", f"Opening the checkpoint…{waiting}"
        if window.prepared is None:
            if window.base_model_wanted and not window.inputs.base_model_field.path():
                return "warning", "Choose the base model folder to open this checkpoint."
            return "error", "The checkpoint could not be opened: see the message above."
        plan = window.prepared.plan
        if not plan.ok:
            lines = plan.problem_lines()
            first = lines[0] if lines else "config conflicts"
            more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
            count = len(plan.problems()) + len(plan.config_conflicts)
            return "error", (f"Convert is disabled: {count} problem(s) — {html.escape(first)}{more} · "
                             "<a href='#problems'>show them</a>")
        if not window.inputs.output_field.path():
            return "warning", "Choose an output folder to convert."
        return "", ""

    def update_state(self, cancellable: bool) -> None:
        """Convert enabled or why not; Cancel enabled while `cancellable` (a conversion or an opening runs)."""
        window = self.main_window
        kind, reason = self.blocker()
        can_convert = not kind
        self.convert_button.setEnabled(can_convert)
        self.convert_action.setEnabled(can_convert)
        if can_convert:
            mapped = window.prepared.plan.mapped()
            nbytes = sum(row.nbytes for row in mapped)
            self.reason.setText(html.escape(f"Ready: {len(mapped)} tensors ({human_bytes(nbytes)}) → {window.inputs.output_field.path()}"))
            self.reason.setStyleSheet("")
            self.reason.setToolTip("")
            self.convert_button.setToolTip("Write the converted transformers folder (Ctrl+Enter)")
        else:
            self.reason.setText(reason)
            colour = theme.message_colour(kind, self.palette()).name() if kind in theme.MESSAGE_COLOURS else None
            self.reason.setStyleSheet(f"color: {colour}" if colour else "")
            tip = reason.split(" · <a", 1)[0]
            if window.prepared is not None and not window.prepared.plan.ok:
                tip = "Convert is disabled until these are fixed:\n" + "\n".join(window.prepared.plan.problem_lines())
            self.reason.setToolTip(tip)
            self.convert_button.setToolTip(tip)
        converting = self.task is not None
        self.cancel_button.setEnabled(cancellable and not (converting and self.task.cancelled))
        self.cancel_action.setEnabled(self.cancel_button.isEnabled())
