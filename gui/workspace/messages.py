"""Where the panels say things: the log, the message bar, the status bar and the one-line internal
error. Panels call these methods; the window connects the signals to its widgets, so no panel
needs the window to speak."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

# A button beside a message: its text, what it does, its object name.
MessageButton = tuple[str, Callable[[], None], str]


class Messages(QObject):
    logged = Signal(str)  # one line for the log pane
    shown = Signal(str, str, object)  # kind (error, warning, success, info), text, list of MessageButton
    hidden = Signal()
    statusShown = Signal(str, int)  # text, milliseconds (0: until replaced; "": clear)
    internalError = Signal(str)  # the one line of an unexpected error, for a dialog

    def log(self, text: str) -> None:
        self.logged.emit(text)

    def show(self, kind: str, text: str, buttons: Sequence[MessageButton] = ()) -> None:
        self.shown.emit(kind, text, list(buttons))

    def error(self, text: str, kind: str = "error") -> None:
        """A message the user must read, also kept in the log."""
        self.show(kind, text)
        self.log(f"{kind}: {text}")

    def hide(self) -> None:
        self.hidden.emit()

    def status(self, text: str, milliseconds: int = 0) -> None:
        self.statusShown.emit(text, milliseconds)

    def internal_error(self, error: BaseException, traceback_text: str = "", doing: str = "") -> None:
        """An exception the core does not expect: one readable line, never a traceback."""
        where = f" while {doing}" if doing else ""
        text = f"internal error{where}: {type(error).__name__}: {error}"
        if traceback_text:
            log.error("%s\n%s", text, traceback_text)  # for developers, on stderr; not in the window
        self.log(text)
        self.show("error", text + " (the log has details of what was being done)")
        self.internalError.emit(text)
