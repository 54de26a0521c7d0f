"""Benchmark: the desktop package (packaging/build-linux) as someone downloading it meets it.

  build time            packaging/build-linux from this checkout (PyInstaller, then the .deb and the
                        tarball packed side by side), as the build itself reports it
  sizes                 the .deb and the tarball as downloaded, the app folder as installed
  launch to table       `speechport gui --demo` started from the menu's command (the installed package,
                        run with only PATH, HOME and DISPLAY) -> the mapping table filled on the screen
                        (at least 10 rows showing the mapped icon, read from Xvfb's framebuffer every
                        20 ms). Cold: a new user (empty home: no cache, no settings) with the page cache
                        dropped when this machine lets us; warm: the same user again, median of 3.
  exclusions            with --exclusions: PyInstaller run once more per group of the spec's EXCLUDED,
                        that group kept in (SPEECHPORT_BUNDLE_KEEP), and the app folder's growth

Installs the package with apt-get when it is not installed (root, or sudo without a password).

Usage: python benchmarks/bench_bundle.py [--build] [--exclusions] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bundle_support import clean_env, env_i, mapped_rows, virtual_screen  # noqa: E402

BUILD = REPO / "packaging" / "build-linux"
SPEC = REPO / "packaging" / "speechport.spec"
PREFIX = Path(re.search(r"^PREFIX=(\S+)", BUILD.read_text(), re.M).group(1))
TABLE_ROWS = 10
POLL_S = 0.02
LIMIT_S = 300


def _version() -> str:
    return re.search(r'^__version__ = "(.*)"$', (REPO / "__init__.py").read_text(), re.M).group(1)


def _packages() -> tuple[Path, Path]:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    return (REPO / "dist" / f"speechport_{_version()}_{arch}.deb",
            REPO / "dist" / f"speechport-{_version()}-linux-{os.uname().machine}.tar.gz")


def _root(*command: str) -> list[str]:
    return list(command) if os.geteuid() == 0 else ["sudo", "-n", *command]


def _folder_bytes(folder: Path) -> int:
    return sum(path.lstat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def build() -> dict:
    started = time.perf_counter()
    done = subprocess.run([str(BUILD)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "SPEECHPORT_BUILD_VENV": sys.prefix})
    if done.returncode != 0:
        raise SystemExit(f"build-linux failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    said = re.search(r"PyInstaller (\d+) s, packing (\d+) s", done.stdout)
    return {"build_s": round(time.perf_counter() - started, 1), "pyinstaller_s": int(said.group(1)),
            "packing_s": int(said.group(2))}


def install(deb: Path) -> None:
    subprocess.run(_root("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--reinstall",
                         str(deb)), check=True, capture_output=True)


def _drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def launch_to_table(home: Path, screen) -> float:
    """Seconds from starting the installed app on the demo to the mapping table filled on screen."""
    started = time.perf_counter()
    app = subprocess.Popen(env_i(clean_env(home, screen.display), "speechport", "gui", "--demo"), cwd=home,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < LIMIT_S:
            if mapped_rows(screen.pixels()) >= TABLE_ROWS:
                return time.perf_counter() - started
            if app.poll() is not None:
                raise SystemExit(f"the app exited ({app.returncode}) before the table was filled")
            time.sleep(POLL_S)
        raise SystemExit(f"no filled table after {LIMIT_S} s")
    finally:
        app.terminate()
        app.wait(60)


def launches() -> dict:
    home = Path(tempfile.mkdtemp(prefix="speechport-bench-home-"))
    try:
        with virtual_screen(1280, 800) as screen:
            dropped = _drop_page_cache()
            cold = launch_to_table(home, screen)
            warm = [launch_to_table(home, screen) for _ in range(3)]
        return {"cold_s": round(cold, 2), "page_cache_dropped": dropped, "warm_s": [round(s, 2) for s in warm],
                "warm_median_s": round(statistics.median(warm), 2)}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def exclusion_groups() -> list[str]:
    text = SPEC.read_text()
    block = text[text.index("EXCLUDED = {"):text.index("\n}\n", text.index("EXCLUDED = {"))]
    return re.findall(r'^    "([^"]+)": \{', block, re.M)


def exclusions() -> dict:
    """The app folder built with each group of exclusions kept in, against the folder as built."""
    sizes = {}
    for kept in [""] + exclusion_groups():
        out = Path(tempfile.mkdtemp(prefix="speechport-bench-build-"))
        try:
            subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "ERROR", "--distpath",
                            str(out / "dist"), "--workpath", str(out / "work"), str(SPEC)], cwd=REPO, check=True,
                           env={**os.environ, "SPEECHPORT_BUNDLE_KEEP": kept}, capture_output=True)
            sizes[kept] = _folder_bytes(out / "dist" / "speechport")
        finally:
            shutil.rmtree(out, ignore_errors=True)
    base = sizes.pop("")
    return {"app_folder_MiB": round(base / 2**20, 1),
            "saved_MiB": {group: round((size - base) / 2**20, 1) for group, size in sizes.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="build the package first (else the one in dist/)")
    parser.add_argument("--exclusions", action="store_true", help="measure what each group of exclusions saves")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args()
    results: dict = {}
    deb, tarball = _packages()
    if args.build or not deb.exists():
        results["build"] = build()
    install(deb)
    results["sizes_MiB"] = {"deb": round(deb.stat().st_size / 2**20, 1),
                            "tarball": round(tarball.stat().st_size / 2**20, 1) if tarball.exists() else None,
                            "installed": round(_folder_bytes(PREFIX) / 2**20, 1)}
    results["launch_to_table"] = launches()
    if args.exclusions:
        results["exclusions"] = exclusions()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
