"""The log: what Speechport did, one timestamped line per step.

Until the user asks for it, the log is one line in the status bar — its latest entry, ending in "…"
when it is too long (all of it in the tooltip), beside a "Show log" button — so the table and the
plots get the window's height. Shown, it is a pane under the work area that the splitter sizes, with
a "Hide" button. Whether it is shown is the window's "Show log" action (View ▸ Show log,
Ctrl+Shift+L), remembered in the settings; both buttons trigger it.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QToolButton, QVBoxLayout, QWidget

from ..shared.elided_label import ElidedLabel

LOG_LIMIT = 5000  # lines kept in the log pane
SHOWN_HEIGHT = 110  # pixels of log when it is first shown; after that, the height the user left it at


def _toggle_button(name: str, text: str, arrow: Qt.ArrowType, tip: str, parent: QWidget) -> QToolButton:
    button = QToolButton(parent)
    button.setObjectName(name)
    button.setAutoRaise(True)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setArrowType(arrow)
    button.setText(text)
    button.setToolTip(tip)
    button.setAccessibleName(tip.split(" (", 1)[0])
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # reached with Tab, pressed with Space
    return button


class LogPane(QWidget):
    toggled = Signal(bool)  # a button asks for the log shown (True) or kept to one line (False)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("logBox")
        self.edit = QPlainTextEdit(self)
        self.edit.setObjectName("logPane")
        self.edit.setReadOnly(True)
        self.edit.setMaximumBlockCount(LOG_LIMIT)
        self.edit.setPlaceholderText("What Speechport does shows up here.")
        self.edit.setAccessibleName("Log")
        title = QLabel("Log", self)
        title.setObjectName("logTitle")
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self.hide_button = _toggle_button("logHide", "Hide", Qt.ArrowType.DownArrow,
                                          "Keep the log to its latest line (Ctrl+Shift+L)", self)
        self.hide_button.clicked.connect(lambda: self.toggled.emit(False))
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.setSpacing(6)
        header.addWidget(title)
        header.addWidget(self.hide_button)
        header.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.edit, 1)

        # The one line, for the status bar: "Show log" and the latest entry.
        self.glimpse = QWidget()
        self.glimpse.setObjectName("logGlimpse")
        self.toggle = _toggle_button("logToggle", "Show log", Qt.ArrowType.UpArrow,
                                     "Show the whole log (Ctrl+Shift+L)", self.glimpse)
        self.toggle.clicked.connect(lambda: self.toggled.emit(True))
        self.last_line = ElidedLabel(parent=self.glimpse)
        self.last_line.setObjectName("logLastLine")
        self.last_line.setForegroundRole(QPalette.ColorRole.PlaceholderText)  # dimmed: a glimpse of the log
        row = QHBoxLayout(self.glimpse)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(self.toggle)
        row.addWidget(self.last_line, 1)
        self.shown_height = SHOWN_HEIGHT
        self.expanded = False

    def set_expanded(self, expanded: bool) -> None:
        """The pane with the whole log (True), or only the status bar's line (False)."""
        self.expanded = expanded
        self.setVisible(expanded)
        self.glimpse.setVisible(not expanded)

    def log(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')}  {text}"
        self.edit.appendPlainText(line)
        self.last_line.setText(line)
