"""Long text kept to a line or two: a word-wrapped label shows its first lines, and a button beside
it ("Show all") shows the rest. Nothing is cut from the text itself, which stays whole for
selecting and copying; only the height it may take is limited."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractButton, QAbstractScrollArea, QLabel, QWidget

UNLIMITED = (1 << 24) - 1  # QWIDGETSIZE_MAX


class LineClamp(QObject):
    def __init__(self, label: QLabel, button: QAbstractButton, *, lines: int = 2, view: QWidget | None = None,
                 expanded_lines: int | None = None):
        """`view` is what is limited in height: the label, or a scroll area holding it (then the
        whole text can be scrolled through when it is longer than `expanded_lines`)."""
        super().__init__(label)
        self.label = label
        self.button = button
        self.view = view or label
        self.lines = lines
        self.expanded_lines = expanded_lines
        self.expanded = False
        self._width = -1
        label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        label.installEventFilter(self)
        button.clicked.connect(self.toggle)
        self.refresh()

    def toggle(self) -> None:
        self.expanded = not self.expanded
        self.refresh()

    def collapse(self) -> None:
        """New text: shown in its first lines again."""
        self.expanded = False
        self.refresh()

    def overflows(self) -> bool:
        """The text needs more lines than the collapsed view shows."""
        return self._full_height() > self._height_of(self.lines)

    def refresh(self) -> None:
        """Call after the label's text changed (a resize refreshes by itself)."""
        overflowing = self.overflows()
        self.button.setVisible(overflowing)
        self.button.setText("Show less" if self.expanded else "Show all")
        if overflowing and not self.expanded:
            self.view.setMaximumHeight(self._height_of(self.lines))
        elif overflowing and self.expanded_lines is not None:
            self.view.setMaximumHeight(self._height_of(self.expanded_lines))
        else:
            self.view.setMaximumHeight(UNLIMITED)
        if isinstance(self.view, QAbstractScrollArea):  # collapsed, the button says there is more: no scroll bar
            self.view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if self.expanded
                                                 else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def _full_height(self) -> int:
        label = self.label
        height = label.heightForWidth(label.width()) if label.wordWrap() else -1
        return height if height >= 0 else label.sizeHint().height()

    def _height_of(self, lines: int) -> int:
        label = self.label
        margins = label.contentsMargins()
        frame = 0 if self.view is label else 2 * getattr(self.view, "frameWidth", lambda: 0)()
        return lines * label.fontMetrics().lineSpacing() + margins.top() + margins.bottom() + 2 * label.margin() + frame

    def eventFilter(self, watched, event) -> bool:
        # Only a new width changes how many lines the text takes; the height is what this sets.
        if watched is self.label and event.type() == QEvent.Type.Resize and self.label.width() != self._width:
            self._width = self.label.width()
            self.refresh()
        return False
