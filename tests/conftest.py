import atexit
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Qt must pick its platform before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A user cache of the test run's own (the target and digest caches): starts empty, never the user's.
TEST_CACHE_HOME = tempfile.mkdtemp(prefix="speechport-test-cache-")
os.environ["XDG_CACHE_HOME"] = TEST_CACHE_HOME
atexit.register(shutil.rmtree, TEST_CACHE_HOME, True)
# The genuine-library witnesses the setup installed (CI installs fairseq2's): where the user's data folder
# says, found before the test run's own data folder replaces it below.
WITNESS_HOME = os.environ.get("SPEECHPORT_WITNESS_HOME") or str(
    Path(os.environ["XDG_DATA_HOME"] if os.path.isabs(os.environ.get("XDG_DATA_HOME", "")) else Path.home() / ".local/share")
    / "speechport" / "witnesses")
os.environ["SPEECHPORT_WITNESS_HOME"] = WITNESS_HOME
# ... and a data folder of its own, where the cache's signing key is made: never the user's key.
TEST_DATA_HOME = tempfile.mkdtemp(prefix="speechport-test-data-")
os.environ["XDG_DATA_HOME"] = TEST_DATA_HOME
atexit.register(shutil.rmtree, TEST_DATA_HOME, True)
os.environ.pop("SPEECHPORT_NO_CACHE", None)

import pytest  # noqa: E402  (after the environment above)

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

    def record_monitor(self) -> "MonitorRecording":
        """Record what the null sink plays, as 16 kHz mono 16-bit samples (`parec` on its monitor)."""
        return MonitorRecording(subprocess.Popen(
            ["parec", f"--server={self.address}", "-d", f"{self.sink}.monitor", "--format=s16le", "--rate=16000",
             "--channels=1", "--latency-msec=20"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        ))


class MonitorRecording:
    """What the null sink's monitor hears, read as it comes. The sink runs whether or not anything
    plays (no suspend-on-idle module is loaded), so the monitor streams silence from the moment the
    recording is up: the first bytes say it is, with no guess at how long that takes."""

    RATE = 16_000

    def __init__(self, process: subprocess.Popen):
        import threading

        self.process = process
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.process.stdout.read1(4096):
            with self._lock:
                self._chunks.append(chunk)

    def samples(self):
        import numpy as np

        with self._lock:
            data = b"".join(self._chunks)
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float64) / 32768

    def wait_until(self, condition, limit_s: float = 60.0) -> bool:
        """Wait until `condition(samples)` holds (the limit only ends a hang)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if condition(self.samples()):
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)


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


# A wait for the window ends as soon as its condition holds; its limit only turns a hang into a failure,
# so it is generous enough for a machine whose cores are busy with something else.
WAIT_LIMIT_MS = 180_000


def _generous_qt_waits() -> None:
    try:
        from pytestqt.qtbot import QtBot
    except ImportError:
        return
    for name in ("waitUntil", "waitSignal", "waitSignals", "waitExposed", "waitActive", "waitCallback"):
        getattr(QtBot, name).__kwdefaults__["timeout"] = WAIT_LIMIT_MS


def pytest_configure(config):
    global _audio_server, _previous_pulse_server
    _generous_qt_waits()
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


# -- the window, with every question answered by the test ---------------------------------------------
#
# Shared by every window test. Qt is imported inside the fixtures, so the tests that never open the
# window do not need it.


@pytest.fixture
def settings(tmp_path):
    """The window's QSettings, in a file of the test's own (recent files, layout, appearance)."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def answers(monkeypatch):
    """Answers for the window's questions and file dialogs. A question or dialog nobody expected
    fails the test, and so does an internal-error dialog unless `internal_errors_expected`."""
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    class Answers:
        def __init__(self):
            self.questions: list[tuple] = []  # (title, text, default button)
            self.reply = None  # the QMessageBox.StandardButton to give; None: no question is expected
            self.criticals: list[str] = []
            self.internal_errors_expected = False
            self.open_file = None  # the path the file dialogs return; None: no dialog is expected
            self.save_file = None  # "" answers as a cancelled dialog does
            self.folder = None

        def question(self, parent, title, text, buttons=None, default=None):
            self.questions.append((title, text, default))
            if self.reply is None:
                raise AssertionError(f"unexpected question: {title}: {text}")
            return self.reply

        def critical(self, parent, title, text, *args):
            self.criticals.append(text)
            if not self.internal_errors_expected:
                raise AssertionError(f"internal error shown: {text}")
            return QMessageBox.StandardButton.Ok

    answers = Answers()
    monkeypatch.setattr(QMessageBox, "question", answers.question)
    monkeypatch.setattr(QMessageBox, "critical", answers.critical)

    def open_file(*args, **kwargs):
        if answers.open_file is None:
            raise AssertionError("unexpected file dialog")
        return str(answers.open_file), ""

    def save_file(*args, **kwargs):
        if answers.save_file is None:
            raise AssertionError("unexpected save dialog")
        return str(answers.save_file), ""

    def folder(*args, **kwargs):
        if answers.folder is None:
            raise AssertionError("unexpected folder dialog")
        return str(answers.folder)

    monkeypatch.setattr(QFileDialog, "getOpenFileName", open_file)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_file)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", folder)
    return answers


@pytest.fixture
def make_window(qtbot, settings, answers):
    """`make_window(source=…, output=…)`: a shown MainWindow whose dialogs `answers` answers."""
    from speechport.gui import MainWindow

    def make(**kwargs):
        window = MainWindow(settings=settings, **kwargs)
        # When the test is over nobody is there to answer "Save your fixes?": they are left as saved.
        qtbot.addWidget(window, before_close_func=lambda w: w.undo_stack.setClean())
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        return window

    return make


# -- the GUI thread does no heavy work ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def gui_thread_guard(request):
    """In every test that drives Qt (it asks for `qtbot`), model code, bulk file I/O and the core's heavy
    entry points set off by the window must run on worker threads: the test fails otherwise
    (`gui_thread_guard.py` says how that is watched)."""
    if "qtbot" not in request.fixturenames:
        yield None
        return
    from gui_thread_guard import install

    guard = install()
    guard.trips.clear()
    guard.seen_on_workers.clear()
    guard.active = True
    try:
        yield guard
    finally:
        guard.active = False
    failure = guard.failure()
    guard.trips.clear()
    if failure:
        pytest.fail(failure, pytrace=False)
