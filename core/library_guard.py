"""Work that must not import torch or transformers on this thread.

The window opens a checkpoint on a worker thread while torch and transformers load on another, with
precautions that keep the window fluid (`gui.workers.load_libraries`). Opening a known architecture
needs neither library; when the work turns out to need one (a target the cache does not hold, a
checkpoint only `torch.load` reads), it stops with `NeedsLibraries` instead of importing it there,
and the window opens it again once the libraries are in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.local()


class NeedsLibraries(Exception):
    """Raised inside `without_libraries()` where torch or transformers would be imported."""

    def __init__(self, what: str):
        super().__init__(f"{what} needs torch and transformers")
        self.what = what


@contextmanager
def without_libraries() -> Iterator[None]:
    """On this thread, until the block ends, `need_libraries` raises instead of letting an import happen."""
    before = getattr(_state, "forbidden", False)
    _state.forbidden = True
    try:
        yield
    finally:
        _state.forbidden = before


def need_libraries(what: str) -> None:
    """Say that the next step imports torch or transformers (`what` it is for)."""
    if getattr(_state, "forbidden", False):
        raise NeedsLibraries(what)
