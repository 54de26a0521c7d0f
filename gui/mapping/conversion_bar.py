"""The conversion bar at the bottom of the window, and the conversion it runs.

Left to right: why Convert is disabled (or what it will write), the progress with tensors and
bytes, the time left, Cancel and Convert. Above them, before anything is written, a warning when
rows the recipe refused were dropped on purpose: the converted model then computes something else.
The conversion runs on a worker; the bar shows its progress and, at the end, the window's message
bar says what was written.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import BadInput, Cancelled, OutputNotEmpty, PlanProblems
from ...core.planning.plan import Plan, Status, collapse_indices
from ...core.storage.hashing import SOURCE_CHANGED
from ..shared import dialogs, theme
from ..shared.elided_progress_bar import ElidedProgressBar
from ..shared.formatting import human_bytes, human_seconds, time_left
from ..workspace import workers
from ..workspace.workspace import Workspace

ACCEPTED_DIFFERENCE = "accepted difference"  # in the reason of a refused row the user dropped on purpose
WARNED_KEYS = 4  # collapsed keys named in the warning; the rest are counted
FIRST_PROBLEM_CHARS = 110  # of the first problem beside Convert; every problem is listed above the table
REASON_SLACK = 8  # pixels the reason's fitted line keeps free, for the rich text's rounding
LEAST_FITTED_CHARS = 12  # room for fewer characters of a fitted part than this: it is left out


def accepted_differences(plan: Plan) -> list:
    """Rows the recipe refused (transformers cannot compute them) that the user dropped anyway."""
    return [row for row in plan.rows if row.status is Status.DROPPED and ACCEPTED_DIFFERENCE in row.reason]


def difference_warning(plan: Plan) -> tuple[str, str]:
    """The warning before Convert, and its tooltip (why each is refused), or ("", "")."""
    rows = accepted_differences(plan)
    if not rows:
        return "", ""
    keys = collapse_indices(row.source_key for row in rows)
    named = ", ".join(keys[:WARNED_KEYS]) + (f" and {len(keys) - WARNED_KEYS} more" if len(keys) > WARNED_KEYS else "")
    reasons = dict.fromkeys(row.reason.split(f"({ACCEPTED_DIFFERENCE}: ", 1)[-1].removesuffix(")") for row in rows)
    return (f"Dropping these rows changes what the model computes: {named}. The converted model will not match the "
            "original on audio.",
            "What transformers cannot compute, and is left out:\n" + "\n".join(f"• {reason}" for reason in reasons))


def progress_texts(event) -> list[str]:
    """What the bar says of a conversion's progress, then shorter forms of it for a narrow bar: the
    stage and how far it is stay, the counts go first."""
    counted = bool(event.bytes_total or event.items_total)
    percent = f" — {event.fraction:.0%}" if counted else ""
    tensors = [f"{event.items_done}/{event.items_total} tensors"] if event.items_total else []
    nbytes = [f"{human_bytes(event.bytes_done)} / {human_bytes(event.bytes_total)}"] if event.bytes_total else []
    forms = [" · ".join([event.stage, *tensors, *nbytes]) + percent, " · ".join([event.stage, *tensors]) + percent,
             event.stage + percent]
    return list(dict.fromkeys(forms))


class ConversionBar(QFrame):
    reportRequested = Signal()  # "Show report" in the message of a finished conversion
    sourceChanged = Signal(str)  # the checkpoint changed while it was converted: what was refused, in a sentence

    def __init__(self, workspace: Workspace, convert_action: QAction, cancel_action: QAction,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("conversionBar")
        self.workspace = workspace
        self.slot = workspace.converting
        self.convert_action = convert_action
        self.cancel_action = cancel_action
        self.last_stage = ""
        self.converted_plan = None  # the plan of the conversion the bar says is done, while it says so
        self._announced = False  # the message bar still shows that the conversion was written

        column = QVBoxLayout(self)
        column.setContentsMargins(0, 2, 0, 0)
        column.setSpacing(4)
        self.warning = QFrame(self)
        self.warning.setObjectName("differenceWarning")
        self.warning_icon = QLabel(self.warning)
        self.warning_text = QLabel(self.warning)
        self.warning_text.setObjectName("differenceWarningText")
        self.warning_text.setWordWrap(True)
        self.warning_text.setTextFormat(Qt.TextFormat.PlainText)
        self.warning_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        warning_row = QHBoxLayout(self.warning)
        warning_row.setContentsMargins(8, 4, 8, 4)
        warning_row.addWidget(self.warning_icon, 0, Qt.AlignmentFlag.AlignTop)
        warning_row.addWidget(self.warning_text, 1)
        self.warning.hide()
        column.addWidget(self.warning)
        row = QHBoxLayout()
        row.setSpacing(8)
        column.addLayout(row)
        self.reason = QLabel(self)
        self.reason.setObjectName("convertReason")
        # One line, fitted to the room left of the progress bar (`_fitted`): the bar never grows taller.
        self.reason.setWordWrap(False)
        self.reason.setTextFormat(Qt.TextFormat.RichText)
        self.reason.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.reason.installEventFilter(self)
        self.progress_bar = ElidedProgressBar(self)
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

        workspace.changed.connect(self.update_state)
        workspace.checkpointChanged.connect(self._forget_progress)
        workspace.planChanged.connect(self._plan_changed)
        workspace.messages.shown.connect(self._message_replaced)
        workspace.messages.hidden.connect(self._message_replaced)

    def busy(self) -> bool:
        return self.slot.busy()

    def set_icons(self) -> None:
        self.convert_button.setIcon(self.convert_action.icon())
        self.cancel_button.setIcon(self.cancel_action.icon())

    # -- running --------------------------------------------------------------------------------------

    def convert(self, force: bool = False) -> None:
        workspace = self.workspace
        if workspace.prepared is None or self.slot.busy() or (not self.convert_action.isEnabled() and not force):
            return
        out = workspace.output
        prepared = workspace.prepared
        workspace.messages.hide()
        self.last_stage = ""
        self.converted_plan = None
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting…")
        self.eta_label.clear()
        workspace.messages.log(f"Converting {prepared.source.name} → {out}" + (" (replacing it)" if force else ""))
        task = workers.Task("convert", workers.convert_job, prepared, out, force=bool(force), with_progress=True)
        self.slot.start(task, self._succeeded, failed=self._failed, progressed=self._progress)
        workspace.set_result(None)

    def cancel(self) -> bool:
        """Ask a running conversion to stop; False when there is none to stop."""
        if not self.slot.cancel():
            return False
        self.progress_bar.setFormat("Cancelling…")
        self.workspace.messages.log("Cancelling the conversion…")
        self.update_state()
        return True

    def open_output_folder(self) -> None:
        result = self.workspace.result
        folder = str(result.output if result is not None else Path(self.workspace.output).expanduser())
        if QDesktopServices.openUrl(QUrl.fromLocalFile(folder)):
            return
        # No file manager took it (none installed, a remote session): say where it is, to copy.
        self.workspace.messages.show(
            "info", f"No file manager opened the folder. It is here:\n{folder}",
            [("Copy path", lambda: QGuiApplication.clipboard().setText(folder), "copyPathButton")])

    def _message_replaced(self, *_) -> None:
        self._announced = False

    def _plan_changed(self) -> None:
        """The plan shown is no longer the one converted (an undo brought a problem back, a fix changed
        it): "Done" and "Converted …" would describe another plan, so they go. The folder stays written,
        and the report still says what it holds."""
        prepared = self.workspace.prepared
        if self.converted_plan is None or (prepared is not None and prepared.plan == self.converted_plan):
            return
        announced = self._announced
        self._forget_progress()
        if announced:
            self.workspace.messages.hide()

    def _forget_progress(self) -> None:
        """Another checkpoint: what the bar said about the last one's conversion is gone."""
        self.converted_plan = None
        self.last_stage = ""
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        self.eta_label.clear()

    def _progress(self, task, event) -> None:
        log = self.workspace.messages.log
        if event.stage != self.last_stage:
            self.last_stage = event.stage
            log(f"  {event.stage}")
        if event.message:
            log(f"  {event.message}")
        if task.cancelled:
            return
        self.progress_bar.setValue(int(event.fraction * 1000))
        self.progress_bar.set_text(*progress_texts(event))
        self.eta_label.setText(time_left(event.eta) if event.eta is not None and event.fraction < 1 else "")

    def _succeeded(self, task, result) -> None:
        workspace = self.workspace
        prepared = task.args[0]
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat(f"Done in {human_seconds(result.seconds)}")
        self.eta_label.clear()
        weights = result.weights
        workspace.messages.log(f"Converted in {result.seconds:.2f} s: {', '.join(weights.files)} "
                               f"({human_bytes(weights.total_bytes)}) → {result.output}")
        workspace.set_result(result)
        workspace.messages.show(
            "success",
            f"Converted {prepared.source.name} in {human_seconds(result.seconds)} → {result.output}\n"
            f"{len(prepared.plan.mapped())} tensors, {human_bytes(weights.total_bytes)} in {', '.join(weights.files)}; "
            f"load it with {prepared.plan.target_class}.from_pretrained(folder).",
            [("Open folder", self.open_output_folder, "openFolderButton"),
             ("Show report", lambda: self.reportRequested.emit(), "showReportButton")],
        )
        self.converted_plan = prepared.plan
        self._announced = True

    def _failed(self, task, error) -> bool:
        messages = self.workspace.messages
        self.eta_label.clear()
        self.progress_bar.setValue(0)
        if isinstance(error, OutputNotEmpty):
            self.progress_bar.setFormat("")
            if dialogs.ask_replace_folder(self, str(error.path)):
                self.convert(force=True)
            else:
                messages.error(f"Not converted: {error.path} is not empty. Choose another output folder, "
                               "or convert again and agree to replace it.", kind="warning")
            return True
        if isinstance(error, Cancelled):
            self.progress_bar.setFormat("Cancelled")
            messages.show("info", "Conversion cancelled; nothing was written.")
            return False  # and a line in the log, as for every cancelled task
        if isinstance(error, PlanProblems):
            self.progress_bar.setFormat("")
            messages.error(f"{error}: " + "; ".join(error.plan.problem_lines()[:5]))
            return True
        if isinstance(error, BadInput) and SOURCE_CHANGED in error.message:
            # What was read of it when it opened is stale: the window opens it again, and says why.
            self.progress_bar.setFormat("Failed")
            self.sourceChanged.emit(str(error))
            return True
        self.progress_bar.setFormat("Failed")
        return False  # said the way every failure is

    # -- state → widgets ----------------------------------------------------------------------------

    def blocker(self) -> tuple[str, str]:
        """Why Convert is disabled (kind, sentence), or ("", "") when it is not."""
        workspace = self.workspace
        if self.slot.busy():
            return "busy", "Converting…"
        if not workspace.source:
            return "info", "Open a checkpoint to convert it."
        if workspace.is_opening():
            waiting = " (waiting for torch and transformers)" if workspace.waiting_for_libraries else ""
            return "info", f"Opening the checkpoint…{waiting}"
        if workspace.prepared is None:
            if workspace.base_model_wanted and not workspace.base_model:
                return "warning", "Choose the base model (a folder or its original checkpoint) to open this checkpoint."
            return "error", "The checkpoint could not be opened: see the message above."
        plan = workspace.prepared.plan
        if not plan.ok:
            lines = plan.problem_lines()
            first = lines[0] if lines else "config conflicts"
            if len(first) > FIRST_PROBLEM_CHARS:
                first = first[: FIRST_PROBLEM_CHARS - 1] + "…"
            more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
            count = len(plan.problems()) + len(plan.config_conflicts)
            before, after = f"Convert is disabled: {count} problem(s) — ", f"{more} · show them"
            first = self._fitted(first, before + after, Qt.TextElideMode.ElideRight)  # one line, whatever the width
            said = before + first + more if first else f"Convert is disabled: {count} problem(s)"
            return "error", f"{html.escape(said)} · <a href='#problems'>show them</a>"
        if not workspace.output:
            return "warning", "Choose an output folder to convert."
        return "", ""

    def update_state(self) -> None:
        """Convert enabled or why not; Cancel enabled while a conversion or an opening runs."""
        workspace = self.workspace
        kind, reason = self.blocker()
        can_convert = not kind
        self.convert_button.setEnabled(can_convert)
        self.convert_action.setEnabled(can_convert)
        if can_convert:
            mapped = workspace.prepared.plan.mapped()
            nbytes = sum(row.nbytes for row in mapped)
            ready = f"Ready: {len(mapped)} tensors ({human_bytes(nbytes)}) → "
            output = self._fitted(workspace.output, ready, Qt.TextElideMode.ElideMiddle)
            self.reason.setText(html.escape(ready + output if output else ready.removesuffix(" → ")))
            self.reason.setStyleSheet("")
            self.reason.setToolTip(ready + workspace.output if output != workspace.output else "")
            self.convert_button.setToolTip("Write the converted transformers folder (Ctrl+Enter)")
        else:
            tip = reason.split(" · <a", 1)[0]
            self.reason.setText(reason if "<a" in reason else html.escape(self._fitted(reason, "",
                                                                                        Qt.TextElideMode.ElideRight)))
            colour = theme.message_colour(kind, self.palette()).name() if kind in theme.MESSAGE_COLOURS else None
            self.reason.setStyleSheet(f"color: {colour}" if colour else "")
            if workspace.prepared is not None and not workspace.prepared.plan.ok:
                tip = "Convert is disabled until these are fixed:\n" + "\n".join(workspace.prepared.plan.problem_lines())
            self.reason.setToolTip(tip)
            self.convert_button.setToolTip(tip)
        task = self.slot.task
        self.cancel_button.setEnabled((task is not None and not task.cancelled) or workspace.is_opening())
        # An empty bar says nothing: its room goes to the reason until a conversion has something to show.
        self.progress_bar.setVisible(bool(self.progress_bar.format()) or self.slot.busy())
        self._show_warning()

    def _fitted(self, text: str, beside: str, mode: Qt.TextElideMode) -> str:
        """`text`, ending in (or, for a path, cut in the middle by) "…" where it would not fit on the
        reason's one line beside `beside`; the whole of it is in the tooltip."""
        metrics = self.reason.fontMetrics()
        room = self.reason.contentsRect().width() - metrics.horizontalAdvance(beside) - REASON_SLACK
        if beside and room < metrics.horizontalAdvance("x" * LEAST_FITTED_CHARS):
            return ""  # too little of it would show to be read: the sentence goes without it
        return metrics.elidedText(text, mode, max(room, 0))

    def eventFilter(self, watched, event) -> bool:
        if watched is self.reason and event.type() == QEvent.Type.Resize and event.size().width() != event.oldSize().width():
            self.update_state()  # the reason fitted to its new width
        return False

    def _show_warning(self) -> None:
        prepared = self.workspace.prepared
        text, tip = difference_warning(prepared.plan) if prepared is not None else ("", "")
        self.warning_text.setText(text)
        self.warning.setToolTip(tip)
        self.warning.setVisible(bool(text))
        if text:
            colour = theme.message_colour("warning", self.palette())
            tint = f"rgba({colour.red()}, {colour.green()}, {colour.blue()}, {40 if theme.is_dark(self.palette()) else 24})"
            sheet = f"QFrame#differenceWarning {{ background: {tint}; border: 1px solid {colour.name()}; border-radius: 4px; }}"
            if sheet != self.warning.styleSheet():
                self.warning.setStyleSheet(sheet)
            self.warning_icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(16, 16))
