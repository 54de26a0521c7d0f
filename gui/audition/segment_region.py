"""The part of a clip to compare, chosen on its waveform: a shaded region whose edges and body can be
dragged, that stays inside the clip and is never longer than a comparison may be.

pyqtgraph's `LinearRegionItem` bounds each edge on its own (a region dragged against the end of
the clip would shrink); here the region keeps its length when moved, and an edge dragged further
than `longest` seconds from the other stops there.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor


class SegmentRegion(pg.LinearRegionItem):
    def __init__(self, longest: float):
        super().__init__(values=(0.0, 0.0), orientation="vertical", swapMode="block")
        self.longest = float(longest)
        self.seconds = 0.0  # the clip's length: the region stays within 0..seconds
        self.setZValue(-5)  # under the waveform's line
        for line in self.lines:
            line.setCursor(Qt.CursorShape.SizeHorCursor)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.setToolTip("The part of the clip Compare compares: drag it, or drag its edges")

    def set_clip(self, seconds: float) -> None:
        """A new clip: the region covers its first `longest` seconds (all of it when it fits)."""
        self.seconds = max(0.0, float(seconds))
        self.setBounds((0.0, self.seconds))
        self.setRegion((0.0, min(self.seconds, self.longest)))

    def segment(self) -> tuple[float, float]:
        start, end = self.getRegion()
        return float(start), float(end)

    def lineMoved(self, i: int) -> None:
        """An edge moved (dragged, or set): the other edge is at most `longest` seconds away."""
        if self.blockLineSignal:
            return
        moved, other = self.lines[i], self.lines[1 - i]
        if abs(moved.value() - other.value()) > self.longest:
            self.blockLineSignal = True
            direction = 1.0 if moved.value() > other.value() else -1.0
            moved.setValue(other.value() + direction * self.longest)
            self.blockLineSignal = False
        super().lineMoved(i)

    def mouseDragEvent(self, ev) -> None:
        """Moving the whole region: it keeps its length and stops at either end of the clip."""
        if not self.movable or ev.button() != Qt.MouseButton.LeftButton:
            return
        ev.accept()
        if ev.isStart():
            self._drag_start = ev.buttonDownPos().x()
            self._drag_region = self.segment()
            self.moving = True
        if not self.moving:
            return
        start, end = self._drag_region
        shift = ev.pos().x() - self._drag_start
        shift = min(max(shift, -start), self.seconds - end)
        self.blockLineSignal = True
        self.lines[0].setValue(start + shift)
        self.lines[1].setValue(end + shift)
        self.blockLineSignal = False
        self.prepareGeometryChange()
        if ev.isFinish():
            self.moving = False
            self.sigRegionChangeFinished.emit(self)
        else:
            self.sigRegionChanged.emit(self)

    def set_colours(self, line: QColor) -> None:
        fill, hover = QColor(line), QColor(line)
        fill.setAlpha(30)
        hover.setAlpha(55)
        self.setBrush(pg.mkBrush(fill))
        self.setHoverBrush(pg.mkBrush(hover))
        edge, edge_hover = QColor(line), QColor(line)
        edge.setAlpha(160)
        for region_line in self.lines:
            region_line.setPen(pg.mkPen(edge, width=2))
            region_line.setHoverPen(pg.mkPen(edge_hover, width=4))
        self.update()
