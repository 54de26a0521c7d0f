"""The column of plots that share the clip's time axis: the waveform with its playhead, then, once
compared, the per-frame cosine similarity, the heatmaps of one compared tensor (original,
converted, |difference|) and, for diarization, each speaker's activity in both models.

Zooming or panning one plot moves them all; the colour bars sit in a column of their own so the
time axes line up.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from .comparison_plots import (
    ActivityPlot,
    ColourBar,
    CosinePlot,
    HeatmapPlot,
    as_frames,
    bulk_magnitude,
    colourmaps,
)
from .formatting import short_number
from .plots import SIDE_WIDTH, line_colour, link_time_axes
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
        self.stage = OUTPUT

        self.waveform = WaveformPlot(self)
        self.cosine = CosinePlot(self)
        self.caption = QLabel(self)
        self.caption.setObjectName("heatmapCaption")
        self.caption.setWordWrap(True)
        self.original = HeatmapPlot("originalHeatmap", "original", self)
        self.converted = HeatmapPlot("convertedHeatmap", "converted", self)
        self.difference = HeatmapPlot("differenceHeatmap", "|diff|", self)
        signed, difference = colourmaps(self.palette())
        self.signed_bar = ColourBar("signedColourBar", self)
        self.signed_bar.attach([self.original.image, self.converted.image], signed)
        self.difference_bar = ColourBar("differenceColourBar", self)
        self.difference_bar.attach([self.difference.image], difference)
        self.activity = ActivityPlot(self)
        self.activity_caption = QLabel(self)
        self.activity_caption.setObjectName("activityCaption")
        self.activity_caption.setTextFormat(Qt.TextFormat.RichText)
        self.hint = QLabel("Compare to see, along the clip, where the two models agree: the cosine similarity of "
                           "their outputs frame by frame, and heatmaps of what they compute.", self)
        self.hint.setObjectName("timelineHint")
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(2)
        grid.setVerticalSpacing(1)
        grid.addWidget(self.waveform, 0, 0)
        grid.addWidget(self.hint, 1, 0)
        grid.addWidget(self.cosine, 2, 0)
        grid.addWidget(self.caption, 3, 0, 1, 2)
        grid.addWidget(self.original, 4, 0)
        grid.addWidget(self.converted, 5, 0)
        grid.addWidget(self.signed_bar, 4, 1, 2, 1)
        grid.addWidget(self.difference, 6, 0)
        grid.addWidget(self.difference_bar, 6, 1)
        grid.addWidget(self.activity_caption, 7, 0, 1, 2)
        grid.addWidget(self.activity, 8, 0)
        grid.setColumnMinimumWidth(1, SIDE_WIDTH)
        self.grid = grid
        self.rows = {self.waveform: 0, self.cosine: 2, self.original: 4, self.converted: 5, self.difference: 6,
                     self.activity: 8}
        self.plots = [self.waveform, self.cosine, self.original, self.converted, self.difference, self.activity]
        link_time_axes(self.plots)
        self._show_comparison_rows(False)

    # -- the clip -----------------------------------------------------------------------------------

    def show_clip(self, waveform: np.ndarray, rate: int) -> None:
        self.clip_seconds = len(waveform) / rate
        self.waveform.set_clip(waveform, rate)
        self.clear_comparison()

    def clear_clip(self) -> None:
        self.clip_seconds = 0.0
        self.waveform.clear_clip()
        self.clear_comparison()

    # -- the comparison -----------------------------------------------------------------------------

    def show_comparison(self, comparison, tolerance: float, clip_seconds: float) -> None:
        """Lay out one `core.comparison.ClipComparison` along the clip."""
        self.comparison = comparison
        self.tolerance = tolerance
        self.clip_seconds = clip_seconds
        self.cosine.set_values(comparison.cosine_per_frame, comparison.frame_seconds, clip_seconds)
        diarization = comparison.converted.extras.get("kind") == "sd"
        if diarization:
            self._caption_activity()
            self.activity.set_activity(as_frames(comparison.original.primary, comparison.frames),
                                       as_frames(comparison.converted.primary), comparison.frame_seconds)
        self._show_comparison_rows(True, activity=diarization)
        self.show_stage(self.default_stage())

    def clear_comparison(self, keep_layout: bool = False) -> None:
        """Forget the comparison shown; `keep_layout` leaves its (now empty) plots in place."""
        self.comparison = None
        for heatmap in (self.original, self.converted, self.difference):
            heatmap.clear_image()
        self.cosine.clear_values()
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
        self.original.set_image(original, frame_seconds, self.clip_seconds)
        self.signed_bar.set_levels(-scale, scale)
        what = "the output" if name == OUTPUT else name
        frames, features = original.shape
        self.caption.setText(f"Heatmaps of {what} ({frames} frame{'s' if frames != 1 else ''} × {features})")
        if converted.shape[1:] == original.shape[1:]:
            self.converted.set_image(converted, frame_seconds, self.clip_seconds)
            difference = np.abs(converted - original)
            largest = float(difference.max(initial=0.0))
            within = largest <= self.tolerance
            note = f"every |difference| ≤ {short_number(self.tolerance)}" if within else ""
            self.difference.set_image(difference, frame_seconds, self.clip_seconds, note)
            # Up to the tolerance at least: differences within it stay pale.
            self.difference_bar.set_levels(0.0, max(largest, self.tolerance))
        else:
            self.converted.clear_image()
            self.difference.clear_image()
            self.caption.setText(self.caption.text() + f": the converted model gives {list(converted.shape)}, "
                                 "so there is no difference to draw")
        self.caption.setToolTip("The original and converted values share one colour scale; |difference| runs from 0 "
                                "to at least the tolerance, so what stays pale is within it. Click a stage in the "
                                "list of stages to see its heatmaps.")

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

    def _show_comparison_rows(self, shown: bool, activity: bool = False) -> None:
        for widget in (self.cosine, self.caption, self.original, self.converted, self.difference,
                       self.signed_bar, self.difference_bar):
            widget.setVisible(shown)
        self.activity.setVisible(shown and activity)
        self.activity_caption.setVisible(shown and activity)
        self.hint.setVisible(not shown)
        # Time values under the lowest plot only, which gets the room they take.
        lowest = self.activity if activity and shown else (self.difference if shown else self.waveform)
        for plot in self.plots:
            plot.show_time_values(plot is lowest)
            shown_now = plot is self.waveform or (shown and (plot is not self.activity or activity))
            stretch = 4 if plot is self.waveform else 3
            # A hidden plot's row gets no stretch: an empty row with one still takes its share of the height.
            self.grid.setRowStretch(self.rows[plot], (stretch + (2 if plot is lowest and plot is not self.waveform else 0))
                                    if shown_now else 0)
        self.grid.setRowStretch(1, 3 if not shown else 0)  # the hint, in the room the plots will take

    def _caption_activity(self) -> None:
        original, converted = (line_colour(side, self.palette()).name() for side in ("original", "converted"))
        self.activity_caption.setText(
            f"Speaker activity (sigmoid(logit) > 0.5): each speaker's upper lane is the "
            f"<b style='color:{original}'>original</b>, the lower the <b style='color:{converted}'>converted</b> model")

    def restyle(self, palette: QPalette) -> None:
        if self.activity_caption.isVisible():
            self._caption_activity()
        for plot in self.plots:
            plot.restyle(palette)
        signed, difference = colourmaps(palette)
        self.signed_bar.set_colourmap(signed)
        self.difference_bar.set_colourmap(difference)
        for bar in (self.signed_bar, self.difference_bar):
            bar.restyle(palette)
            bar.set_levels(*bar.levels)
