"""pyqtgraph plots in the window's palette, built to be stacked in one column over a shared time axis.

Every plot here has a left axis of the same fixed width, and nothing on its right (colour bars
sit beside the plots, not inside them), so plots stacked in a column line their time axes up
pixel for pixel once their x ranges are linked.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QWidget

from . import theme

LEFT_AXIS_WIDTH = 74  # pixels: room for a label and tick values such as "-0.5" or "0.995"
SIDE_WIDTH = 64  # pixels: the column beside the plots that holds colour bars

# Line colours: (on a light background, on a dark background).
LINE_COLOURS = {
    "waveform": ("#2f6fde", "#6ca4ff"),
    "cosine": ("#1a7f37", "#3fb950"),
    "playhead": ("#d1242f", "#ff7b72"),
    "original": ("#0a5cc2", "#58a6ff"),
    "converted": ("#bc4c00", "#f0883e"),
    "reference": ("#8c959f", "#6e7681"),
    "segment": ("#8250df", "#a371f7"),  # the part of the clip to compare
}


def line_colour(name: str, palette: QPalette | None = None) -> QColor:
    light, dark = LINE_COLOURS[name]
    return QColor(dark if theme.is_dark(palette) else light)


def style_plot(plot: pg.PlotWidget, palette: QPalette) -> None:
    """A plot's background, axes and axis labels in the palette's colours."""
    plot.setBackground(palette.color(QPalette.ColorRole.Base))
    text = palette.color(QPalette.ColorRole.Text)
    for name in ("left", "bottom"):
        axis = plot.getPlotItem().getAxis(name)
        axis.setPen(pg.mkPen(palette.color(QPalette.ColorRole.Mid)))
        axis.setTextPen(pg.mkPen(text))
        axis.label.setDefaultTextColor(text)


class TimeAxis(pg.AxisItem):
    """Seconds along the bottom, each value with its unit ("1.5 s"): the axis needs no title line."""

    def tickStrings(self, values, scale, spacing):
        return [f"{text} s" for text in super().tickStrings(values, scale, spacing)]


class TimePlot(pg.PlotWidget):
    """A plot over the clip's time axis (seconds): fixed left axis, no right axis, zoom on x only."""

    def __init__(self, object_name: str, label: str, parent: QWidget | None = None, *, minimum_height: int = 30):
        """`minimum_height`: pixels the plot itself gets at least, whatever its time axis takes below it."""
        super().__init__(parent, axisItems={"bottom": TimeAxis("bottom")})
        self.setObjectName(object_name)
        self.plot_height = minimum_height
        self.axis_height = 4
        item = self.getPlotItem()
        item.hideButtons()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=True, y=False)
        item.layout.setContentsMargins(0, 2, 4, 0)
        left = item.getAxis("left")
        left.setWidth(LEFT_AXIS_WIDTH)
        left.setLabel(label)
        for name in ("left", "bottom"):
            item.getAxis(name).enableAutoSIPrefix(False)  # plain values: 0.5, not 500 with "(x0.001)"
        self.show_time_values(False)
        self.restyle()

    def show_time_values(self, shown: bool) -> None:
        """Tick values ("1.5 s") on the bottom axis, or its ticks alone: a column of plots linked in
        time reads them off one plot (like the ruler of an audio editor)."""
        bottom = self.getPlotItem().getAxis("bottom")
        bottom.setStyle(showValues=shown)
        self.axis_height = self.fontMetrics().height() + 8 if shown else 4
        bottom.setHeight(self.axis_height)
        self.set_plot_height(self.plot_height)

    def set_plot_height(self, pixels: int) -> None:
        """The least height of the plot itself; the widget adds its time axis's."""
        self.plot_height = pixels
        self.setMinimumHeight(pixels + self.axis_height + 2)

    def restyle(self, palette: QPalette | None = None) -> None:
        style_plot(self, palette or QGuiApplication.palette())

    def set_time_range(self, seconds: float) -> None:
        """The whole clip in view, and no panning past either end."""
        seconds = max(seconds, 1e-3)
        item = self.getPlotItem()
        item.setLimits(xMin=0.0, xMax=seconds)
        item.setXRange(0.0, seconds, padding=0)


def link_time_axes(plots: list[TimePlot]) -> None:
    """Zooming or panning any plot moves them all."""
    first = plots[0].getPlotItem()
    for plot in plots[1:]:
        plot.getPlotItem().setXLink(first)
