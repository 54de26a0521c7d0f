"""The window appears before torch and transformers are imported, and they are imported behind it,
on a worker thread. Checked in a fresh interpreter (within the test session torch is already
imported), by what happens where — how long it takes is `benchmarks/bench_gui_responsiveness.py`'s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("PySide6")

SCRIPT = r"""
import json, os, sys, threading
os.environ["QT_QPA_PLATFORM"] = "offscreen"
importing = {}  # module -> the threads that imported it

def watch(event, args):
    if event == "import" and args[0] in ("torch", "transformers"):
        importing.setdefault(args[0], set()).add("gui" if threading.current_thread() is threading.main_thread() else "worker")

sys.addaudithook(watch)
from PySide6.QtCore import QSettings
from speechport.gui.app import create_application
from speechport.gui import MainWindow
app = create_application()
window = MainWindow(settings=QSettings(sys.argv[1], QSettings.Format.IniFormat))
window.show()
app.processEvents()  # the first paint
heavy_at_show = sorted(m for m in ("torch", "transformers") if m in sys.modules)
status_at_show = window.library_status.text()

from speechport.gui.shared.heartbeat import run_until
loaded = run_until(lambda: window.libraries is not None, 600)
print(json.dumps({"heavy_at_show": heavy_at_show, "status_at_show": status_at_show, "loaded": loaded,
                  "status_after": window.library_status.text(),
                  "importing": {name: sorted(where) for name, where in importing.items()}}))
window.close()
"""


@pytest.fixture(scope="module")
def cold_start(tmp_path_factory):
    settings = tmp_path_factory.mktemp("startup") / "settings.ini"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(settings)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_window_does_not_import_torch():
    code = "import sys, speechport.gui, speechport.gui.window.main_window, speechport.gui.app; " \
           "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_window_shows_first_then_loads_the_libraries_on_a_worker(cold_start):
    assert cold_start["heavy_at_show"] == []
    assert cold_start["status_at_show"] == "Loading torch and transformers…"
    assert cold_start["loaded"] and cold_start["status_after"] != cold_start["status_at_show"]
    # Both were imported, and only ever on a worker thread: the GUI thread never waited for them.
    assert cold_start["importing"] == {"torch": ["worker"], "transformers": ["worker"]}


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
