"""The core's heavy entry points say so: loading models, reading or writing tensors, hashing files.

`@heavy("what it does")` marks a function whose call may take seconds. Checks registered with
`add_check` are told before each call; none are registered in normal use, so a marked call costs one
empty loop. The window's tests register one that fails a test when such a call starts on the GUI
thread — the core itself knows nothing of Qt.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

_checks: list[Callable[[str], None]] = []


def add_check(check: Callable[[str], None]) -> None:
    if check not in _checks:
        _checks.append(check)


def remove_check(check: Callable[[str], None]) -> None:
    if check in _checks:
        _checks.remove(check)


def heavy(what: str):
    def mark(function):
        @functools.wraps(function)
        def call(*args, **kwargs):
            for check in _checks:
                check(f"{what} ({function.__module__}.{function.__qualname__})")
            return function(*args, **kwargs)

        return call

    return mark
