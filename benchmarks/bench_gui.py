"""Benchmark: the window on a full-size model (conformer_shaw 600M, ~2.3 GB fp32 fairseq2 checkpoint).

Drives the real window offscreen, as a user would: show it, open the checkpoint, convert it to a
temporary folder through the window's worker, and measure

  time to show          process start of this script -> the window's first paint (torch not loaded)
  libraries             torch + transformers imported in the background, after the window showed
  time to table filled  opening the checkpoint -> every plan row in the table (includes waiting
                        for the libraries when they are not loaded yet, as on a cold start)
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
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO / "benchmarks" / ".data" / "conformer_shaw_600m_fs2.pt"
GAP_TARGET_S = 0.1


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
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        print(f"no checkpoint at {args.checkpoint}: build it with python benchmarks/bench_convert.py --build-only",
              file=sys.stderr)
        return 2
    if not args.show:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtCore import QSettings, QTimer

    from speechport.gui import MainWindow
    from speechport.gui.app import create_application
    from speechport.gui.heartbeat import Heartbeat, run_until

    scratch = Path(tempfile.mkdtemp(prefix="speechport-bench-gui-", dir=args.out_dir or args.checkpoint.parent))
    try:
        app = create_application()
        window = MainWindow(settings=QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat),
                            output=scratch / "converted")
        window.show()
        app.processEvents()  # the first paint
        time_to_show = time.perf_counter() - STARTED
        heavy_at_show = [m for m in ("torch", "transformers") if m in sys.modules]

        anon_peak = [0]
        sampler = QTimer()
        sampler.timeout.connect(lambda: anon_peak.__setitem__(0, max(anon_peak[0], _proc_status_kib("RssAnon"))))
        sampler.start(50)
        heartbeat = Heartbeat(10)
        heartbeat.start()

        with heartbeat.phase("load"):
            opened_at = time.perf_counter()
            window.open_source(args.checkpoint)
            if not run_until(lambda: window.prepared is not None and not window.busy(), 600):
                print(f"the checkpoint did not open: {window.message_bar.text.text()}", file=sys.stderr)
                return 1
            table_filled = time.perf_counter() - opened_at
        rows = window.model.rowCount()
        libraries_s = window.libraries.seconds
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
            return 1
        weights = window.result.weights
        numbers = {
            "checkpoint": str(args.checkpoint),
            "checkpoint_bytes": args.checkpoint.stat().st_size,
            "plan_rows": rows,
            "time_to_show_s": round(time_to_show, 3),
            "torch_loaded_at_show": bool(heavy_at_show),
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

    gap_ok = max(numbers["largest_gap_load_ms"], numbers["largest_gap_convert_ms"]) < GAP_TARGET_S * 1000
    print(f"checkpoint            {numbers['checkpoint']} ({numbers['checkpoint_bytes'] / 1e9:.2f} GB, {rows} plan rows)")
    print(f"time to show          {numbers['time_to_show_s'] * 1000:.0f} ms (torch loaded at show: {numbers['torch_loaded_at_show']})")
    print(f"libraries             {numbers['libraries_s']:.2f} s in the background")
    print(f"time to table filled  {numbers['time_to_table_filled_s']:.2f} s (prepare: {numbers['prepare_timings_s']})")
    print(f"conversion            {numbers['conversion_wall_s']:.2f} s wall ({numbers['written_bytes'] / 1e9:.2f} GB written)")
    print(f"largest gap, loading  {numbers['largest_gap_load_ms']:.0f} ms")
    print(f"largest gap, convert  {numbers['largest_gap_convert_ms']:.0f} ms   (target < {GAP_TARGET_S * 1000:.0f} ms: "
          f"{'met' if gap_ok else 'NOT met'})")
    print(f"peak RSS              {numbers['peak_rss_mib']:.0f} MiB (private anonymous: {numbers['peak_rss_anon_mib']:.0f} MiB)")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0 if gap_ok else 1


if __name__ == "__main__":
    sys.exit(main())
