"""The Audition tab: hear a clip, run the original and the converted model on it, and see side by
side whether the converted model does what the original did.

It is a face of `speechport compare`: the clip is read as `compare` reads it (and played as exactly
that 16 kHz signal) whatever its length; a comparison covers the part of it shaded on the waveform —
all of it when it fits the comparison's limit, else the first `DEFAULT_MAX_SECONDS`, and the user
may drag that part or its edges. The comparison runs in the `CompareBar`, and the page shows the
`Comparison` it returns — the verdict and numbers on the right (`ComparisonView`), the plots along
the clip's time axis or the clip's one answer on the left (`TimelineView`) — and exports it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...core.proof.audio import DEFAULT_MAX_SECONDS
from ..shared import dialogs
from ..shared.widgets import local_paths
from ..workspace import workers
from ..workspace.workspace import Workspace
from . import recording
from .clip_chooser import ClipChooser
from .compare_bar import COMPARE_KEYS, CompareBar, Compared
from .comparison_export import export_record, suggested_name, write_json
from .comparison_view import ComparisonView
from .modes import MODE_KEYS
from .plain_words import seconds_span
from .testset_view import TestsetView
from .timeline_view import TimelineView
from .transport_bar import TransportBar
from .waveform_plot import MODEL_RATE

JSON_FILTER = "JSON (*.json)"
PNG_FILTER = "PNG image (*.png)"


class AuditionPage(QWidget):
    pathsDropped = Signal(list)  # local paths dropped on the page: the window puts each where it belongs

    def __init__(self, workspace: Workspace, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("auditionPage")
        self.setAcceptDrops(True)
        self.workspace = workspace
        self.messages = workspace.messages
        self.recording = None  # recording.Recording: the clip being auditioned, drawn and played
        # The clip is the user's, not the checkpoint's: it stays when another checkpoint is opened.
        self.clip_slot = workspace.task_slot("Reading the clip", doing="reading the clip", keep_on_reset=True)

        # Left: the clip, its transport, the plots along its time axis.
        left = QWidget(self)
        self.chooser = ClipChooser(settings, left)
        self.transport = TransportBar(left)
        self.player = self.transport.player
        self.timeline = TimelineView(left)
        # Every plot keeps a height it can be read at; a window too short for all of them scrolls
        # this column (never squeezes the plots, nor grows taller than the screen).
        timeline_scroll = QScrollArea(left)
        timeline_scroll.setObjectName("timelineScroll")
        timeline_scroll.setWidgetResizable(True)
        timeline_scroll.setFrameShape(QFrame.Shape.NoFrame)
        timeline_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        timeline_scroll.setWidget(self.timeline)
        self.timeline_scroll = timeline_scroll
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 4, 0)
        left_layout.setSpacing(4)
        # The mode switch leads the first row of whichever view is shown: no row of its own.
        self.mode_switch = self._mode_switch()
        self.clip_row = QHBoxLayout()
        self.clip_row.setSpacing(6)
        self.clip_row.addWidget(self.mode_switch)
        self.clip_row.addWidget(self.chooser, 1)
        left_layout.addLayout(self.clip_row)
        left_layout.addWidget(self.transport)
        left_layout.addWidget(timeline_scroll, 1)

        # Right: what to compare against and Compare, then what the comparison found.
        right = QWidget(self)
        self.compare_bar = CompareBar(workspace, settings, lambda: self.clip, self.clip_slot.busy, self.segment, right)
        self.view = ComparisonView(right)
        scroll = QScrollArea(right)
        scroll.setObjectName("comparisonScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.view)
        self.export_json_button = QPushButton("Export JSON…", right)
        self.export_json_button.setObjectName("exportJsonButton")
        self.export_json_button.setToolTip("Save the comparison as a JSON file, in the form the command line's compare "
                                           "writes, with the clip's path")
        self.export_png_button = QPushButton("Export PNG…", right)
        self.export_png_button.setObjectName("exportPngButton")
        self.export_png_button.setToolTip("Save a picture of this view: the plots and what the comparison found")
        export_row = QHBoxLayout()
        export_row.addStretch(1)
        export_row.addWidget(self.export_json_button)
        export_row.addWidget(self.export_png_button)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 0, 0, 0)
        right_layout.setSpacing(4)
        right_layout.addWidget(self.compare_bar)
        right_layout.addWidget(scroll, 1)
        right_layout.addLayout(export_row)

        self.content = QSplitter(Qt.Orientation.Horizontal, self)
        self.content.setObjectName("auditionSplitter")
        self.content.addWidget(left)
        self.content.addWidget(right)
        self.content.setChildrenCollapsible(False)
        self.content.setStretchFactor(0, 3)
        self.content.setStretchFactor(1, 2)
        self.content.setSizes([750, 510])
        # One clip, or a whole test set (compare --dataset) with the same models and tolerance.
        self.testset = TestsetView(workspace, settings, self.compare_bar.tolerance, self.compare_bar.backend, self)
        self.stack = QStackedWidget(self)
        self.stack.setObjectName("auditionStack")
        self.stack.addWidget(self.content)
        self.stack.addWidget(self.testset)
        self._pending_segment = None  # (path, (start, end)): the part of a test-set clip to choose once it is read
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.stack)

        self.chooser.clipChosen.connect(lambda _path: self._load_clip())
        self.chooser.channelsChanged.connect(lambda _policy: self._load_clip())
        self.transport.playheadMoved.connect(self.timeline.waveform.set_playhead)
        self.timeline.waveform.segmentChanged.connect(lambda _start, _end: self.compare_bar.update_state())
        self.transport.failed.connect(lambda text: self.messages.error(text, kind="warning"))
        self.compare_bar.started.connect(self._comparison_started)
        self.compare_bar.finished.connect(self._comparison_finished)
        self.compare_bar.stopped.connect(self.view.clear)
        self.view.stageChosen.connect(self.timeline.show_stage)
        self.export_json_button.clicked.connect(self.choose_export_json)
        self.export_png_button.clicked.connect(self.choose_export_png)
        self.testset.clipChosen.connect(self.open_clip)
        self.testset.slot.busyChanged.connect(lambda _busy: self.update_state())
        workspace.changed.connect(self.update_state)
        workspace.checkpointChanged.connect(self._forget_comparison)
        # Plays and pauses wherever the focus is on this page.
        toggle = QShortcut(QKeySequence("Ctrl+Space"), self, self.transport.toggle)
        toggle.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        for keys in COMPARE_KEYS:
            shortcut = QShortcut(QKeySequence(keys), self, self.compare)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        for keys, testset in MODE_KEYS:
            shortcut = QShortcut(QKeySequence(keys), self, lambda chosen=testset: self.set_mode(chosen))
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.restyle()
        self.update_state()

    # == one clip or a test set ====================================================================

    def _mode_switch(self) -> QWidget:
        switch = QWidget(self)
        switch.setObjectName("auditionMode")
        row = QHBoxLayout(switch)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.mode_group = QButtonGroup(switch)
        self.mode_buttons = {}
        for testset, (text, name, tip) in enumerate((
                ("One clip", "auditionModeClip", f"Hear and compare one clip ({MODE_KEYS[0][0]})"),
                ("Test set", "auditionModeTestset", f"Compare on every clip of a test set ({MODE_KEYS[1][0]})"))):
            button = QToolButton(switch)
            button.setText(text)
            button.setObjectName(name)
            button.setCheckable(True)
            button.setToolTip(tip)
            button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            button.setAccessibleName(f"Audition mode: {text}")
            self.mode_group.addButton(button, testset)
            self.mode_buttons[bool(testset)] = button
            row.addWidget(button)
        self.mode_buttons[False].setChecked(True)
        self.mode_group.idClicked.connect(lambda index: self.set_mode(bool(index)))
        return switch

    def set_mode(self, testset: bool) -> None:
        """Show the test-set view (True) or the clip view (False)."""
        self.mode_buttons[testset].setChecked(True)
        if testset:
            self.testset.set_row.insertWidget(0, self.mode_switch)
        else:
            self.clip_row.insertWidget(0, self.mode_switch)
        self.stack.setCurrentWidget(self.testset if testset else self.content)

    def testset_mode(self) -> bool:
        return self.stack.currentWidget() is self.testset

    def open_clip(self, path: str, segment: tuple[float, float] | None = None) -> None:
        """A clip of the test set in the clip view: read, drawn, and its part chosen when it was one."""
        self.set_mode(False)
        self._pending_segment = (str(path), segment) if segment is not None else None
        self.choose_clip(path)

    # == the clip =================================================================================

    def choose_clip(self, path: str | Path) -> None:
        """Audition a clip, as choosing it in the file dialog does."""
        self.chooser.choose(path)

    @property
    def clip_task(self) -> workers.Task | None:
        """The clip being read, or None."""
        return self.clip_slot.task

    @property
    def clip(self):
        """The core.audio.Clip auditioned (the whole clip at 16 kHz mono), or None."""
        return self.recording.clip if self.recording is not None else None

    @property
    def comparison(self):
        """The core.comparison.Comparison shown, or None."""
        return self.workspace.comparison

    @property
    def compared(self) -> Compared | None:
        return self.workspace.compared

    def segment(self) -> tuple[float, float] | None:
        """The part of the clip Compare compares, (start, end) in seconds; None when that is the whole
        clip as it was read (and checked)."""
        if self.recording is None:
            return None
        start, end = self.timeline.waveform.segment()
        half_sample = 0.5 / MODEL_RATE
        if self.recording.comparable and start <= half_sample and end >= self.clip.seconds - half_sample:
            return None
        return start, end

    def choose_segment(self, start: float, end: float) -> None:
        """Choose the part of the clip to compare, as dragging the shaded region does."""
        self.timeline.waveform.set_segment(start, end)

    def _load_clip(self) -> None:
        path = self.chooser.path()
        self.recording = None
        self.transport.set_clip(None)
        self._forget_comparison()
        if not path:
            self.clip_slot.drop()
            self.timeline.clear_clip()
            self.update_state()
            return
        task = workers.Task("read clip", recording.load_recording_job, path, channels=self.chooser.channel_policy(),
                            max_seconds=DEFAULT_MAX_SECONDS)
        self.transport.clip_info.setText("reading…")
        self.clip_slot.start(task, self._clip_loaded, failed=self._clip_failed)  # a clip still being read is replaced
        self.update_state()

    def _clip_loaded(self, task, recording) -> None:
        self.recording = recording
        clip = recording.clip
        self.timeline.show_clip(recording.peaks)
        resampled = "" if clip.source_rate == MODEL_RATE else f", resampled from {clip.source_rate / 1000:g} kHz"
        channels = "" if clip.source_channels == 1 else (
            f", {'first' if clip.channel_policy == 'first' else 'mix'} of {clip.source_channels} channels")
        self.transport.set_clip(recording.pcm, clip.seconds, f"{clip.seconds:.2f} s · 16 kHz mono{resampled}{channels}")
        self.transport.clip_info.set_extra_tooltip(str(clip.path))
        self.messages.log(f"Clip {clip.path.name}: {clip.seconds:.2f} s at 16 kHz mono (from {clip.source_rate} Hz, "
                          f"{clip.source_channels} channel(s))")
        if clip.seconds > DEFAULT_MAX_SECONDS:
            self.messages.log(f"A comparison covers at most {DEFAULT_MAX_SECONDS:g} s: the first {DEFAULT_MAX_SECONDS:g} s "
                              "are chosen; drag the shaded part of the waveform, or its edges, to compare another part.")
        if self._pending_segment is not None and self._pending_segment[0] == str(clip.path):
            self.choose_segment(*self._pending_segment[1])  # the part of it the test set compared
        self._pending_segment = None
        self.update_state()

    def _clip_failed(self, task, error) -> bool:
        self.timeline.clear_clip()
        self.transport.clip_info.setText("not read")
        self.update_state()
        return False  # said the way every failure is

    # == the comparison ===========================================================================

    def compare(self) -> None:
        self.compare_bar.compare()

    def focus_first_control(self) -> None:
        """Where the keyboard starts on this page: Compare when it can run, else what it waits for
        (the clip, then the converted folder)."""
        bar = self.compare_bar
        if bar.compare_button.isEnabled():
            target = bar.compare_button
        elif self.clip is not None and not self.workspace.converted and bar.converted_field.isEnabled():
            target = bar.converted_field.edit
        else:
            target = self.chooser.field.edit
        target.setFocus(Qt.FocusReason.TabFocusReason)

    def cancel_compare(self) -> bool:
        return self.compare_bar.cancel() or self.testset.cancel()

    def comparing(self) -> bool:
        return self.compare_bar.busy()

    def _comparison_started(self) -> None:
        # The plots keep their place (no relayout while the models run) but show nothing stale.
        self.timeline.clear_comparison(keep_layout=True)
        self.view.clear("Comparing…")

    def _comparison_finished(self, comparison, compared: Compared, sides) -> None:
        clip = compared.clip
        what = (f"{clip.path.name} ({clip.seconds:.2f} s)" if compared.segment is None else
                f"{clip.path.name} ({seconds_span(*compared.segment)} of {compared.clip_seconds:.2f} s)")
        subject = (f"{what} — original: {compared.source.name} "
                   f"({sides.detection.recipe.name}, {sides.original_name} implementation) · "
                   f"converted: {compared.converted.name} (transformers)")
        self.view.show_result(comparison.clips[0], comparison.tolerance, subject, comparison.fixes_used)
        # The verdict first; the plots in the next turn of the event loop, so neither holds up the window long.
        QTimer.singleShot(0, lambda: self._show_timeline(comparison))

    def _show_timeline(self, comparison) -> None:
        if comparison is not self.comparison:
            return  # another clip or comparison came first
        self.timeline.show_comparison(comparison.clips[0], comparison.tolerance, self.compared.segment)
        if not self.timeline.one_answer_per_clip():
            self.view.select_stage(self.timeline.stage)

    def _forget_comparison(self) -> None:
        """A new clip or another checkpoint: the verdict and the plots of the last comparison go."""
        if self.workspace.comparison is not None:
            self.workspace.set_comparison(None)
        self.view.clear()
        self.timeline.clear_comparison()

    # == export ===================================================================================

    def export_json(self, path: str | Path) -> Path:
        try:
            written = write_json(path, export_record(self.comparison, self.compared))
        except OSError as exc:
            self.messages.error(f"{path}: cannot write the comparison ({exc.strerror or exc})")
            raise
        self.messages.log(f"Exported the comparison to {written}")
        return written

    def export_png(self, path: str | Path) -> Path:
        """A picture of the plots and of what the comparison found."""
        path = Path(path)
        if not self.content.grab().save(str(path), "PNG"):
            self.messages.error(f"{path}: cannot write the picture")
            raise OSError(f"{path}: cannot write the picture")
        self.messages.log(f"Exported a picture of the comparison to {path}")
        return path

    def choose_export_json(self) -> None:
        self._choose_export("Export the comparison", ".json", JSON_FILTER, self.export_json)

    def choose_export_png(self) -> None:
        self._choose_export("Export a picture of the comparison", ".png", PNG_FILTER, self.export_png)

    def _choose_export(self, title: str, suffix: str, filters: str, export) -> None:
        if self.comparison is None:
            return
        path, _ = dialogs.save_file_name(self, title, suggested_name(self.compared, suffix), filters)
        if path:
            try:
                export(path)
            except OSError:
                pass  # said in the message bar

    # == state → widgets ==========================================================================

    def update_state(self) -> None:
        self.compare_bar.update_state()
        self.testset.update_state()
        self.chooser.setEnabled(not self.compare_bar.busy())
        has_result = self.comparison is not None
        self.export_json_button.setEnabled(has_result)
        self.export_png_button.setEnabled(has_result)

    def restyle(self) -> None:
        self.timeline.restyle(QGuiApplication.palette())
        self.view.restyle()
        self.transport.restyle()
        self.compare_bar.restyle()
        self.testset.restyle(QGuiApplication.palette())

    def shutdown(self) -> None:
        self.player.stop()
        self.testset.shutdown()

    def dragEnterEvent(self, event) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = local_paths(event.mimeData())
        if not paths:
            return
        event.acceptProposedAction()
        self.pathsDropped.emit(paths)  # a clip comes back here; anything else goes to its field
