"""Play, Pause and Stop for the clip being auditioned, with the time played, what the clip is, and
whether there is an audio output at all (without one, Play is disabled and the bar says why)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..shared import theme
from ..shared.elided_label import ElidedLabel
from .audio_player import PAUSED, PLAYING, STOPPED, ClipPlayer


class TransportBar(QWidget):
    playheadMoved = Signal(object)  # seconds into the clip while playing, None once stopped
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("transportBar")
        self.player = ClipPlayer(self)
        self.seconds = 0.0
        self.play_button = QPushButton("Play", self)
        self.play_button.setObjectName("playButton")
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setObjectName("pauseButton")
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopButton")
        self.time_label = QLabel(self)
        self.time_label.setObjectName("playbackTime")
        self.time_label.setMinimumWidth(self.fontMetrics().horizontalAdvance(self._times(0.0, 0.0)) + 8)
        self.clip_info = ElidedLabel(parent=self)
        self.clip_info.setObjectName("clipInfo")
        self.status = ElidedLabel(parent=self)
        self.status.setObjectName("playbackStatus")
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        self.row = QHBoxLayout()
        self.row.setSpacing(6)
        for widget in (self.play_button, self.pause_button, self.stop_button, self.time_label):
            self.row.addWidget(widget)
        # What the clip is comes first; the output it plays through takes what room is left. Without
        # one, why not is said whole on a line of its own under the buttons (`_place_status`).
        self.row.addWidget(self.clip_info, 3)
        column.addLayout(self.row)
        self.status_row = QHBoxLayout()
        column.addLayout(self.status_row)
        self._status_inline: bool | None = None

        self.play_button.clicked.connect(self.player.play)
        self.pause_button.clicked.connect(self.player.pause)
        self.stop_button.clicked.connect(self.player.stop)
        self.player.stateChanged.connect(self._state_changed)
        self.player.positionChanged.connect(self._position)
        self.player.availabilityChanged.connect(self._availability)
        self.player.failed.connect(self.failed)
        self._availability(self.player.available, self.player.reason)

    def set_clip(self, clip: np.ndarray | bytes | None, seconds: float = 0.0, description: str = "") -> None:
        """The clip to play (its samples, or its 16-bit PCM), its length and a few words about it."""
        self.player.set_clip(clip)
        self.seconds = seconds
        self.time_label.setMinimumWidth(self.fontMetrics().horizontalAdvance(self._times(seconds, seconds)) + 8)
        self.clip_info.setText(description)
        self._position(0.0)
        self._update_buttons()

    def toggle(self) -> None:
        """Pause while playing; play (or resume) otherwise."""
        if self.player.state == PLAYING:
            self.player.pause()
        else:
            self.player.play()

    def _state_changed(self, state: str) -> None:
        self.play_button.setText("Resume" if state == PAUSED else "Play")
        if state == STOPPED:
            self.playheadMoved.emit(None)
        self._update_buttons()

    @staticmethod
    def _times(seconds: float, total: float) -> str:
        """Where the playhead is and how long the clip is, both as a clock: "0:01.5 / 1:50.0"."""
        return f"{clock(seconds)} / {clock(total)}"

    def _position(self, seconds: float) -> None:
        self.time_label.setText(self._times(seconds, self.seconds))
        if self.player.state != STOPPED:
            self.playheadMoved.emit(seconds)

    def _place_status(self, inline: bool) -> None:
        if inline == self._status_inline:
            return
        self._status_inline = inline
        for layout in (self.row, self.status_row):
            layout.removeWidget(self.status)
        if inline:
            self.row.addWidget(self.status, 2)
        else:
            self.status_row.addWidget(self.status, 1)

    def _availability(self, available: bool, reason: str) -> None:
        self._place_status(available)
        self.status.setText(reason)
        why = self.player.why_not
        explanation = reason if available else (f"{reason} {why + ' ' if why else ''}Play is disabled; the "
                                                "comparison does not need sound.")
        self.status.set_extra_tooltip(explanation if explanation != reason else "")
        colour = theme.message_colour("warning", QGuiApplication.palette()).name() if not available else ""
        self.status.setStyleSheet(f"color: {colour}" if colour else "")
        self.play_button.setToolTip("Play the clip as the models hear it: 16 kHz mono (Ctrl+Space)" if available
                                    else explanation)
        self._update_buttons()

    def _update_buttons(self) -> None:
        state = self.player.state
        can_play = self.player.available and self.player.has_clip()
        self.play_button.setEnabled(can_play and state != PLAYING)
        self.pause_button.setEnabled(can_play and state == PLAYING)
        self.stop_button.setEnabled(can_play and state != STOPPED)

    def restyle(self) -> None:
        palette = QGuiApplication.palette()
        for button, glyph in ((self.play_button, "play"), (self.pause_button, "pause"), (self.stop_button, "stop")):
            button.setIcon(theme.glyph_icon(glyph, palette))
        self._availability(self.player.available, self.player.reason)


def clock(seconds: float) -> str:
    """Minutes and seconds to a tenth: 62.5 → "1:02.5"."""
    minutes, rest = divmod(max(0.0, seconds), 60.0)
    if round(rest, 1) >= 60.0:
        minutes, rest = minutes + 1, 0.0
    return f"{int(minutes)}:{rest:04.1f}"
