"""The Speechport window (PySide6): views, Qt models and workers over `speechport.core`.

Importing this package imports neither torch nor transformers (the window must appear at once);
`MainWindow` and `run_window` are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .shared import refcount_guard  # noqa: F401 - first, before any signal is emitted

__all__ = ["MainWindow", "run_window"]

if TYPE_CHECKING:
    from .app import run_window
    from .window.main_window import MainWindow


def __getattr__(name: str):
    if name == "MainWindow":
        from .window.main_window import MainWindow

        return MainWindow
    if name == "run_window":
        from .app import run_window

        return run_window
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
