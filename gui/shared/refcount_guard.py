"""A guard against a reference-counting bug of PySide6 6.12 on Python 3.11 and older.

There, `SignalInstance.emit()` returns `True` without a new reference, and notifications of
graphics items hand `None` back the same way: every signal emitted from Python (the window's own,
and pyqtgraph's on every pan, zoom and playhead move) takes one reference from `True` or `None`
that was never given. Once the count reaches zero the interpreter aborts ("Fatal Python error:
bool_dealloc"), mid-session or on exit. Python 3.12 made these objects immortal; here they get a
reference count no process can use up, which has the same effect. It is applied only where a
probe shows the bug.
"""

from __future__ import annotations

import ctypes
import sys

_RESERVE = 1 << 40  # references: more than any session takes


def _emit_loses_a_reference() -> bool:
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.ping.emit()
    return sys.getrefcount(True) < before


def guard() -> bool:
    """Give None, True and False references to spare where PySide takes them away; True if it did."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # immortal there
    if not _emit_loses_a_reference():
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object.
        ctypes.c_ssize_t.from_address(id(singleton)).value += _RESERVE
    return True


GUARDED = guard()
