"""A one-line label that never pushes its neighbours: text too long for it ends in "…", and the whole
text is in its tooltip (and in the accessible description), so nothing said is lost."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None, *,
                 mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight, tooltip: str = ""):
        """`mode`: where the "…" goes (the middle keeps both ends of a path); `tooltip`: said after the
        whole text, in its tooltip."""
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self._extra_tooltip = tooltip
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(0)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text or ""
        self._elide()

    def text(self) -> str:
        """The whole text, however much of it fits."""
        return self._full

    def shown_text(self) -> str:
        """What fits, as drawn."""
        return super().text()

    def is_elided(self) -> bool:
        return super().text() != self._full

    def set_extra_tooltip(self, tooltip: str) -> None:
        self._extra_tooltip = tooltip
        self._elide()

    def _elide(self) -> None:
        width = max(0, self.contentsRect().width())
        shown = self.fontMetrics().elidedText(self._full, self._mode, width) if width else self._full
        super().setText(shown)
        parts = [self._full] if shown != self._full else []
        if self._extra_tooltip:
            parts.append(self._extra_tooltip)
        self.setToolTip("\n\n".join(parts))
        self.setAccessibleDescription(self._full)

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 4, hint.height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()
