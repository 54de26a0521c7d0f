import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Qt must pick its platform before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFORMER_SHAW = FIXTURES / "conformer_shaw"
S3PRL = FIXTURES / "s3prl"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def run_cli(capsys):
    """Run `speechport ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from speechport.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# -- a private audio server -----------------------------------------------------------------------
#
# The playback tests play through a PulseAudio server of their own whose only output is a null
# sink: nothing reaches a loudspeaker, and the sink's monitor records what was played. It is
# started when pytest starts (before anything can import QtMultimedia, which connects to the server
# named by PULSE_SERVER once) and stopped when pytest ends; without the `pulseaudio` binary the
# window runs without an audio output, and the tests that need one are skipped.

NULL_SINK = "speechport_null"


@dataclass
class AudioServer:
    process: subprocess.Popen
    directory: Path
    socket: Path
    sink: str = NULL_SINK

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"

    def record_monitor(self) -> subprocess.Popen:
        """Record what the null sink plays, as 16 kHz mono 16-bit samples on stdout (`parec`)."""
        return subprocess.Popen(
            ["parec", f"--server={self.address}", "-d", f"{self.sink}.monitor", "--format=s16le", "--rate=16000",
             "--channels=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )


_audio_server: AudioServer | None = None
_previous_pulse_server: str | None = None


def _start_audio_server() -> AudioServer | None:
    binary = shutil.which("pulseaudio")
    if binary is None:
        return None
    directory = Path(tempfile.mkdtemp(prefix="speechport-pulse-"))  # private: mode 0700
    socket = directory / "native"
    # Its own runtime, config and home folders: the daemon touches nothing of the user's.
    env = {**os.environ, "XDG_RUNTIME_DIR": str(directory), "XDG_CONFIG_HOME": str(directory), "HOME": str(directory)}
    env.pop("PULSE_SERVER", None)
    command = [
        binary, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes", "--use-pid-file=no",
        f"--load=module-null-sink sink_name={NULL_SINK}",
        f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
    ]
    with open(directory / "pulseaudio.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None and not _answers(socket):
        time.sleep(0.05)
    if process.poll() is not None or not _answers(socket):
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)
        return None
    return AudioServer(process, directory, socket)


def _answers(socket: Path) -> bool:
    if not socket.exists():
        return False
    if shutil.which("pactl") is None:
        return True
    done = subprocess.run(["pactl", f"--server=unix:{socket}", "info"], capture_output=True, timeout=10)
    return done.returncode == 0


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def pytest_configure(config):
    global _audio_server, _previous_pulse_server
    _audio_server = _start_audio_server()
    if _audio_server is not None:
        _previous_pulse_server = os.environ.get("PULSE_SERVER")
        os.environ["PULSE_SERVER"] = _audio_server.address


def pytest_unconfigure(config):
    global _audio_server
    if _audio_server is None:
        return
    _stop(_audio_server.process)
    shutil.rmtree(_audio_server.directory, ignore_errors=True)
    _audio_server = None
    if _previous_pulse_server is None:
        os.environ.pop("PULSE_SERVER", None)
    else:
        os.environ["PULSE_SERVER"] = _previous_pulse_server


@pytest.fixture(scope="session")
def audio_server() -> AudioServer | None:
    """The private PulseAudio server with its null sink, or None where it cannot run."""
    return _audio_server
