"""A progress bar whose text stays on one line inside it: a text too long for the bar gives way to a
shorter form of it when one is given (what matters most, e.g. the stage and the percentage), else
ends in "…" (the style would otherwise wrap it or cut it at the bar's edges); the whole text is then
its tooltip."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QProgressBar, QStyle, QStyleOptionProgressBar, QWidget

TEXT_PADDING = 6  # pixels kept free at each end of the text


class ElidedProgressBar(QProgressBar):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._tooltip = ""  # a tooltip of the bar's own, shown when its text fits
        self._shown_tip = None
        self._shorter: tuple[str, ...] = ()  # shorter forms of the text, longest first

    def full_text(self) -> str:
        """The text the format gives, however much of it fits."""
        return super().text()

    def text(self) -> str:
        """What is drawn (the style asks for it when it paints): the text, elided to the bar's label room."""
        full = super().text()
        room = self.text_room()
        metrics = self.fontMetrics()
        shown = next((form for form in (full, *self._shorter) if metrics.horizontalAdvance(form) <= room), None)
        if shown is None:
            last = self._shorter[-1] if self._shorter else full
            shown = metrics.elidedText(last, Qt.TextElideMode.ElideRight, room) if room > 0 else ""
        tip = full if shown != full else self._tooltip
        if tip != self._shown_tip:
            self._shown_tip = tip
            super().setToolTip(tip)
        return shown

    def text_room(self) -> int:
        """Pixels of width the style gives the text."""
        option = QStyleOptionProgressBar()
        option.initFrom(self)
        option.rect = self.rect()
        option.textVisible = True
        rect = self.style().subElementRect(QStyle.SubElement.SE_ProgressBarLabel, option, self)
        return max(0, rect.width() - 2 * TEXT_PADDING)

    def is_elided(self) -> bool:
        return self.text() != self.full_text()

    def setToolTip(self, tip: str) -> None:
        self._tooltip = tip
        self._shown_tip = None
        self.text()

    def setFormat(self, text: str) -> None:
        self.set_text(text)

    def set_text(self, text: str, *shorter: str) -> None:
        """The bar's text, and shorter forms of it (longest first) for a bar too narrow for it."""
        self._shorter = tuple(shorter)
        super().setFormat(text)
        self.text()  # the tooltip follows the text at once, not at the next paint

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.text()
