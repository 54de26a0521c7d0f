"""Playing the clip in the Audition tab: what is heard, and what is said when nothing can be.

Playback goes through the private PulseAudio server of conftest.py, whose only output is a null
sink that the test records; a second server of the test's own, with no sink at all, offers only
PulseAudio's "Dummy Output" (what a machine without a sound card gets), which must count as no
device. Without the `pulseaudio` binary those two are skipped, except on CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

import numpy as np  # noqa: E402
from PySide6.QtCore import QByteArray, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QPushButton  # noqa: E402

from speechport.gui.audition.audio_player import NO_SOUND_DEVICE, choose_output, is_dummy_output  # noqa: E402

from conftest import CONFORMER_SHAW, NULL_SINK, _answers, _stop  # noqa: E402
from gui_support import choose_clip, compare, open_audition  # noqa: E402
from support import checkpoint_path  # noqa: E402

SHORT = CONFORMER_SHAW / "audio" / "s_short_0p3s_16k.flac"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.core.conversion import convert, prepare

    return convert(prepare(checkpoint_path("cs_s64")), tmp_path_factory.mktemp("playback") / "cs_s64").output


class Device:
    """What Qt says of an audio output, for the device choice (QAudioDevice cannot be made with a
    description of one's own)."""

    def __init__(self, device_id: bytes, description: str, null: bool = False):
        self._id, self._description, self._null = device_id, description, null

    def id(self) -> QByteArray:
        return QByteArray(self._id)

    def description(self) -> str:
        return self._description

    def isNull(self) -> bool:
        return self._null

    def isFormatSupported(self, _format) -> bool:
        return True


DUMMY = Device(b"auto_null", "Dummy Output")


def _need_pulseaudio() -> str:
    binary = shutil.which("pulseaudio")
    if binary is None:
        # CI installs PulseAudio (.ci/setup), so there the real playback path must run.
        assert not os.environ.get("CI"), "CI must provide a PulseAudio server: `pulseaudio` is not installed"
        pytest.skip("no PulseAudio to play to (conftest.py starts one where `pulseaudio` is installed)")
    return binary


# -- which device, and what is said without one ---------------------------------------------------


def test_the_sound_servers_dummy_output_is_no_device_and_a_real_one_is_chosen_over_it():
    speakers = Device(b"alsa_output.pci-0000_00_1f.3.analog-stereo", "Built-in Audio Analog Stereo")
    assert is_dummy_output(DUMMY) and not is_dummy_output(speakers)
    # By its id in any language, by its description where a server names it so.
    assert is_dummy_output(Device(b"auto_null", "Dummy-Ausgabe")) and is_dummy_output(Device(b"x", "Dummy Output"))
    assert choose_output([DUMMY, speakers], DUMMY) == (speakers, "")  # the default is the dummy: the real one plays
    assert choose_output([speakers, DUMMY], speakers) == (speakers, "")
    device, why = choose_output([DUMMY], DUMMY)
    assert device is None and why == ("The sound server offers only its Dummy Output: it has no sound card, so "
                                      "nothing would be heard.")
    assert choose_output([], None) == (None, "QtMultimedia finds no audio output.")
    assert choose_output([Device(b"", "", null=True)], None)[0] is None
    # A null sink someone made on purpose (the tests' own) is a device: what it plays can be recorded.
    null_sink = Device(NULL_SINK.encode(), "Null Output")
    assert choose_output([null_sink], null_sink) == (null_sink, "")


@pytest.mark.parametrize("outputs", [[], [DUMMY]], ids=["no output", "only a dummy output"])
def test_without_a_sound_device_play_is_off_says_why_and_comparing_works(make_window, qtbot, converted, tmp_path,
                                                                         monkeypatch, outputs):
    from PySide6.QtMultimedia import QMediaDevices

    monkeypatch.setattr(QMediaDevices, "audioOutputs", lambda: list(outputs))
    monkeypatch.setattr(QMediaDevices, "defaultAudioOutput", lambda: outputs[0] if outputs else Device(b"", "", True))
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted)
    choose_clip(qtbot, page, SHORT)
    play = page.findChild(QPushButton, "playButton")
    status = page.findChild(QLabel, "playbackStatus")
    assert not play.isEnabled() and not page.findChild(QPushButton, "stopButton").isEnabled()
    assert status.text() == NO_SOUND_DEVICE == "No sound device found — the comparison still works."
    window.resize(1024, 700)  # said whole on a line of its own, even at the smallest size the window supports
    QApplication.sendPostedEvents()
    QApplication.processEvents()
    assert status.isVisible() and not status.is_elided(), status.shown_text()
    assert "Plays through" not in status.text()
    assert play.toolTip().startswith(NO_SOUND_DEVICE) and play.toolTip().endswith("the comparison does not need sound.")
    if outputs:
        assert "only its Dummy Output" in play.toolTip()
    page.transport.toggle()  # the shortcut does nothing either
    assert page.player.state == "stopped" and page.timeline.waveform.playhead.isVisible() is False
    assert compare(qtbot, page).startswith("✓ pass")


WINDOW_SCRIPT = r"""
import sys
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from speechport.gui import MainWindow
from speechport.gui.shared.heartbeat import run_until
app = QApplication([])
window = MainWindow(settings=QSettings(sys.argv[1], QSettings.Format.IniFormat))  # not shown: torch stays unloaded
page = window.show_audition()
page.findChild(type(page.chooser.demo_button), "demoClipsButton").menu().actions()[0].trigger()
assert run_until(lambda: page.clip is not None, 20)
print(page.transport.play_button.isEnabled(), page.transport.status.text(), page.clip.seconds > 1,
      bytes(page.player.device.id()).decode(), sep="|")
window.close()
"""


def run_window_with_pulse_server(tmp_path: Path, server: str) -> list[str]:
    """A fresh window process whose QtMultimedia talks to the PulseAudio server at `server`: what its
    transport says (Play enabled, status, clip read, device id)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PULSE_SERVER": server}
    done = subprocess.run([sys.executable, "-c", WINDOW_SCRIPT, str(tmp_path / "settings.ini")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1].split("|")


def test_with_no_audio_server_play_is_off_in_a_real_window(tmp_path):
    """QtMultimedia itself finding no output (PulseAudio unreachable), in a fresh process."""
    enabled, status, has_clip, _device = run_window_with_pulse_server(tmp_path, f"unix:{tmp_path / 'no-server'}")
    assert enabled == "False" and status == NO_SOUND_DEVICE and has_clip == "True"


def test_a_sound_server_without_a_sound_card_is_no_device_in_a_real_window(tmp_path):
    """A PulseAudio server with no sink of its own offers its "Dummy Output" (module-always-sink's
    auto_null), which QtMultimedia lists as a device: the window must not play into it."""
    binary = _need_pulseaudio()
    folder = Path(tempfile.mkdtemp(prefix="speechport-pulse-dummy-"))
    socket = folder / "native"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(folder), "XDG_CONFIG_HOME": str(folder), "HOME": str(folder)}
    env.pop("PULSE_SERVER", None)
    process = subprocess.Popen(
        [binary, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes", "--use-pid-file=no",
         "--load=module-always-sink", f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        import time

        deadline = time.monotonic() + 30  # only ends a hang: the server answers as soon as it is up
        while time.monotonic() < deadline and process.poll() is None and not _answers(socket):
            time.sleep(0.05)
        assert _answers(socket), "the test's PulseAudio server did not start"
        sinks = subprocess.run(["pactl", f"--server=unix:{socket}", "list", "short", "sinks"], capture_output=True,
                               text=True, timeout=30).stdout
        assert sinks.split("\t")[1] == "auto_null", sinks  # the server's stand-in, and nothing else
        enabled, status, has_clip, device = run_window_with_pulse_server(tmp_path, f"unix:{socket}")
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)
    assert enabled == "False" and status == NO_SOUND_DEVICE and has_clip == "True" and device == ""


# -- what is heard ---------------------------------------------------------------------------------


def test_playing_a_clip_really_plays_it_through_the_audio_server(make_window, qtbot, audio_server):
    if audio_server is None:
        assert not os.environ.get("CI"), "CI must provide a PulseAudio server: `pulseaudio` did not start"
        pytest.skip("no PulseAudio server to play to (conftest.py starts one where `pulseaudio` is installed)")
    window = make_window()
    page = window.show_audition()
    player = page.player
    assert player.available, player.reason
    # The real device of the server: its null sink, named so, not a stand-in.
    assert bytes(player.device.id()) == NULL_SINK.encode() and not is_dummy_output(player.device)
    assert page.findChild(QLabel, "playbackStatus").text() == "Plays through Null Output"
    choose_clip(qtbot, page, SHORT)
    play = page.findChild(QPushButton, "playButton")
    stop = page.findChild(QPushButton, "stopButton")
    pause = page.findChild(QPushButton, "pauseButton")
    assert play.isEnabled() and not stop.isEnabled()
    positions = []
    playhead_shown = []
    player.positionChanged.connect(positions.append)
    player.positionChanged.connect(lambda _s: playhead_shown.append(page.timeline.waveform.playhead.isVisible()))

    recorder = audio_server.record_monitor()
    clip = page.clip

    def loud(samples):
        return samples[np.abs(samples) > 1e-3]

    try:
        assert recorder.wait_until(lambda samples: len(samples) > 0), "the sink's monitor never started"
        silence_before = len(loud(recorder.samples()))
        qtbot.mouseClick(play, Qt.MouseButton.LeftButton)
        assert player.state == "playing" and pause.isEnabled() and stop.isEnabled() and not play.isEnabled()
        qtbot.waitUntil(lambda: player.state == "stopped")
        # What reached the sink reaches its monitor a moment later: wait for it (the limit ends a hang).
        recorder.wait_until(lambda samples: len(loud(samples)) > 0.5 * len(clip.waveform))
    finally:
        recorder.stop()
    assert silence_before == 0  # the monitor was silent until Play
    # The sink consumed the whole clip: processedUSecs() reached its duration.
    assert player.played_usecs >= clip.seconds * 1e6 * 0.98, (player.played_usecs, clip.seconds)
    assert max(positions) == pytest.approx(clip.seconds, abs=0.02) and any(playhead_shown)
    assert not page.timeline.waveform.playhead.isVisible() and play.isEnabled()
    # And what it played was the clip, not silence: the sink's monitor heard it.
    heard = loud(recorder.samples())
    clip_rms = float(np.sqrt(np.mean(clip.waveform.astype(np.float64) ** 2)))
    assert len(heard) > 0.5 * len(clip.waveform), (len(heard), len(clip.waveform))
    assert float(np.sqrt(np.mean(heard ** 2))) > 0.3 * clip_rms

    # Pause keeps the place, Play resumes, Stop goes back to the start.
    qtbot.mouseClick(play, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    assert player.state == "paused" and play.text() == "Resume"
    qtbot.mouseClick(play, Qt.MouseButton.LeftButton)
    assert player.state == "playing"
    qtbot.mouseClick(stop, Qt.MouseButton.LeftButton)
    assert player.state == "stopped" and play.text() == "Play" and player.position() == 0.0
    assert page.findChild(QLabel, "playbackTime").text() == f"0:00.0 / 0:{clip.seconds:04.1f}"


def test_the_clip_time_reads_minutes_seconds_and_tenths_for_both():
    from speechport.gui.audition.transport_bar import TransportBar, clock

    assert TransportBar._times(0.0, 110.0) == "0:00.0 / 1:50.0"
    assert TransportBar._times(1.54, 4.16) == "0:01.5 / 0:04.2"
    assert clock(59.96) == "1:00.0" and clock(3599.9) == "59:59.9"
