"""The column of plots that share the clip's time axis: the waveform with its playhead and the part
to compare, then, once compared, the per-frame cosine similarity, the heatmaps of one compared
tensor (original, converted, |difference|) and, for diarization, each speaker's activity in both
models — or, for a head that gives one answer per clip, that answer (`ClipAnswerView`) instead of
plots over time.

Zooming or panning one plot moves them all; the colour bars sit in a column of their own so the
time axes line up. A comparison of a segment of the clip is drawn where that segment lies in it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from ..shared.elided_label import ElidedLabel
from ..shared.formatting import short_number
from ..shared.plots import SIDE_WIDTH, line_colour, link_time_axes
from . import plain_words
from .clip_answer_view import ClipAnswerView
from .comparison_plots import (
    ActivityPlot,
    ColourBar,
    CosinePlot,
    HeatmapPlot,
    as_frames,
    bulk_magnitude,
    colourmaps,
)
from .transcript_plot import TranscriptPlot
from .waveform_peaks import Peaks
from .waveform_plot import WaveformPlot

OUTPUT = "output"  # the compared output, as opposed to one of the stages leading to it
MIN_HEATMAP_FEATURES = 8  # fewer rows than this (e.g. 2 speakers' logits) says little as an image


class TimelineView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("timelineView")
        self.comparison = None  # core.comparison.ClipComparison shown, if any
        self.tolerance = 0.0
        self.clip_seconds = 0.0
        self.start = 0.0  # where in the clip the comparison shown begins, in seconds
        self.stage = OUTPUT

        self.waveform = WaveformPlot(self)
        self.cosine = CosinePlot(self)
        # One line each, however narrow the column (all of it in the tooltip): the column's height
        # never depends on its width, so it scrolls only when the window is too short for it.
        self.caption = ElidedLabel(parent=self)
        self.caption.setObjectName("heatmapCaption")
        self.original = HeatmapPlot("originalHeatmap", "original", self)
        self.converted = HeatmapPlot("convertedHeatmap", "converted", self)
        self.difference = HeatmapPlot("differenceHeatmap", "|diff|", self)
        self.difference.setToolTip(plain_words.DIFF_HEATMAP)
        signed, difference = colourmaps(self.palette())
        self.signed_bar = ColourBar("signedColourBar", self)
        self.signed_bar.attach([self.original.image, self.converted.image], signed)
        self.difference_bar = ColourBar("differenceColourBar", self)
        self.difference_bar.attach([self.difference.image], difference)
        self.difference_bar.setToolTip(plain_words.DIFF_HEATMAP)
        self.activity = ActivityPlot(self)
        self.activity_caption = QLabel(self)
        self.activity_caption.setObjectName("activityCaption")
        self.activity_caption.setTextFormat(Qt.TextFormat.RichText)
        self.activity_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.activity_caption.setToolTip("A speaker is active where sigmoid(frame logit) > 0.5, i.e. where the "
                                         "logit is positive, as S3PRL trains diarization")
        self.answer = ClipAnswerView(self)
        self.transcript = TranscriptPlot(self)
        self.hint = QLabel("Compare to see, along the clip, where the two models agree: the cosine similarity of "
                           "their outputs frame by frame, and heatmaps of what they compute. The shaded part of "
                           "the waveform is what is compared: drag it or its edges to choose another part.", self)
        self.hint.setObjectName("timelineHint")
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(2)
        grid.setVerticalSpacing(1)
        # Top to bottom: the clip; for diarization, what the head decides (who talks when); the
        # per-frame agreement; heatmaps of one compared tensor; or the one answer per clip.
        grid.addWidget(self.waveform, 0, 0)
        grid.addWidget(self.hint, 1, 0)
        # What a speech recognition model hears, under the waveform: in the hint's row, which shows only
        # before a comparison, as the transcripts only after one.
        grid.addWidget(self.transcript, 1, 0)
        grid.addWidget(self.activity_caption, 2, 0, 1, 2)
        grid.addWidget(self.activity, 3, 0)
        grid.addWidget(self.cosine, 4, 0)
        grid.addWidget(self.caption, 5, 0, 1, 2)
        grid.addWidget(self.original, 6, 0)
        grid.addWidget(self.converted, 7, 0)
        grid.addWidget(self.signed_bar, 6, 1, 2, 1)
        grid.addWidget(self.difference, 8, 0)
        grid.addWidget(self.difference_bar, 8, 1)
        grid.addWidget(self.answer, 9, 0, 1, 2)
        grid.setColumnMinimumWidth(1, SIDE_WIDTH)
        self.grid = grid
        self.rows = {self.waveform: 0, self.transcript: 1, self.activity: 3, self.cosine: 4, self.original: 6, self.converted: 7,
                     self.difference: 8}
        self.plots = [self.waveform, self.cosine, self.original, self.converted, self.difference, self.activity,
                      self.transcript]
        link_time_axes(self.plots)
        # (compared, activity, one answer, transcripts), as laid out
        self.layout_shown: tuple[bool, bool, bool, bool] | None = None
        self._show_comparison_rows(False)

    # -- the clip -----------------------------------------------------------------------------------

    def show_clip(self, peaks: Peaks) -> None:
        """A new clip: its waveform, the first part of it that a comparison covers chosen, nothing compared."""
        self.clip_seconds = peaks.seconds
        self.waveform.set_clip(peaks)
        self.clear_comparison()

    def clear_clip(self) -> None:
        self.clip_seconds = 0.0
        self.waveform.clear_clip()
        self.clear_comparison()

    # -- the comparison -----------------------------------------------------------------------------

    def show_comparison(self, comparison, tolerance: float, segment: tuple[float, float] | None = None) -> None:
        """Lay out one `core.comparison.ClipComparison` along the clip: of the whole clip, or of its
        `segment` (start, end in seconds), which is then brought into view."""
        self.comparison = comparison
        self.tolerance = tolerance
        start = self.start = segment[0] if segment is not None else 0.0
        if self.one_answer_per_clip():
            self._show_answer(comparison)
            self._show_comparison_rows(True, answer=True)
            return
        self.cosine.set_values(comparison.cosine_per_frame, comparison.frame_seconds, start)
        diarization = comparison.converted.extras.get("kind") == "sd"
        transcribed = getattr(comparison, "transcript_original", None) is not None
        if transcribed:
            self.transcript.set_transcripts(comparison, start)
        if diarization:
            self._caption_activity()
            self.activity.set_activity(as_frames(comparison.original.primary, comparison.frames),
                                       as_frames(comparison.converted.primary), comparison.frame_seconds, start,
                                       comparison.converted.extras.get("labels") or ())
        self._show_comparison_rows(True, activity=diarization, transcript=transcribed)
        self.show_stage(self.default_stage())
        if segment is not None:
            # A part of the clip: in view, where its plots are (zooming out shows the rest).
            self.waveform.getPlotItem().setXRange(*segment, padding=0)

    def one_answer_per_clip(self) -> bool:
        """The compared output is one vector for the whole clip (labels' scores, an embedding)."""
        return self.comparison is not None and self.comparison.original.primary.dim() <= 1

    def _show_answer(self, comparison) -> None:
        details = comparison.details or {}
        if "top5" in details:
            self.answer.show_labels(details["top5"])
        elif "verification_embedding_cosine" in details:
            self.answer.show_similarity(details["verification_embedding_cosine"], "speaker embeddings")
        else:
            self.answer.show_similarity(comparison.cosine_min, "outputs")

    def clear_comparison(self, keep_layout: bool = False) -> None:
        """Forget the comparison shown; `keep_layout` (a comparison starts) leaves its rows in place,
        empty. The column is laid out again only once the models are done: a relayout repaints every
        plot, and would contend with the models' loading for the interpreter."""
        self.comparison = None
        for heatmap in (self.original, self.converted, self.difference):
            heatmap.clear_image()
        self.cosine.clear_values()
        self.transcript.clear_transcripts()
        self.answer.clear()
        if not keep_layout:
            self._show_comparison_rows(False)

    def stage_names(self) -> list[str]:
        """What the heatmaps can show: the output, then every stage both models report."""
        if self.comparison is None:
            return []
        theirs = {name for name, _ in self.comparison.converted.stages}
        return [OUTPUT] + [name for name, _ in self.comparison.original.stages if name in theirs]

    def default_stage(self) -> str:
        """Where the models start to disagree, when they do; else the output when it is hidden states
        over time, or the widest stage that is (for heads with one label per clip, or a few speakers'
        logits: the weighted hidden states)."""
        divergent = self.comparison.first_divergent_layer
        if divergent in self.stage_names():
            return divergent
        best, width = OUTPUT, 0
        for name in self.stage_names():
            original, _ = self._arrays(name)
            if original.shape[0] > 1 and original.shape[1] >= MIN_HEATMAP_FEATURES:
                if name == OUTPUT:
                    return OUTPUT
                if original.shape[1] > width:
                    best, width = name, original.shape[1]
        return best

    def show_stage(self, name: str) -> None:
        """Heatmaps of one compared tensor: both models on one colour scale, and their |difference|."""
        if self.comparison is None or name not in self.stage_names():
            return
        self.stage = name
        original, converted = self._arrays(name)
        frame_seconds = self.comparison.frame_seconds
        scale = max(bulk_magnitude(original), 1e-6)
        self.original.set_image(original, frame_seconds, self.start)
        self.signed_bar.set_levels(-scale, scale)
        what = "the output" if name == OUTPUT else name
        frames, features = original.shape
        self.caption.setText(f"Heatmaps of {what} ({frames} frame{'s' if frames != 1 else ''} × {features})")
        if converted.shape[1:] == original.shape[1:]:
            self.converted.set_image(converted, frame_seconds, self.start)
            difference = np.abs(converted - original)
            largest = float(difference.max(initial=0.0))
            within = largest <= self.tolerance
            note = f"every |difference| ≤ {short_number(self.tolerance)}" if within else ""
            self.difference.set_image(difference, frame_seconds, self.start, note)
            # Up to the tolerance at least: differences within it stay pale.
            self.difference_bar.set_levels(0.0, max(largest, self.tolerance),
                                           [(self.tolerance, f"{short_number(self.tolerance)} tol.")])
        else:
            self.converted.clear_image()
            self.difference.clear_image()
            self.caption.setText(self.caption.text() + f": the converted model gives {list(converted.shape)}, "
                                 "so there is no difference to draw")
        self.caption.set_extra_tooltip("The original and converted values share one colour scale; |difference| runs "
                                       "from 0 to at least the tolerance, so what stays pale is within it. Click a "
                                       "stage in the list of stages to see its heatmaps.")

    def _arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        comparison = self.comparison
        if name == OUTPUT:
            # The core compares the converted output's first `frames` frames with the original's.
            original = as_frames(comparison.original.primary, comparison.frames)
            converted = as_frames(comparison.converted.primary, comparison.frames)
        else:
            original = as_frames(dict(comparison.original.stages)[name])
            converted = as_frames(dict(comparison.converted.stages)[name])
        frames = min(len(original), len(converted))
        return original[:frames], converted[:frames]

    # -- layout and looks ---------------------------------------------------------------------------

    def _show_comparison_rows(self, shown: bool, activity: bool = False, answer: bool = False,
                              transcript: bool = False) -> None:
        """Which rows the column shows: the waveform always; once compared, either the plots over time
        (with the speakers' activity for diarization) or the one answer per clip."""
        if (shown, activity, answer, transcript) == self.layout_shown:
            return  # laying the column out again costs a repaint of every plot
        self.layout_shown = (shown, activity, answer, transcript)
        over_time = shown and not answer
        for widget in (self.cosine, self.caption, self.original, self.converted, self.difference,
                       self.signed_bar, self.difference_bar):
            widget.setVisible(over_time)
        self.activity.setVisible(over_time and activity)
        self.activity_caption.setVisible(over_time and activity)
        self.transcript.setVisible(over_time and transcript)
        self.answer.setVisible(shown and answer)
        self.hint.setVisible(not shown)
        # The waveform carries the time values for the whole column (its shaded part is what is
        # compared, and its seconds are what Play plays); the plots below show the ticks alone.
        for plot in self.plots:
            plot.show_time_values(plot is self.waveform)
            shown_now = plot is self.waveform or (over_time and (plot is not self.activity or activity)
                                                  and (plot is not self.transcript or transcript))
            # A hidden plot's row gets no stretch: an empty row with one still takes its share of the height.
            self.grid.setRowStretch(self.rows[plot], (4 if plot is self.waveform else 3) if shown_now else 0)
        # the hint, in the room the plots will take; after a comparison, the transcripts' lanes
        self.grid.setRowStretch(1, 3 if not shown else (2 if over_time and transcript else 0))
        self.grid.setRowStretch(9, 12 if shown and answer else 0)

    def _caption_activity(self) -> None:
        original, converted = (line_colour(side, self.palette()).name() for side in ("original", "converted"))
        self.activity_caption.setText(
            f"When each speaker talks — upper lane: <b style='color:{original}'>original</b>, "
            f"lower lane: <b style='color:{converted}'>converted</b>")

    def restyle(self, palette: QPalette) -> None:
        if self.activity_caption.isVisible():
            self._caption_activity()
        for plot in self.plots:
            plot.restyle(palette)
        self.answer.restyle(palette)
        signed, difference = colourmaps(palette)
        self.signed_bar.set_colourmap(signed)
        self.difference_bar.set_colourmap(difference)
        for bar in (self.signed_bar, self.difference_bar):
            bar.restyle(palette)
            bar.set_levels(*bar.levels)
