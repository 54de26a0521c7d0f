"""Lines of text, one line each however narrow the label: a line too long ends in "…", and the whole of
every cut line is in the tooltip. The label is exactly as tall as its lines — it never wraps, so its
height never depends on its width — and `text()` is still the whole text."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLines(QLabel):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(False)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def setText(self, text: str) -> None:
        self._full = text or ""
        self._elide()
        self.updateGeometry()

    def text(self) -> str:
        """The whole text, however much of each line fits."""
        return self._full

    def lines(self) -> list[str]:
        return self._full.split("\n") if self._full else []

    def shown_lines(self) -> list[str]:
        """The lines as drawn."""
        shown = super().text()
        return shown.split("\n") if shown else []

    def line_height(self) -> int:
        return self.fontMetrics().lineSpacing()

    def height_of(self, count: int) -> int:
        """Pixels that `count` lines take, margins included."""
        margins = self.contentsMargins()
        return count * self.line_height() + margins.top() + margins.bottom() + 2 * self.margin()

    def _elide(self) -> None:
        width = self.contentsRect().width() - 2 * self.margin()
        metrics = self.fontMetrics()
        lines = self.lines()
        shown = [metrics.elidedText(line, Qt.TextElideMode.ElideRight, width) if width > 0 else line for line in lines]
        super().setText("\n".join(shown))
        cut = [line for line, drawn in zip(lines, shown) if drawn != line]
        self.setToolTip("\n".join(cut))
        self.setAccessibleDescription(self._full)

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self.height_of(len(self.lines())))

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.height_of(len(self.lines())))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._elide()
