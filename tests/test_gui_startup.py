"""The window appears at once (< 1 s) and stays responsive while torch and transformers load behind it.

Measured in a fresh interpreter, since within the test session torch is already imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("PySide6")

SCRIPT = r"""
import json, os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
started = time.perf_counter()
from PySide6.QtCore import QSettings
from speechport.gui.app import create_application
from speechport.gui import MainWindow
app = create_application()
window = MainWindow(settings=QSettings(sys.argv[1], QSettings.Format.IniFormat))
window.show()
app.processEvents()  # the first paint
shown = time.perf_counter() - started
heavy_at_show = sorted(m for m in ("torch", "transformers") if m in sys.modules)
status_at_show = window.library_status.text()

from speechport.gui.heartbeat import Heartbeat, run_until
heartbeat = Heartbeat(10)
heartbeat.start()
loaded = run_until(lambda: window.libraries is not None, 120)
gap = heartbeat.stop()
print(json.dumps({"shown_s": shown, "heavy_at_show": heavy_at_show, "status_at_show": status_at_show,
                  "loaded": loaded, "load_s": window.libraries.seconds if loaded else None,
                  "largest_gap_s": gap, "ticks": heartbeat.ticks}))
window.close()
"""


@pytest.fixture(scope="module")
def cold_start(tmp_path_factory):
    settings = tmp_path_factory.mktemp("startup") / "settings.ini"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(settings)], capture_output=True, text=True, env=env,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\ncold start: window shown in {result['shown_s'] * 1000:.0f} ms; torch + transformers loaded in "
          f"{result['load_s']:.2f} s behind it, largest event-loop gap {result['largest_gap_s'] * 1000:.0f} ms")
    return result


def test_importing_the_window_does_not_import_torch():
    code = "import sys, speechport.gui, speechport.gui.main_window, speechport.gui.app; " \
           "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_window_shows_in_under_a_second_then_loads_libraries(cold_start):
    assert cold_start["heavy_at_show"] == []
    assert cold_start["status_at_show"] == "Loading torch and transformers…"
    assert cold_start["shown_s"] < 1.0
    assert cold_start["loaded"]


def test_loading_torch_in_the_background_keeps_the_event_loop_running(cold_start):
    assert cold_start["ticks"] > 50
    assert cold_start["largest_gap_s"] < 0.1


RUN_WINDOW = r"""
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["XDG_CONFIG_HOME"] = sys.argv[1]  # the window's QSettings land in a scratch folder
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from speechport.gui.app import create_application, run_window

app = create_application()

def check():
    windows = [w for w in QApplication.topLevelWidgets() if w.objectName() == "speechportMainWindow"]
    if not windows or windows[0].prepared is None:
        QTimer.singleShot(50, check)
        return
    window = windows[0]
    print("rows", window.model.rowCount(), "visible", window.isVisible(), "icon", not app.windowIcon().isNull())
    window.close()

QTimer.singleShot(50, check)
QTimer.singleShot(120_000, app.quit)
print("exit", run_window(demo=True))
"""


def test_run_window_opens_the_demo_and_returns_when_closed(tmp_path):
    """What `speechport gui --demo` calls when a display exists."""
    done = subprocess.run([sys.executable, "-c", RUN_WINDOW, str(tmp_path)], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split("\n")
    assert "rows 77 visible True icon True" in lines
    assert "exit 0" in lines
