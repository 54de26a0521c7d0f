"""Small widgets of the window: path fields with browse, drop and recent files; an inline message bar;
buttons that mirror actions; tables that Tab leaves and whose focused cell shows; and the guard that
keeps an Alt+letter nothing answers from typing a letter."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QStyle,
    QTableView,
    QTableWidget,
    QToolButton,
    QWidget,
)

from ...core.planning.plan import Status
from . import theme
from .line_clamp import LineClamp

RECENT_LIMIT = 8


class RecentPaths:
    """The last few paths chosen in one field, newest first, kept in QSettings."""

    def __init__(self, settings: QSettings, key: str, limit: int = RECENT_LIMIT):
        self._settings = settings
        self._key = f"recent/{key}"
        self._limit = limit

    def items(self) -> list[str]:
        value = self._settings.value(self._key, [])
        if isinstance(value, str):  # QSettings returns a lone string for one-item lists
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add(self, path: str) -> None:
        items = [path] + [p for p in self.items() if p != path]
        self._settings.setValue(self._key, items[: self._limit])

    def clear(self) -> None:
        self._settings.remove(self._key)


def local_paths(mime) -> list[str]:
    """Local file paths in drag-and-drop data (URLs from file managers)."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


class PathField(QWidget):
    """A path: type it and press Enter, browse for it, drop it, or pick a recent one.

    What is typed applies only on Enter (or when a file is chosen): leaving the field applies
    nothing, so a stray letter and Tab never replace a config nor close the open plan. Until then
    the field says it is edited (italic, and its tooltip says how to apply it), and Esc puts back
    the path in use."""

    pathChosen = Signal(str)
    editedChanged = Signal(bool)  # typed and not applied yet (True), or showing the path in use (False)

    def __init__(
        self,
        object_name: str,
        *,
        settings: QSettings,
        recent_key: str,
        folder: bool = False,
        or_file: bool = False,
        file_filter: str = "",
        dialog_title: str = "",
        placeholder: str = "",
        tooltip: str = "",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName(f"{object_name}Field")
        self.folder = folder
        self.or_file = or_file  # a folder or a file (a base model: a transformers folder or an original checkpoint)
        self.file_filter = file_filter
        self.dialog_title = dialog_title
        self.recent = RecentPaths(settings, recent_key)
        self._committed = ""
        self._edited = False
        self._tooltip = tooltip

        self.edit = QLineEdit(self)
        self.edit.setObjectName(object_name)
        self.edit.setPlaceholderText(placeholder)
        self.edit.setToolTip(tooltip)
        self.edit.setClearButtonEnabled(True)
        self.edit.setAccessibleName(dialog_title or object_name)
        self.edit.returnPressed.connect(self._on_return)
        self.edit.textChanged.connect(lambda _text: self._show_edited())
        # Dropped files replace the text instead of being inserted; Esc puts back the path in use.
        self.edit.installEventFilter(self)

        self.browse = QToolButton(self)
        self.browse.setObjectName(f"{object_name}Browse")
        self.browse.setText("Browse…")
        self.browse.setToolTip(f"{dialog_title}… (the arrow lists recent choices)")
        self.browse.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.browse.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.browse.clicked.connect(self.choose)
        self.recent_menu = QMenu(self.browse)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.browse.setMenu(self.recent_menu)
        self.kind_menu = None
        if folder and or_file:  # no file dialog picks "a folder or a file": Browse asks which one first
            self.kind_menu = QMenu(self)
            self.kind_menu.setObjectName(f"{object_name}Kind")
            self.kind_menu.addAction("A folder…", self.choose_folder)
            self.kind_menu.addAction("A file…", self.choose_file)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)
        self.setAcceptDrops(True)

    # -- value ------------------------------------------------------------------------------------
    def path(self) -> str:
        return self.edit.text().strip()

    def set_path(self, path: str | os.PathLike | None) -> None:
        """Show a path without loading it (the window does that when it chooses to)."""
        text = str(path) if path else ""
        self._committed = text
        self.edit.setText(text)
        self._show_edited()

    def applied(self) -> str:
        """The path in use: the last one applied, whatever is typed in the field now."""
        return self._committed

    def is_edited(self) -> bool:
        """Something is typed that is not applied yet (Enter applies it, Esc takes it back)."""
        return self._edited

    def revert(self) -> None:
        """Put back the path in use, forgetting what was typed."""
        self.edit.setText(self._committed)
        self._show_edited()

    def take_typed(self) -> str | None:
        """What the user typed and has not committed yet (now taken as chosen, without announcing
        it), or None when nothing was typed."""
        text = self.path()
        if text == self._committed:
            return None
        self._committed = text
        if text:
            self.recent.add(text)
        self._show_edited()
        return text

    def sync(self, path: str) -> None:
        """Show a path held elsewhere (the workspace) when it changed there, leaving what the user is
        typing alone."""
        if path in (self.path(), self._committed):
            return
        self.set_path(path)

    def commit(self, path: str | os.PathLike) -> None:
        """Set the path and announce it, as the file dialog does."""
        text = str(path).strip()
        self.set_path(text)
        if text:
            self.recent.add(text)
        self.pathChosen.emit(text)

    def choose(self) -> None:
        if self.kind_menu is not None:
            self.kind_menu.popup(self.browse.mapToGlobal(self.browse.rect().bottomLeft()))
        elif self.folder:
            self.choose_folder()
        else:
            self.choose_file()

    def choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, self.dialog_title, self._start_folder())
        if chosen:
            self.commit(chosen)

    def choose_file(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, self.dialog_title, self._start_folder(), self.file_filter)
        if chosen:
            self.commit(chosen)

    # -- internals --------------------------------------------------------------------------------
    def _start_folder(self) -> str:
        for candidate in [self.path(), *self.recent.items()]:
            if candidate:
                path = Path(candidate).expanduser()
                return str(path if self.folder and path.is_dir() else path.parent)
        return str(Path.home())

    def _on_return(self) -> None:
        text = self.path()
        if text != self._committed:
            self.commit(text)

    def _show_edited(self) -> None:
        edited = self.path() != self._committed.strip()
        if edited == self._edited:
            return
        self._edited = edited
        font = self.edit.font()
        font.setItalic(edited)
        self.edit.setFont(font)
        in_use = self._committed or "nothing"
        self.edit.setToolTip(f"Not applied yet: press Enter to use this path, Esc to go back to {in_use}."
                             if edited else self._tooltip)
        self.edit.setAccessibleDescription("edited, not applied: Enter applies it, Esc goes back" if edited else "")
        self.editedChanged.emit(edited)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.recent.items()
        for path in items:
            action = self.recent_menu.addAction(_elide_middle(path, 90))
            action.setToolTip(path)
            action.setData(path)
            action.triggered.connect(self._on_recent_triggered)
        if not items:
            self.recent_menu.addAction("No recent choices").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear recent choices", self.recent.clear)

    def _on_recent_triggered(self) -> None:
        action = self.sender()
        if isinstance(action, QAction) and action.data():
            self.commit(action.data())

    def eventFilter(self, watched, event) -> bool:
        if watched is self.edit and event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) \
                and event.key() == Qt.Key.Key_Escape and event.modifiers() == Qt.KeyboardModifier.NoModifier \
                and self._edited:
            # Esc while edited is the field's (it takes the typing back), not the window's Cancel.
            if event.type() == QEvent.Type.KeyPress:
                self.revert()
            event.accept()
            return True
        if watched is self.edit and event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            paths = local_paths(event.mimeData())
            if not paths:
                return False
            event.acceptProposedAction()
            if event.type() == QEvent.Type.Drop:
                self.commit(paths[0])
            return True
        return super().eventFilter(watched, event)

    def dragEnterEvent(self, event) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.commit(paths[0])


class FocusFrameMixin:
    """An item view that Tab and Shift+Tab leave (arrows move between cells) and that frames its
    current cell while it has the focus: with whole rows selected, the row's highlight alone does
    not say which cell F2 edits or where the arrows go from."""

    FRAME_WIDTH = 2

    def _keyboard_friendly(self) -> None:
        self.setTabKeyNavigation(False)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        index = self.currentIndex()
        if not self.hasFocus() or not index.isValid():
            return
        rect = self.visualRect(index)
        if rect.isEmpty():
            return
        selected = self.selectionModel() is not None and self.selectionModel().isSelected(index)
        palette = self.palette()
        colour = palette.highlightedText().color() if selected else palette.highlight().color()
        painter = QPainter(self.viewport())
        pen = QPen(colour, self.FRAME_WIDTH)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        half = self.FRAME_WIDTH // 2
        painter.drawRect(rect.adjusted(half, half, -half - 1, -half - 1))
        painter.end()

    def focusInEvent(self, event) -> None:
        super().focusInEvent(event)
        self.viewport().update()

    def focusOutEvent(self, event) -> None:
        super().focusOutEvent(event)
        self.viewport().update()

    def currentChanged(self, current, previous) -> None:
        super().currentChanged(current, previous)
        self.viewport().update()


class FocusTableView(FocusFrameMixin, QTableView):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._keyboard_friendly()


class FocusTableWidget(FocusFrameMixin, QTableWidget):
    def __init__(self, rows: int, columns: int, parent: QWidget | None = None):
        super().__init__(rows, columns, parent)
        self._keyboard_friendly()


class AltLettersTypeNothing(QObject):
    """Alt+letter is a mnemonic: when none answers it (the label it belongs to is hidden, say), the
    focused text field would take the letter as typed. Installed on the application, this drops such
    key presses in text fields; Qt has already given every mnemonic and shortcut its chance.

    Not on macOS, where Option (Alt) types letters of its own (Option+e, …), nor with Ctrl+Alt,
    which is AltGr on Windows."""

    def eventFilter(self, watched, event) -> bool:
        if event.type() != QEvent.Type.KeyPress or not isinstance(watched, QLineEdit):
            return False
        modifiers = event.modifiers()
        if not modifiers & Qt.KeyboardModifier.AltModifier or modifiers & Qt.KeyboardModifier.ControlModifier:
            return False
        text = event.text()
        return bool(text) and text.isprintable() and sys.platform != "darwin"


def _elide_middle(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width // 2 - 1] + "…" + text[-(width // 2) :]


class MessageBar(QFrame):
    """A message inside the window (error, warning, success, info) with optional buttons.

    Errors are shown here rather than in modal dialogs: they stay visible next to what caused
    them, their text can be selected and copied, and nothing blocks the window. A long message
    shows its first two lines and "Show all".
    """

    closed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.kind = "info"
        self.icon = QLabel(self)
        self.icon.setFixedSize(18, 18)
        self.text = QLabel(self)
        self.text.setObjectName("messageText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.show_all = QToolButton(self)
        self.show_all.setObjectName("messageShowAll")
        self.show_all.setAutoRaise(True)
        self.show_all.setToolTip("Show the whole message, or only its first lines")
        self.clamp = LineClamp(self.text, self.show_all, lines=2)
        self.buttons = QHBoxLayout()
        self.buttons.setSpacing(6)
        self.close_button = QToolButton(self)
        self.close_button.setObjectName("messageClose")
        self.close_button.setAutoRaise(True)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.setSpacing(8)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text, 1)
        # Beside the text, not under it: a long message takes its two lines, never a third for the button.
        layout.addWidget(self.show_all, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addLayout(self.buttons)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, kind: str, text: str, actions: list[tuple[str, Callable[[], None], str]] = ()) -> None:
        """`actions`: (button text, callback, object name) for the buttons beside the text."""
        self.kind = kind
        self.text.setText(text)
        self.clamp.collapse()
        while self.buttons.count():
            widget = self.buttons.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for label, callback, name in actions:
            button = QPushButton(label, self)
            button.setObjectName(name)
            button.clicked.connect(callback)
            self.buttons.addWidget(button)
        self._restyle()
        self.show()

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()

    def button(self, name: str) -> QPushButton | None:
        return self.findChild(QPushButton, name)

    def changeEvent(self, event) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._restyle()
        super().changeEvent(event)

    def restyle(self) -> None:
        """Draw in the application's palette as it is now (the window calls it when the appearance changes)."""
        self._restyle()

    def _restyle(self) -> None:
        # The application's palette, not this frame's: the style sheet below changes the latter. The
        # text's colour is in the sheet too: a frame styled by a sheet keeps the palette its children
        # had when it was polished, so without it a message shown in the dark stays pale in the light.
        palette = QGuiApplication.palette()
        colour = theme.message_colour(self.kind, palette)
        tint = f"rgba({colour.red()}, {colour.green()}, {colour.blue()}, {40 if theme.is_dark(palette) else 24})"
        text = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.WindowText).name()
        sheet = (f"QFrame#messageBar {{ background: {tint}; border: 1px solid {colour.name()}; border-radius: 4px; }}"
                 f" QFrame#messageBar QLabel {{ color: {text}; }}")
        if sheet != self.styleSheet():  # setting a style sheet changes the palette: only when needed
            self.setStyleSheet(sheet)
        icons = {
            "error": theme.status_icon(Status.MISSING),
            "success": theme.status_icon(Status.MAPPED),
            "warning": self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning),
            "info": self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation),
        }
        self.icon.setPixmap(icons[self.kind].pixmap(18, 18))


class ActionButton(QPushButton):
    """A push button that mirrors an action (text, icon, tooltip, enabled state) and triggers it."""

    def __init__(self, action: QAction, name: str, parent: QWidget):
        super().__init__(action.icon(), action.text().replace("&", ""), parent)
        self.action = action
        self.setObjectName(name)
        self.setToolTip(action.toolTip())
        self.clicked.connect(action.trigger)
        action.changed.connect(self.sync)
        self.sync()

    def sync(self) -> None:
        self.setEnabled(self.action.isEnabled())
