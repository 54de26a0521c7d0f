"""The clip's waveform — the 16 kHz signal both models receive — with the part of it to compare
(a region to drag) and a playhead that follows playback.

However long the clip, each redraw hands the plot a few points per pixel (`Peaks`, worked out on a
worker), so zooming, panning and the playhead stay quick.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QWidget

from ...core.proof.audio import DEFAULT_MAX_SECONDS
from ..shared.plots import TimePlot, line_colour
from .segment_region import SegmentRegion
from .waveform_peaks import Peaks

MODEL_RATE = 16_000  # core.audio.MODEL_RATE: the rate clips are resampled to
PLOT_HEIGHT = 80  # pixels the waveform itself gets at least, above its time axis


class WaveformPlot(TimePlot):
    segmentChanged = Signal(float, float)  # the part of the clip to compare, in seconds, as it is dragged

    def __init__(self, parent: QWidget | None = None, longest: float = DEFAULT_MAX_SECONDS):
        self.peaks: Peaks | None = None
        self._drawn: tuple | None = None  # what the curve holds: (clip, view start, view end, pixels)
        super().__init__("waveformPlot", "clip", parent, minimum_height=PLOT_HEIGHT)
        self.setAccessibleName("Waveform of the clip")
        item = self.getPlotItem()
        item.setYRange(-1.0, 1.0, padding=0.02)
        self.curve = pg.PlotDataItem()
        item.addItem(self.curve)
        item.getViewBox().sigXRangeChanged.connect(self._redraw)
        self.region = SegmentRegion(longest)
        self.region.hide()
        item.addItem(self.region)
        self.region.sigRegionChanged.connect(lambda _region: self.segmentChanged.emit(*self.segment()))
        self.playhead = pg.InfiniteLine(pos=0.0, angle=90, movable=False)
        self.playhead.setZValue(10)
        self.playhead.hide()
        item.addItem(self.playhead)
        self.restyle()

    @property
    def seconds(self) -> float:
        return self.peaks.seconds if self.peaks is not None else 0.0

    def set_clip(self, clip: Peaks | np.ndarray, rate: int = MODEL_RATE) -> None:
        """Draw a clip: its `Peaks`, or its samples (peaks are then worked out here)."""
        self.peaks = clip if isinstance(clip, Peaks) else Peaks.of(clip, rate)
        peak = max(self.peaks.peak(), 1e-3)
        self.getPlotItem().setYRange(-peak, peak, padding=0.05)
        self.set_time_range(self.seconds)
        self.region.set_clip(self.seconds)
        self.region.show()
        self.set_playhead(None)
        self._redraw()

    def clear_clip(self) -> None:
        self.peaks = None
        self._drawn = None
        self.curve.setData([], [])
        self.region.hide()
        self.set_playhead(None)

    def segment(self) -> tuple[float, float]:
        """The part of the clip chosen to compare (start, end) in seconds."""
        return self.region.segment() if self.peaks is not None else (0.0, 0.0)

    def set_segment(self, start: float, end: float) -> None:
        """Choose the part to compare, as dragging the region does (never longer than a comparison may be)."""
        self.region.setRegion((start, end))

    def samples(self) -> np.ndarray:
        """The clip's samples (all of them, whatever is drawn)."""
        return self.peaks.samples if self.peaks is not None else np.zeros(0, dtype=np.float32)

    def drawn_points(self) -> int:
        _times, values = self.curve.getData()
        return 0 if values is None else len(values)

    def _redraw(self, *_) -> None:
        if self.peaks is None:
            return
        start, end = self.getPlotItem().viewRange()[0]
        pixels = max(1, int(self.getPlotItem().getViewBox().width()))
        drawn = (id(self.peaks), start, end, pixels)
        if drawn == self._drawn:
            return  # only the height changed: the same points still fit
        self._drawn = drawn
        self.curve.setData(*self.peaks.view(start, end, pixels))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._redraw()

    def set_playhead(self, seconds: float | None) -> None:
        """Show the playhead at `seconds` into the clip; None hides it."""
        if seconds is None:
            self.playhead.hide()
            return
        self.playhead.setValue(seconds)
        self.playhead.show()

    def restyle(self, palette: QPalette | None = None) -> None:
        super().restyle(palette)
        if hasattr(self, "curve"):
            self.curve.setPen(pg.mkPen(line_colour("waveform", palette), width=1))
            self.playhead.setPen(pg.mkPen(line_colour("playhead", palette), width=2))
            self.region.set_colours(line_colour("segment", palette))
