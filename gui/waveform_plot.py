"""The clip's waveform — the 16 kHz signal both models receive — with a playhead that follows playback."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QWidget

from .plots import TimePlot, line_colour

MODEL_RATE = 16_000  # core.audio.MODEL_RATE: the rate clips are resampled to
POINTS_PER_PIXEL = 2  # the peaks drawn: a low and a high per pixel column look the same as every sample


class WaveformPlot(TimePlot):
    def __init__(self, parent: QWidget | None = None):
        self.seconds = 0.0
        self.rate = MODEL_RATE
        self.downsampling = 1
        super().__init__("waveformPlot", "clip", parent, minimum_height=50)
        self.setAccessibleName("Waveform of the clip")
        item = self.getPlotItem()
        item.setYRange(-1.0, 1.0, padding=0.02)
        self.curve = pg.PlotDataItem()
        # A long clip has millions of samples: draw the peaks of what is in view, a few per pixel,
        # so moving the playhead repaints in milliseconds whatever the clip's length.
        self.curve.setClipToView(True)
        item.addItem(self.curve)
        item.getViewBox().sigXRangeChanged.connect(self._downsample_for_view)
        self.playhead = pg.InfiniteLine(pos=0.0, angle=90, movable=False)
        self.playhead.setZValue(10)
        self.playhead.hide()
        item.addItem(self.playhead)
        self.restyle()

    def set_clip(self, waveform: np.ndarray, rate: int = MODEL_RATE) -> None:
        self.seconds = len(waveform) / rate
        self.rate = rate
        times = np.arange(len(waveform), dtype=np.float64) / rate
        self.curve.setData(times, waveform)
        peak = float(np.max(np.abs(waveform))) if len(waveform) else 1.0
        self.getPlotItem().setYRange(-max(peak, 1e-3), max(peak, 1e-3), padding=0.05)
        self.set_time_range(self.seconds)
        self.set_playhead(None)

    def _downsample_for_view(self, *_) -> None:
        if not self.seconds:
            return
        start, end = self.getPlotItem().viewRange()[0]
        visible = max(1, int((end - start) * self.rate))
        pixels = max(1, int(self.getPlotItem().getViewBox().width()))
        factor = max(1, visible // (POINTS_PER_PIXEL * pixels))
        if factor != self.downsampling:
            self.downsampling = factor
            self.curve.setDownsampling(ds=factor, auto=False, method="peak")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._downsample_for_view()

    def clear_clip(self) -> None:
        self.seconds = 0.0
        self.curve.setData([], [])
        self.set_playhead(None)

    def samples(self) -> np.ndarray:
        """The samples drawn (the whole clip, before any downsampling for display)."""
        _times, values = self.curve.getOriginalDataset()
        return np.asarray(values) if values is not None else np.zeros(0, dtype=np.float32)

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
