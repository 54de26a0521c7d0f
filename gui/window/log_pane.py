"""The log pane under the work area: what Speechport did, one timestamped line per step."""

from __future__ import annotations

import time

from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

LOG_LIMIT = 5000  # lines kept in the log pane


class LogPane(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
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
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(title)
        layout.addWidget(self.edit)

    def log(self, text: str) -> None:
        self.edit.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")
