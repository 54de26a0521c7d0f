"""The plots of one comparison over the clip's time axis: per-frame cosine similarity, heatmaps of the
original, converted and |difference| of a compared tensor, and diarization's speaker activity.

What is drawn comes from the core's `ClipComparison` (its per-frame cosine, the two models'
outputs and stages); the plots only lay it out in time, `frame_seconds` apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..shared import theme
from ..shared.formatting import short_number
from ..shared.plots import SIDE_WIDTH, TimePlot, line_colour
from . import plain_words

# (light palette, dark palette): values around zero, and differences from zero up.
SIGNED_COLOURMAPS = ("CET-D1A", "CET-D1A")
DIFFERENCE_COLOURMAPS = ("CET-L18", "inferno")
SIGNED_PERCENTILE = 99.0  # hidden states have a few huge outliers: scale to the bulk of the values


def round_up(value: float) -> float:
    """The next of 1, 2, 5 × 10^k at or above `value`: a range that ends on a short number."""
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * 10.0 ** exponent >= value * (1 - 1e-12):
            return step * 10.0 ** exponent
    return 10.0 ** (exponent + 1)


def bulk_magnitude(array: np.ndarray) -> float:
    """The |value| that SIGNED_PERCENTILE % of the values stay within (a partial sort: linear time)."""
    values = np.abs(array).ravel()
    if not values.size:
        return 0.0
    k = min(values.size - 1, int(values.size * SIGNED_PERCENTILE / 100))
    return float(np.partition(values, k)[k])


def as_frames(tensor, frames: int | None = None) -> np.ndarray:
    """A model output as a float32 (frames, features) array; a vector per clip is one frame."""
    array = np.asarray(tensor.detach().float().cpu().numpy(), dtype=np.float32)
    array = array.reshape(1, -1) if array.ndim <= 1 else array.reshape(array.shape[0], -1)
    return array[:frames] if frames is not None else array


class CosinePlot(TimePlot):
    """Cosine similarity of the two models' outputs, frame by frame (1 = the same direction)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("cosinePlot", "cosine", parent, minimum_height=38)  # room for its name, written upwards
        self.setAccessibleName("Per-frame cosine similarity")
        self.setToolTip(plain_words.COSINE)
        item = self.getPlotItem()
        self.reference = pg.InfiniteLine(pos=1.0, angle=0, movable=False)
        item.addItem(self.reference)
        self.curve = pg.PlotDataItem()
        item.addItem(self.curve)
        self.restyle()

    def set_values(self, cosines: list[float], frame_seconds: float, start: float = 0.0) -> None:
        """One value per output frame, `frame_seconds` apart from `start` seconds into the clip."""
        values = np.asarray(cosines, dtype=np.float64)
        self.curve.setData(start + (np.arange(len(values)) + 0.5) * frame_seconds, values)
        self.curve.setSymbol("o" if len(values) == 1 else None)  # a clip of one frame: a dot, not a line
        # Agreement to a millionth stays a flat line at 1; any larger dip fills the plot, so its
        # shape in time shows (the axis's values tell how deep it is).
        deviation = 1.0 - float(values.min()) if len(values) else 0.0
        low = 0.999 if deviation < 1e-6 else 1.0 - round_up(1.2 * deviation)
        margin = (1.0 - low) * 0.08
        item = self.getPlotItem()
        item.setYRange(low - margin, 1.0 + margin, padding=0)
        # Two values are enough on a plot this short: the top (1) and the bottom of the range.
        item.getAxis("left").setTicks([[(1.0, "1"), (low, f"{low:.8g}")], []])

    def clear_values(self) -> None:
        self.curve.setData([], [])

    def restyle(self, palette: QPalette | None = None) -> None:
        super().restyle(palette)
        if hasattr(self, "curve"):
            self.curve.setPen(pg.mkPen(line_colour("cosine", palette), width=2))
            self.reference.setPen(pg.mkPen(line_colour("reference", palette), width=1, style=Qt.PenStyle.DashLine))


class HeatmapPlot(TimePlot):
    """One (frames, features) tensor as an image: time across, features up.

    Heatmaps are short, so their name is written level, where the left axis's values would be.
    """

    def __init__(self, object_name: str, label: str, parent: QWidget | None = None):
        super().__init__(object_name, "", parent, minimum_height=22)
        self.label = label
        item = self.getPlotItem()
        item.getAxis("left").setLabel(None)
        self.image = pg.ImageItem(axisOrder="col-major")  # image[x, y]: frames along x
        self.image.setAutoDownsample(True)
        item.addItem(self.image)
        self.overlay = pg.TextItem(anchor=(0.5, 0.5))
        self.overlay.setZValue(5)
        item.addItem(self.overlay, ignoreBounds=True)
        self.features = 0
        self._name_at(1.0)

    def _name_at(self, height: float) -> None:
        self.getPlotItem().getAxis("left").setTicks([[(height / 2, self.label)], []])

    def set_image(self, array: np.ndarray, frame_seconds: float, start: float = 0.0, note: str = "") -> None:
        """Frames `frame_seconds` apart from `start` seconds into the clip; `note`: a few words written
        over the image (e.g. that every value is within the tolerance)."""
        frames, features = array.shape
        self.features = features
        width = frames * frame_seconds
        self.image.setImage(array, autoLevels=False)
        self.image.setRect(QRectF(start, 0.0, width, features))
        self.getPlotItem().setYRange(0, features, padding=0)
        self._name_at(features)
        self.overlay.setText(note)
        self.overlay.setPos(start + width / 2, features / 2)

    def clear_image(self) -> None:
        self.image.clear()
        self.overlay.setText("")

    def restyle(self, palette: QPalette | None = None) -> None:
        super().restyle(palette)
        if hasattr(self, "overlay"):
            palette = palette or QGuiApplication.palette()
            self.overlay.setColor(palette.color(QPalette.ColorRole.Text))


class ColourBar(pg.GraphicsLayoutWidget):
    """The colour scale of one or more heatmaps, beside them: one scale, so they compare at a glance.

    Its ticks are chosen here, not by pyqtgraph: both ends, zero between them when the scale is
    signed, and marked values (the tolerance) — each only where it has room, so the numbers of a
    short bar never run into each other.
    """

    def __init__(self, object_name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setFixedWidth(SIDE_WIDTH)
        # As tall as the heatmaps beside it, however short they are.
        self.setMinimumHeight(0)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Ignored)
        self.margin = self.fontMetrics().height() // 2 + 1  # half a line above and below: the end values fit
        self.ci.layout.setContentsMargins(0, self.margin, 0, self.margin)
        self.bar = pg.ColorBarItem(values=(0.0, 1.0), width=10, interactive=False, colorMapMenu=False)
        self.bar.axis.setStyle(hideOverlappingLabels=False)
        self.addItem(self.bar)
        self.levels = (0.0, 1.0)
        self.marks: list[tuple[float, str]] = []
        self._ticks: list[tuple[float, str]] = []

    def attach(self, images: list[pg.ImageItem], colourmap: str) -> None:
        self.bar.setColorMap(pg.colormap.get(colourmap))
        self.bar.setImageItem(images)

    def set_colourmap(self, colourmap: str) -> None:
        self.bar.setColorMap(pg.colormap.get(colourmap))

    def set_levels(self, low: float, high: float, marks: list[tuple[float, str]] | None = None) -> None:
        """The values the colours span; `marks`: (value, text) ticks to show where there is room."""
        self.levels = (low, high)
        if marks is not None:
            self.marks = list(marks)
        self.bar.setLevels((low, high))
        self._set_ticks()

    def ticks(self) -> list[tuple[float, str]]:
        """The (value, text) ticks shown."""
        return list(self._ticks)

    def _set_ticks(self) -> None:
        low, high = self.levels
        span = high - low
        room = self.height() - 2 * self.margin
        line = self.fontMetrics().height()
        ticks = [(high, short_number(high)), (low, short_number(low))]
        wanted = [(0.0, "0")] if low < 0 < high else []
        for value, text in [*wanted, *self.marks]:
            if not span or not low <= value <= high:
                continue
            position = room * (value - low) / span
            if all(abs(position - room * (other - low) / span) >= 1.2 * line for other, _ in ticks):
                ticks.append((value, text))
        if room < 2.2 * line:  # not even two values fit: the larger end only
            ticks = ticks[:1]
        self._ticks = ticks
        self.bar.axis.setTicks([ticks, []])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if hasattr(self, "bar"):  # pyqtgraph resizes the view while it is being built
            self._set_ticks()

    def restyle(self, palette: QPalette | None = None) -> None:
        palette = palette or QGuiApplication.palette()
        self.setBackground(palette.color(QPalette.ColorRole.Window))
        self.bar.axis.setPen(pg.mkPen(palette.color(QPalette.ColorRole.Mid)))
        self.bar.axis.setTextPen(pg.mkPen(palette.color(QPalette.ColorRole.Text)))


class ActivityPlot(TimePlot):
    """Diarization: when each speaker talks, per model — the original above, the converted below.

    A speaker is active where sigmoid(frame logit) > 0.5, i.e. where the logit is positive, as
    S3PRL trains diarization with a per-speaker binary cross-entropy.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__("activityPlot", "speakers", parent, minimum_height=44)
        self.setAccessibleName("Speaker activity of both models")
        self.activity_curves: list[pg.PlotCurveItem] = []

    def set_activity(self, original_logits: np.ndarray, converted_logits: np.ndarray, frame_seconds: float,
                     start: float = 0.0, names: Sequence[str] = ()) -> None:
        """Frames `frame_seconds` apart from `start` seconds into the clip; each lane named as the
        converted folder names its class (`names`, its id2label), as the Labels row does."""
        item = self.getPlotItem()
        for curve in self.activity_curves:
            item.removeItem(curve)
        self.activity_curves = []
        frames = min(len(original_logits), len(converted_logits))
        speakers = original_logits.shape[1] if original_logits.ndim == 2 else 0
        edges = start + np.arange(frames + 1) * frame_seconds
        ticks = []
        for speaker in range(speakers):
            for logits, offset, side in ((original_logits, 0.5, "original"), (converted_logits, 0.05, "converted")):
                base = speaker + offset
                active = (logits[:frames, speaker] > 0).astype(np.float64)
                curve = pg.PlotCurveItem(edges, base + 0.42 * active, stepMode="center", fillLevel=base)
                curve.side = side
                curve.active = active
                self.activity_curves.append(curve)
                item.addItem(curve)
            name = speaker_name(names, speaker)  # the axis beside the lanes is narrow: the table says it whole
            ticks.append((speaker + 0.5, name if len(name) <= LANE_NAME_CHARS else name[: LANE_NAME_CHARS - 1] + "…"))
        item.getAxis("left").setTicks([ticks, []])
        item.setYRange(0, max(speakers, 1), padding=0.02)
        # Each lane (a speaker in one model) at least most of a text line tall, so it reads at a glance.
        self.set_plot_height(max(44, round(speakers * 2 * 0.9 * self.fontMetrics().height())))
        self.restyle()

    def restyle(self, palette: QPalette | None = None) -> None:
        super().restyle(palette)
        for curve in getattr(self, "activity_curves", []):
            colour = line_colour(curve.side, palette)
            curve.setPen(pg.mkPen(colour, width=1))
            fill = line_colour(curve.side, palette)
            fill.setAlpha(150)
            curve.setBrush(pg.mkBrush(fill))


LANE_NAME_CHARS = 8  # what the axis beside the speaker lanes has room for ("LABEL_10")


def speaker_name(names: Sequence[str], speaker: int) -> str:
    """A diarization output's name: the converted folder's (a labels file's, or LABEL_i), else S1, S2, …"""
    return str(names[speaker]) if speaker < len(names) else f"S{speaker + 1}"


def colourmaps(palette: QPalette | None = None) -> tuple[str, str]:
    """(signed values, differences) colour maps for the palette in use."""
    dark = theme.is_dark(palette)
    return SIGNED_COLOURMAPS[dark], DIFFERENCE_COLOURMAPS[dark]
