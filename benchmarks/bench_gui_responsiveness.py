"""Benchmark: how responsive the window stays on the small test models, phase by phase.

The tests prove by structure that no model code or bulk file I/O runs on the GUI thread
(tests/gui_thread_guard.py); this script measures what that buys, in a fresh process, offscreen:

  time to show          process start -> the window's first paint (torch not loaded yet)
  libraries             torch + transformers imported behind the window
  event-loop gaps       the largest interval between ticks of a 10 ms QTimer while the libraries
                        load, while a checkpoint opens, while it converts, while a clip is compared
                        (first comparison: both models are loaded; second: they are kept)

Figures move with the machine's load: run it on a quiet machine, several times (--runs).
The full-size figures (a 600M checkpoint) are bench_gui.py's.

Usage: python benchmarks/bench_gui_responsiveness.py [--runs N] [--model cs_s64|cs_s48] [--json FILE]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before Qt or Speechport is imported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "conformer_shaw"
CLIP = FIXTURES / "audio" / "s_speech_16k_mono.wav"
GAP_TARGET_MS = 100
PHASES = ("libraries", "open", "convert", "compare_first", "compare_again")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="cs_s64", choices=("cs_s64", "cs_s48"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    runs = []
    for run in range(args.runs):
        done = subprocess.run([sys.executable, __file__, "--child", "--model", args.model], capture_output=True,
                              text=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        if done.returncode != 0:
            print(f"run {run + 1} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
            return 2
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"the window on {args.model}, {args.runs} fresh processes (median, worst):")
    print(f"  shown after launch        {statistics.median(r['time_to_show_s'] for r in runs) * 1000:7.0f} ms "
          f"{max(r['time_to_show_s'] for r in runs) * 1000:7.0f} ms")
    print(f"  torch + transformers      {statistics.median(r['libraries_s'] for r in runs):7.2f} s  "
          f"{max(r['libraries_s'] for r in runs):7.2f} s")
    worst = 0.0
    for phase in PHASES:
        gaps = [r["largest_gap_ms"][phase] for r in runs]
        worst = max(worst, max(gaps))
        print(f"  largest gap, {phase:<13}{statistics.median(gaps):7.0f} ms {max(gaps):7.0f} ms")
    print(f"largest event-loop gap < {GAP_TARGET_MS} ms: {'met' if worst < GAP_TARGET_MS else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


def child(args) -> int:
    from PySide6.QtCore import QSettings

    from speechport.gui import MainWindow
    from speechport.gui.app import create_application
    from speechport.gui.shared.heartbeat import Heartbeat, run_until

    scratch = Path(tempfile.mkdtemp(prefix="speechport-bench-responsive-"))
    os.environ["XDG_CACHE_HOME"] = str(scratch / "cache")  # a cold target cache, as on first use
    try:
        app = create_application()
        window = MainWindow(settings=QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat),
                            output=scratch / "converted")
        window.show()
        app.processEvents()  # the first paint
        time_to_show = time.perf_counter() - STARTED
        heartbeat = Heartbeat(10)
        heartbeat.start()
        with heartbeat.phase("libraries"):
            window.start_loading_libraries()
            ok = run_until(lambda: window.libraries is not None, 600)
        with heartbeat.phase("open"):
            window.open_source(FIXTURES / "models" / args.model / "conformer_shaw_fs2.pt")
            ok = ok and run_until(lambda: window.prepared is not None and not window.busy(), 600)
        with heartbeat.phase("convert"):
            window.convert()
            ok = ok and run_until(lambda: not window.busy() and window.result is not None, 600)
        page = window.show_audition()
        page.choose_clip(CLIP)
        ok = ok and run_until(lambda: page.clip is not None and not page.compare_bar.blocker()[0], 600)
        for phase in ("compare_first", "compare_again"):
            with heartbeat.phase(phase):
                page.compare()
                ok = ok and run_until(lambda: page.compare_bar.task is None and page.comparison is not None, 600)
        heartbeat.stop()
        if not ok:
            print(f"a step did not finish: {window.message_bar.text.text()}", file=sys.stderr)
            return 2
        numbers = {
            "time_to_show_s": round(time_to_show, 3),
            "libraries_s": round(window.libraries.seconds, 3),
            "largest_gap_ms": {phase: round(heartbeat.phases[phase] * 1000, 1) for phase in PHASES},
        }
        window.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(numbers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
