"""Looking at the packaged app from outside: a clean environment to run it in, a virtual screen whose
pixels can be read (Xvfb's framebuffer file), what the screen shows, and what a folder holds.

Used by tests/test_bundle.py and benchmarks/bench_bundle.py, which run the installed app as a user
would and can only watch it: no Python of theirs runs inside it.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# The "mapped" status icon's fill (resources/icons/status-mapped.svg): every mapped row of the table shows it.
MAPPED_GREEN = (0x2D, 0xA4, 0x4E)
COLOUR_TOLERANCE = 12  # per channel: the icon's inside is drawn in its exact colour, its rim is blended
ICON_HALF_WIDTH = 6  # the icon is drawn 16 px wide at most: a band this far either side of its middle


def clean_env(home: Path, display: str | None = None, path: str = "/usr/bin:/bin") -> dict[str, str]:
    """What `env -i PATH=… HOME=… DISPLAY=…` leaves a program: nothing of this checkout, its .venv or
    the test run (no PYTHONPATH, no XDG folders, no QT_QPA_PLATFORM)."""
    env = {"PATH": path, "HOME": str(home)}
    if display:
        env["DISPLAY"] = display
    return env


def env_i(env: dict[str, str], *command: str) -> list[str]:
    """The command run under `env -i` with exactly `env`."""
    return ["env", "-i", *(f"{key}={value}" for key, value in env.items()), *command]


# -- a virtual screen --------------------------------------------------------------------------------


class Screen:
    def __init__(self, display: str, framebuffer: Path, process: subprocess.Popen):
        self.display = display
        self.framebuffer = framebuffer
        self.process = process

    def pixels(self) -> np.ndarray:
        """What the screen shows now, as an H×W×3 array of 8-bit RGB."""
        return read_xwd(self.framebuffer.read_bytes())


@contextmanager
def virtual_screen(width: int, height: int):
    """An Xvfb server of its own (a free display number) that keeps its screen in a file (-fbdir)."""
    if shutil.which("Xvfb") is None:
        raise RuntimeError("Xvfb is not installed (.ci/setup installs it)")
    folder = Path(tempfile.mkdtemp(prefix="speechport-screen-"))
    number = next(n for n in range(90, 400) if not Path(f"/tmp/.X{n}-lock").exists()
                  and not Path(f"/tmp/.X11-unix/X{n}").exists())
    process = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", f"{width}x{height}x24", "-fbdir", str(folder),
                                "-nolisten", "tcp", "-noreset"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        framebuffer = folder / "Xvfb_screen0"
        deadline = time.monotonic() + 30  # only stops a server that never starts
        while not (Path(f"/tmp/.X11-unix/X{number}").exists() and _drawn(framebuffer)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb :{number} did not start")
            time.sleep(0.05)
        yield Screen(f":{number}", framebuffer, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _drawn(framebuffer: Path) -> bool:
    """The server has written its screen's header (the file exists, zeroed, a moment before)."""
    try:
        with framebuffer.open("rb") as file:
            start = file.read(8)
        return len(start) == 8 and 7 in (struct.unpack(">2I", start)[1], struct.unpack("<2I", start)[1])
    except (OSError, struct.error):
        return False


def read_xwd(data: bytes) -> np.ndarray:
    """An XWD image (X Window Dump, what Xvfb's framebuffer file holds) of 24 or 32 bits per pixel as
    H×W×3 RGB. Its header is 25 32-bit fields, in the byte order that makes file_version 7."""
    header = struct.unpack(">25I", data[:100])
    if header[1] != 7:
        header = struct.unpack("<25I", data[:100])
    if header[1] != 7:
        raise ValueError("not an XWD file (version 7)")
    header_size, width, height = header[0], header[4], header[5]
    byte_order, bits_per_pixel, bytes_per_line = header[7], header[11], header[12]
    red_mask, green_mask, blue_mask, ncolours = header[14], header[15], header[16], header[19]
    if bits_per_pixel != 32:
        raise ValueError(f"XWD of {bits_per_pixel} bits per pixel; a 24-bit screen keeps 32")
    start = header_size + 12 * ncolours
    rows = np.frombuffer(data, dtype=np.uint8, count=height * bytes_per_line, offset=start)
    words = rows.reshape(height, bytes_per_line)[:, : width * 4].copy().view(">u4" if byte_order else "<u4")
    words = words.reshape(height, width).astype(np.uint32)

    def channel(mask: int) -> np.ndarray:
        shift = (mask & -mask).bit_length() - 1
        return ((words & mask) >> shift).astype(np.uint8)

    return np.stack([channel(red_mask), channel(green_mask), channel(blue_mask)], axis=-1)


def mapped_rows(image: np.ndarray) -> int:
    """How many rows of the mapping table show the "mapped" icon: the separate runs of its colour down
    the one column of the screen where that colour is most."""
    close = np.all(np.abs(image.astype(np.int16) - np.array(MAPPED_GREEN, dtype=np.int16)) <= COLOUR_TOLERANCE, axis=-1)
    if not close.any():
        return 0
    column = int(np.argmax(close.sum(axis=0)))
    # Across the icon's width: its white tick crosses any one column of it.
    down = close[:, max(column - ICON_HALF_WIDTH, 0):column + ICON_HALF_WIDTH + 1].any(axis=1).astype(np.int8)
    return int(np.count_nonzero(np.diff(np.concatenate(([0], down))) == 1))


def distinct_colours(image: np.ndarray) -> int:
    """A blank or single-colour screen has one or two; a drawn window hundreds."""
    packed = (image[..., 0].astype(np.uint32) << 16) | (image[..., 1].astype(np.uint32) << 8) | image[..., 2]
    return int(np.unique(packed).size)


def save_png(image: np.ndarray, path: Path) -> Path:
    """The screen as a PNG, to look at when a check fails (Qt writes it; no image library needed)."""
    from PySide6.QtGui import QImage

    height, width, _ = image.shape
    data = np.ascontiguousarray(image)
    QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888).save(str(path))
    return path


# -- what a folder holds -----------------------------------------------------------------------------


def listing(folder: Path) -> dict[str, tuple]:
    """Every path under `folder` with its type, size, mode and modification time: two listings are equal
    only if nothing was added, removed, written or touched in between."""
    found = {}
    for directory, names, files in os.walk(folder):
        for name in names + files:
            path = Path(directory) / name
            info = path.lstat()
            found[str(path.relative_to(folder))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found
