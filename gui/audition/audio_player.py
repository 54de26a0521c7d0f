"""Playing a clip through QtMultimedia: exactly the 16 kHz mono signal the models receive.

The clip goes to a `QAudioSink` as 16-bit PCM from a `QBuffer`; the playhead is the sink's
`processedUSecs()`, the audio it has consumed so far. Without an audio output device, playback
is off and the player says why; nothing else in the window depends on it.

A "Dummy Output" is no output. PulseAudio (and PipeWire's PulseAudio server) offers a sink named
`auto_null` when it has no sound card at all — a virtual machine, a container, a remote session —
so that programs can still "play"; Qt lists it like any other device (its own PipeWire backend
leaves it out). Played there, the playhead moves and nothing is heard: it counts as no device.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtMultimedia
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QTimer, Signal
from PySide6.QtMultimedia import QAudioDevice, QAudioFormat, QAudioSink, QMediaDevices

# The sink's states and errors: `QtAudio` since Qt 6.7, `QAudio` before (whose enums no longer compare
# equal). Touching `QAudio` also makes PySide register it: `stateChanged` passes a `QAudio::State`,
# which it cannot hand to Python slots before that.
_LEGACY_QAUDIO = QtMultimedia.QAudio
QAudio = getattr(QtMultimedia, "QtAudio", None) or _LEGACY_QAUDIO

MODEL_RATE = 16_000  # core.audio.MODEL_RATE
PLAYHEAD_INTERVAL_MS = 30

STOPPED, PLAYING, PAUSED = "stopped", "playing", "paused"

# What the transport says when nothing can be heard: no device, or only the sound server's stand-in.
NO_SOUND_DEVICE = "No sound device found — the comparison still works."
# The sink a sound server without a sound card offers (PulseAudio's module-always-sink, and
# pipewire-pulse): its id is the same in every language, its description ("Dummy Output") is translated.
DUMMY_OUTPUT_IDS = frozenset({b"auto_null"})
DUMMY_OUTPUT_DESCRIPTION = "Dummy Output"

_SINK_ERRORS = {
    QAudio.Error.OpenError: "the audio output could not be opened",
    QAudio.Error.IOError: "the audio output stopped taking data",
    QAudio.Error.FatalError: "the audio output failed",
}


def clip_format() -> QAudioFormat:
    audio_format = QAudioFormat()
    audio_format.setSampleRate(MODEL_RATE)
    audio_format.setChannelCount(1)
    audio_format.setSampleFormat(QAudioFormat.SampleFormat.Int16)
    return audio_format


def is_dummy_output(device) -> bool:
    """Whether an audio output is the sound server's stand-in for a missing sound card."""
    return bytes(device.id()) in DUMMY_OUTPUT_IDS or device.description() == DUMMY_OUTPUT_DESCRIPTION


def choose_output(outputs, default) -> tuple[object | None, str]:
    """The output to play through, from Qt's list of outputs and its default one, and why there is
    none when there is none ("" when there is one): the default unless it is a stand-in, else the
    first real output. `outputs` and `default` are `QAudioDevice`s (or anything with `id()`,
    `description()` and `isNull()`)."""
    real = [device for device in outputs if not device.isNull() and not is_dummy_output(device)]
    if not real:
        if any(not device.isNull() for device in outputs):
            names = ", ".join(sorted({device.description() for device in outputs if not device.isNull()}))
            return None, (f"The sound server offers only its {names}: it has no sound card, so nothing would be "
                          "heard.")
        return None, "QtMultimedia finds no audio output."
    if default is not None and not default.isNull() and any(default.id() == device.id() for device in real):
        return default, ""
    return real[0], ""


def to_pcm16(waveform: np.ndarray) -> bytes:
    """float32 in [-1, 1) as little-endian 16-bit samples (what the sink plays)."""
    return (np.clip(waveform, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


class ClipPlayer(QObject):
    stateChanged = Signal(str)  # STOPPED, PLAYING or PAUSED
    positionChanged = Signal(float)  # seconds into the clip
    availabilityChanged = Signal(bool, str)  # playback possible, and a sentence saying why (not)
    finished = Signal()  # the whole clip was played
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.format = clip_format()
        self.state = STOPPED
        self.duration = 0.0
        self.available = False
        self.reason = ""
        self.why_not = ""  # without a device: what Qt found instead, for the tooltip
        self.device = QAudioDevice()
        self.played_usecs = 0  # audio the sink consumed in the last playback, in microseconds
        self._pcm = QByteArray()
        self._buffer: QBuffer | None = None
        self._sink: QAudioSink | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(PLAYHEAD_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._devices = QMediaDevices(self)
        self._devices.audioOutputsChanged.connect(self.refresh_device)
        self.refresh_device()

    # -- the device ---------------------------------------------------------------------------------

    def refresh_device(self) -> None:
        """Look for an audio output again (at start, and whenever the system's outputs change)."""
        outputs = QMediaDevices.audioOutputs()
        device, why = choose_output(outputs, QMediaDevices.defaultAudioOutput() if outputs else None)
        self.why_not = why
        if device is None:
            device = QAudioDevice()
            available, reason = False, NO_SOUND_DEVICE
        elif not device.isFormatSupported(self.format):
            available, reason = False, f"{device.description()} cannot play 16 kHz mono audio: playback is off."
        else:
            available, reason = True, f"Plays through {device.description()}"
        self.device = device
        if (available, reason) != (self.available, self.reason):
            self.available, self.reason = available, reason
            if not available:
                self.stop()
            self.availabilityChanged.emit(available, reason)

    # -- the clip -----------------------------------------------------------------------------------

    def set_clip(self, clip: np.ndarray | bytes | None) -> None:
        """The clip to play: its 16 kHz samples, or those samples already as `to_pcm16` gives them
        (a long clip's are made on a worker); None: nothing."""
        self.stop()
        if clip is None:
            pcm = b""
        elif isinstance(clip, (bytes, bytearray)):
            pcm = bytes(clip)
        else:
            pcm = to_pcm16(clip)
        self._pcm = QByteArray(pcm)
        self.duration = len(pcm) / 2 / MODEL_RATE
        self.played_usecs = 0

    def has_clip(self) -> bool:
        return self._pcm.size() > 0

    # -- transport ----------------------------------------------------------------------------------

    def play(self) -> None:
        """Play from the start, or resume where it was paused."""
        if self.state == PAUSED and self._sink is not None:
            self._sink.resume()
            self._set_state(PLAYING)
            self._timer.start()
            return
        if self.state == PLAYING or not self.available or not self.has_clip():
            return
        self._release()
        self.played_usecs = 0
        self._buffer = QBuffer(self)
        self._buffer.setData(self._pcm)
        self._buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self._sink = QAudioSink(self.device, self.format, self)
        self._sink.stateChanged.connect(self._sink_state_changed)
        self._sink.start(self._buffer)
        if self._sink.error() != QAudio.Error.NoError:
            self._fail(self._sink.error())
            return
        self._set_state(PLAYING)
        self._timer.start()

    def pause(self) -> None:
        if self.state != PLAYING or self._sink is None:
            return
        self._sink.suspend()
        self._timer.stop()
        self._tick()
        self._set_state(PAUSED)

    def stop(self) -> None:
        self._timer.stop()
        if self._sink is not None:
            self.played_usecs = max(self.played_usecs, self._sink.processedUSecs())
        self._release()
        if self.state != STOPPED:
            self._set_state(STOPPED)
        self.positionChanged.emit(0.0)

    def position(self) -> float:
        """Seconds of the clip played so far."""
        if self._sink is None:
            return 0.0
        return min(self.duration, self._sink.processedUSecs() / 1e6)

    # -- internals ----------------------------------------------------------------------------------

    def _tick(self) -> None:
        self.positionChanged.emit(self.position())

    def _sink_state_changed(self, _state=None) -> None:
        sink = self._sink
        if sink is None:
            return
        state = sink.state()  # the sink's own, in QtAudio terms whatever the signal carried
        if state == QAudio.State.IdleState and self._buffer is not None and self._buffer.atEnd():
            # Everything was handed to the output: the clip has been played.
            self.played_usecs = sink.processedUSecs()
            self.positionChanged.emit(self.duration)
            self.stop()
            self.finished.emit()
        elif state == QAudio.State.StoppedState and sink.error() not in (QAudio.Error.NoError, QAudio.Error.UnderrunError):
            self._fail(sink.error())

    def _fail(self, error) -> None:
        self.stop()
        self.failed.emit(f"Playback stopped: {_SINK_ERRORS.get(error, 'the audio output reported an error')}.")

    def _release(self) -> None:
        sink, buffer = self._sink, self._buffer
        self._sink = self._buffer = None
        if sink is not None:
            sink.stateChanged.disconnect()
            sink.stop()
            sink.deleteLater()  # may be inside its own signal: delete once back in the event loop
        if buffer is not None:
            buffer.close()
            buffer.deleteLater()

    def _set_state(self, state: str) -> None:
        self.state = state
        self.stateChanged.emit(state)
