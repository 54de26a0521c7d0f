"""Choosing the clip to audition: a path field (type, browse, drop, recent files), the bundled demo
clips, and how several channels become the one the models hear."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QToolButton,
    QWidget,
)

from ...core.demo import DEMO_CLIPS
from ..shared.widgets import PathField

# What soundfile (libsndfile) reads, as core.audio.load_clip does.
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au",
                            ".snd", ".caf", ".w64", ".rf64"})
AUDIO_FILTER = ("Audio (" + " ".join(f"*{suffix}" for suffix in sorted(AUDIO_SUFFIXES)) + ");;All files (*)")
CHANNEL_POLICIES = {  # core.audio.CHANNEL_POLICIES, as the CLI's --channels names them
    "first": "First channel",
    "mean": "Mix channels",
}


def is_audio(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


class ClipChooser(QWidget):
    clipChosen = Signal(str)
    channelsChanged = Signal(str)

    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("clipChooser")
        self.field = PathField(
            "audioPath", settings=settings, recent_key="audio", file_filter=AUDIO_FILTER,
            dialog_title="Choose a clip", placeholder="a .wav, .flac, .ogg or .mp3 clip — or drop one here",
            tooltip="The clip both models hear, at 16 kHz mono (resampled as the models receive it).", parent=self)
        self.demo_button = QToolButton(self)
        self.demo_button.setObjectName("demoClipsButton")
        self.demo_button.setText("Demo clips")
        self.demo_button.setToolTip("The clips that come with Speechport")
        self.demo_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.demo_button)
        for clip in DEMO_CLIPS:
            action = menu.addAction(clip.name)
            action.setToolTip(str(clip))
            action.triggered.connect(lambda _checked=False, path=str(clip): self.field.commit(path))
        # Opened from the keyboard (Space on the button), the first clip is active: Return takes it.
        menu.aboutToShow.connect(lambda: menu.setActiveAction(menu.actions()[0]))
        self.demo_button.setMenu(menu)
        self.channels = QComboBox(self)
        self.channels.setObjectName("channelsCombo")
        self.channels.setToolTip("A clip with several channels: keep the first one (as fairseq2 does) or mix them "
                                 "(as S3PRL does)")
        for policy, text in CHANNEL_POLICIES.items():
            self.channels.addItem(text, policy)
        label = QLabel("Cl&ip:", self)
        label.setBuddy(self.field.edit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(label)
        layout.addWidget(self.field, 1)
        layout.addWidget(self.demo_button)
        layout.addWidget(self.channels)
        self.field.pathChosen.connect(self.clipChosen)
        self.channels.currentIndexChanged.connect(lambda _index: self.channelsChanged.emit(self.channel_policy()))

    def path(self) -> str:
        return self.field.path()

    def choose(self, path: str | Path) -> None:
        """Choose a clip, as the file dialog does."""
        self.field.commit(str(path))

    def channel_policy(self) -> str:
        return self.channels.currentData() or "first"
