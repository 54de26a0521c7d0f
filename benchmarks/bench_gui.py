"""Benchmark: the window on a full-size model (conformer_shaw 600M, ~2.3 GB fp32 fairseq2 checkpoint).

Drives the real window offscreen, as a user would who starts `speechport gui CHECKPOINT`: the
window is created with the checkpoint, shown, the table filled, then the checkpoint converted to a
temporary folder through the window's worker. Twice, each in a fresh process: with an empty user
cache (cold: the target model is built with transformers, which the window waits for) and with
the target model in the cache (warm: the table fills while torch and transformers still load).

  time to show          process start -> the window's first paint (torch not loaded)
  libraries             torch + transformers imported in the background, after the window showed
  time to table filled  process start -> every plan row in the table; target < 1.5 s warm
  conversion            clicking Convert -> the report shown
  event-loop gaps       the largest interval between ticks of a 10 ms QTimer, while loading
                        (libraries + opening) and while converting; target < 100 ms
  memory                peak RSS (VmHWM; it counts the checkpoint's page-cache pages the mmap
                        touches) and peak private anonymous memory (RssAnon, sampled every 50 ms)

The checkpoint is built by `python benchmarks/bench_convert.py --build-only` (benchmarks/.data/).

Usage: python benchmarks/bench_gui.py [--checkpoint FILE] [--out-dir DIR] [--json FILE]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before Qt or Speechport is imported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO / "benchmarks" / ".data" / "conformer_shaw_600m_fs2.pt"
GAP_TARGET_S = 0.1
TABLE_TARGET_S = 1.5  # warm cache: process start -> table filled


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the temporary output folder goes (default: next to the checkpoint, "
                        "so tensors are copied file-to-file on one filesystem)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--show", action="store_true", help="use the real display instead of offscreen")
    parser.add_argument("--child", choices=("cold", "warm"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        print(f"no checkpoint at {args.checkpoint}: build it with python benchmarks/bench_convert.py --build-only",
              file=sys.stderr)
        return 2
    if args.child:
        return child(args)
    cache_home = Path(tempfile.mkdtemp(prefix="speechport-bench-gui-cache-"))
    results = {}
    try:
        for mode in ("cold", "warm"):  # the cold run fills the cache the warm one reads
            numbers_file = cache_home / f"{mode}.json"
            command = [sys.executable, __file__, "--child", mode, "--checkpoint", str(args.checkpoint),
                       "--json", str(numbers_file), *(["--out-dir", str(args.out_dir)] if args.out_dir else []),
                       *(["--show"] if args.show else [])]
            subprocess.run(["cat", str(args.checkpoint)], stdout=subprocess.DEVNULL, check=True)  # page cache warm
            done = subprocess.run(command, env={**os.environ, "XDG_CACHE_HOME": str(cache_home)})
            if done.returncode not in (0, 1) or not numbers_file.is_file():
                print(f"the {mode} run failed (exit {done.returncode})", file=sys.stderr)
                return 1
            results[mode] = json.loads(numbers_file.read_text())
    finally:
        shutil.rmtree(cache_home, ignore_errors=True)
    warm, cold = results["warm"], results["cold"]
    gaps = [numbers[key] for numbers in results.values() for key in ("largest_gap_load_ms", "largest_gap_convert_ms")]
    table_ok = warm["time_to_table_filled_s"] < TABLE_TARGET_S
    gap_ok = max(gaps) < GAP_TARGET_S * 1000
    print()
    print(f"{'':<24}{'cold cache':>12}{'warm cache':>12}")
    for label, key, scale, unit in (("time to show", "time_to_show_s", 1000, "ms"),
                                    ("libraries (background)", "libraries_s", 1, "s"),
                                    ("time to table filled", "time_to_table_filled_s", 1, "s"),
                                    ("conversion", "conversion_wall_s", 1, "s"),
                                    ("largest gap, loading", "largest_gap_load_ms", 1, "ms"),
                                    ("largest gap, convert", "largest_gap_convert_ms", 1, "ms"),
                                    ("peak private memory", "peak_rss_anon_mib", 1, "MiB")):
        print(f"{label:<24}{cold[key] * scale:>9.2f} {unit:<3}{warm[key] * scale:>8.2f} {unit}")
    print(f"table filled (warm) < {TABLE_TARGET_S:g} s after launch: {'met' if table_ok else 'NOT met'}; "
          f"event-loop gaps < {GAP_TARGET_S * 1000:.0f} ms: {'met' if gap_ok else 'NOT met'}")
    print(f"torch loaded when the warm table was filled: {warm['torch_loaded_at_table']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if table_ok and gap_ok else 1


def child(args) -> int:
    """One launch of the window, as `speechport gui CHECKPOINT` starts it."""
    if not args.show:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtCore import QSettings, QTimer

    from speechport.gui import MainWindow
    from speechport.gui.app import create_application
    from speechport.gui.shared.heartbeat import Heartbeat, run_until

    scratch = Path(tempfile.mkdtemp(prefix="speechport-bench-gui-", dir=args.out_dir or args.checkpoint.parent))
    try:
        app = create_application()
        window = MainWindow(settings=QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat),
                            source=args.checkpoint, output=scratch / "converted")
        window.show()
        app.processEvents()  # the first paint
        time_to_show = time.perf_counter() - STARTED
        heavy_at_show = [m for m in ("torch", "transformers") if m in sys.modules]
        # From here on the event loop runs: how long it goes without handling events is measured.
        heartbeat = Heartbeat(10)
        heartbeat.start()
        anon_peak = [0]
        sampler = QTimer()
        sampler.timeout.connect(lambda: anon_peak.__setitem__(0, max(anon_peak[0], _proc_status_kib("RssAnon"))))
        sampler.start(50)
        with heartbeat.phase("load"):
            if not run_until(lambda: window.prepared is not None and window.model.rowCount() > 0, 600):
                print(f"the checkpoint did not open: {window.message_bar.text.text()}", file=sys.stderr)
                return 2
            table_filled = time.perf_counter() - STARTED
            torch_at_table = "torch" in sys.modules and "transformers" in sys.modules
            run_until(lambda: not window.busy() and window.libraries is not None, 600)  # the libraries are in
        rows = window.model.rowCount()
        libraries_s = window.libraries.seconds if window.libraries else float("nan")
        prepare_timings = dict(window.prepared.timings)

        with heartbeat.phase("convert"):
            convert_at = time.perf_counter()
            window.convert()
            run_until(lambda: not window.busy(), 1800)
            conversion_s = time.perf_counter() - convert_at
        heartbeat.stop()
        sampler.stop()
        if window.result is None:
            print(f"the conversion failed: {window.message_bar.text.text()}", file=sys.stderr)
            return 2
        weights = window.result.weights
        numbers = {
            "mode": args.child,
            "checkpoint": str(args.checkpoint),
            "checkpoint_bytes": args.checkpoint.stat().st_size,
            "plan_rows": rows,
            "time_to_show_s": round(time_to_show, 3),
            "torch_loaded_at_show": bool(heavy_at_show),
            "torch_loaded_at_table": torch_at_table,
            "libraries_s": round(libraries_s, 3),
            "time_to_table_filled_s": round(table_filled, 3),
            "prepare_timings_s": {k: round(v, 3) for k, v in prepare_timings.items()},
            "conversion_wall_s": round(conversion_s, 3),
            "conversion_core_s": round(window.result.seconds, 3),
            "written_bytes": weights.total_bytes,
            "largest_gap_load_ms": round(heartbeat.phases["load"] * 1000, 1),
            "largest_gap_convert_ms": round(heartbeat.phases["convert"] * 1000, 1),
            "peak_rss_mib": round(_proc_status_kib("VmHWM") / 1024, 1),
            "peak_rss_anon_mib": round(anon_peak[0] / 1024, 1),
        }
        window.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.child}: table filled {numbers['time_to_table_filled_s']:.2f} s after launch "
          f"(prepare: {numbers['prepare_timings_s']}), conversion {numbers['conversion_wall_s']:.2f} s, "
          f"gaps {numbers['largest_gap_load_ms']:.0f} / {numbers['largest_gap_convert_ms']:.0f} ms")
    args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
