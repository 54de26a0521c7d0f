"""Starting the window: the QApplication, its icon and palette, and `run_window` (what `speechport gui` calls)."""

from __future__ import annotations

import signal
import sys
import traceback
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from .. import __version__
from ..core.demo import DEMO_CHECKPOINT
from ..core.errors import SpeechportError
from .shared import theme
from .window.main_window import MainWindow


def create_application(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication (created once), named for QSettings, with the icon and palette set."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Speechport")
    app.setOrganizationName("Speechport")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("speechport")
    app.setWindowIcon(theme.app_icon())
    appearance = str(QSettings("Speechport", "Speechport").value("appearance", "system"))
    theme.apply_appearance(app, appearance if appearance in theme.APPEARANCES else "system")
    return app


def run_window(
    source: str | Path | None = None,
    config: str | Path | None = None,
    base_model: str | Path | None = None,
    output: str | Path | None = None,
    demo: bool = False,
) -> int:
    """Open the main window (on the demo checkpoint with `demo`) and run until it closes."""
    app = create_application()
    if demo and not source:
        source = DEMO_CHECKPOINT
    window = MainWindow(source=source, config=config, base_model=base_model, output=output)
    _report_uncaught_errors(window)
    _close_on_interrupt(app, window)
    window.show()
    return app.exec()


def _report_uncaught_errors(window: MainWindow) -> None:
    """An exception escaping a slot becomes a message in the window, not a traceback on a terminal."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, value, tb)
            return
        try:
            if isinstance(value, SpeechportError):
                window.message_bar.show_message("error", str(value))
            else:
                window.report_internal_error(value, "".join(traceback.format_exception(kind, value, tb)))
        except Exception:  # noqa: BLE001 - the window itself is gone: fall back to the default
            previous(kind, value, tb)

    sys.excepthook = hook


def _close_on_interrupt(app: QApplication, window: MainWindow) -> None:
    """Ctrl+C in the terminal closes the window the normal way (cancelling a conversion cleanly).

    Python only runs signal handlers between bytecodes, so a slow timer gives it the chance while
    Qt's event loop waits.
    """
    signal.signal(signal.SIGINT, lambda *_: window.stop_and_close())
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)
