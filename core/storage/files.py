"""Checking what a path is before opening it.

Opening a FIFO, a socket or a device for reading can block forever (a FIFO waits for a writer),
so every file Speechport reads is first `stat`-ed, without opening it, and must be a regular file;
a folder is accepted only where a folder is expected.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import BadInput

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def describe_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    for test, what in _KINDS:
        if test(mode):
            return what
    return "not a regular file"


def unreadable(path: str | os.PathLike, exc: OSError, what: str = "file") -> BadInput:
    """The sentence for an OSError met while reading `path`."""
    if isinstance(exc, FileNotFoundError):
        return BadInput(f"{path}: no such {what}")
    if isinstance(exc, PermissionError):
        return BadInput(f"{path}: permission denied")
    return BadInput(f"{path}: cannot be read ({exc.strerror or exc})")


def _mode(path: Path, what: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError as exc:
        raise unreadable(path, exc, what) from None


def regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """`path` if it is a regular file (symbolic links followed); `BadInput` naming what it is otherwise."""
    path = Path(path)
    mode = _mode(path, what)
    if stat.S_ISREG(mode):
        return path
    if stat.S_ISDIR(mode):
        raise BadInput(f"{path}: is a folder, not {_article(what)} {what}")
    raise BadInput(f"{path}: is {describe_mode(mode)}, not a regular file; {_article(what)} {what} was expected")


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"
