"""Appearance: the application icon, status icons and colours, and light/dark palettes.

Status colours come in a light and a dark set, chosen from the palette in use, so the table stays
readable when the desktop switches between light and dark.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPainterPath, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QApplication

from ...core.planning.plan import Status
from ...resources import ICONS

APP_ICON_SVG = ICONS / "speechport.svg"
APP_ICON_PNG = ICONS / "speechport.png"

APPEARANCES = ("system", "light", "dark")

_STATUS_ICON_FILES = {
    Status.MAPPED: "status-mapped.svg",
    Status.DROPPED: "status-dropped.svg",
    Status.UNMAPPED: "status-unmapped.svg",
    Status.MISSING: "status-missing.svg",
    Status.SHAPE_MISMATCH: "status-mismatch.svg",
    Status.DUPLICATE: "status-duplicate.svg",
}

# Text colours per status: (on a light background, on a dark background).
_STATUS_TEXT = {
    Status.MAPPED: ("#1a7f37", "#3fb950"),
    Status.DROPPED: ("#57606a", "#8b949e"),
    Status.UNMAPPED: ("#9a4700", "#f0883e"),
    Status.MISSING: ("#c0111f", "#ff7b72"),
    Status.SHAPE_MISMATCH: ("#a40e26", "#ffa198"),
    Status.DUPLICATE: ("#6639ba", "#c297ff"),
}

# Semantic colours for messages: (light, dark).
MESSAGE_COLOURS = {
    "error": ("#c0111f", "#ff7b72"),
    "warning": ("#9a6700", "#e3b341"),
    "success": ("#1a7f37", "#3fb950"),
    "info": ("#0a5cc2", "#58a6ff"),
}


def is_dark(palette: QPalette | None = None) -> bool:
    palette = palette or QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def status_colour(status: Status, palette: QPalette | None = None) -> QColor:
    light, dark = _STATUS_TEXT[status]
    return QColor(dark if is_dark(palette) else light)


def status_tint(status: Status, palette: QPalette | None = None) -> QColor | None:
    """A translucent row background for problem rows; None for rows that need no attention."""
    if not status.is_problem:
        return None
    colour = status_colour(status, palette)
    colour.setAlpha(70 if is_dark(palette) else 38)
    return colour


def message_colour(kind: str, palette: QPalette | None = None) -> QColor:
    light, dark = MESSAGE_COLOURS[kind]
    return QColor(dark if is_dark(palette) else light)


@cache
def status_icon(status: Status) -> QIcon:
    return QIcon(str(ICONS / _STATUS_ICON_FILES[status]))


@cache
def app_icon() -> QIcon:
    icon = QIcon(str(APP_ICON_SVG))
    if APP_ICON_PNG.exists():  # for platforms whose window managers want a bitmap
        icon.addFile(str(APP_ICON_PNG), QSize(256, 256))
    return icon


# Monochrome toolbar glyphs (16x16 units), drawn in the palette's text colour: the style's own
# arrows and play/stop symbols are black, which disappears on a dark palette.
_GLYPHS = {
    "undo": ("stroke", "M 3 6 L 6 3 M 3 6 L 6 9 M 3 6 L 10 6 Q 13.5 6 13.5 9.5 Q 13.5 13 10 13 L 7 13"),
    "redo": ("stroke", "M 13 6 L 10 3 M 13 6 L 10 9 M 13 6 L 6 6 Q 2.5 6 2.5 9.5 Q 2.5 13 6 13 L 9 13"),
    "convert": ("fill", "M 4 2.5 L 13.5 8 L 4 13.5 Z"),
    "cancel": ("fill", "M 3.5 3.5 L 12.5 3.5 L 12.5 12.5 L 3.5 12.5 Z"),
    "play": ("fill", "M 4 2.5 L 13.5 8 L 4 13.5 Z"),
    "pause": ("fill", "M 4 3 L 7 3 L 7 13 L 4 13 Z M 9 3 L 12 3 L 12 13 L 9 13 Z"),
    "stop": ("fill", "M 3.5 3.5 L 12.5 3.5 L 12.5 12.5 L 3.5 12.5 Z"),
}


def glyph_icon(name: str, palette: QPalette | None = None) -> QIcon:
    palette = palette or QGuiApplication.palette()
    style, path_text = _GLYPHS[name]
    path = _svg_path(path_text)
    icon = QIcon()
    for mode, group in ((QIcon.Mode.Normal, QPalette.ColorGroup.Active), (QIcon.Mode.Disabled, QPalette.ColorGroup.Disabled)):
        colour = palette.color(group, QPalette.ColorRole.ButtonText)
        for size in (16, 24, 32, 48):
            image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(Qt.GlobalColor.transparent)
            painter = QPainter(image)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.scale(size / 16, size / 16)
            if style == "fill":
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(colour)
            else:
                pen = QPen(colour, 1.8)
                pen.setCapStyle(Qt.PenCapStyle.RoundCap)
                pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
                painter.setPen(pen)
                painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
            painter.end()
            icon.addPixmap(QPixmap.fromImage(image), mode)
    return icon


def _svg_path(text: str) -> QPainterPath:
    """The M/L/Q/Z subset of SVG path syntax, absolute coordinates only."""
    path = QPainterPath()
    tokens = text.split()
    i = 0
    while i < len(tokens):
        command = tokens[i]
        if command == "M":
            path.moveTo(float(tokens[i + 1]), float(tokens[i + 2]))
            i += 3
        elif command == "L":
            path.lineTo(float(tokens[i + 1]), float(tokens[i + 2]))
            i += 3
        elif command == "Q":
            path.quadTo(*(float(t) for t in tokens[i + 1:i + 5]))
            i += 5
        elif command == "Z":
            path.closeSubpath()
            i += 1
        else:
            raise ValueError(f"unsupported path command {command!r}")
    return path


def render_svg(svg: Path, out: Path, size: int) -> None:
    """Render an SVG icon to a PNG (the bitmap that ships next to the SVG)."""
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QIcon(str(svg)).paint(painter, 0, 0, size, size)
    painter.end()
    image.save(str(out))


# -- palettes ---------------------------------------------------------------------------------


def apply_appearance(app: QApplication, appearance: str) -> None:
    """Follow the desktop ("system") or force a light or dark palette.

    The platform is asked first (Qt 6.8+ styles switch their own palettes); where it ignores the
    request, as minimal desktops and the offscreen platform do, a palette is set by hand.
    """
    hints = app.styleHints()
    if appearance == "system":
        hints.unsetColorScheme()
        app.setPalette(QPalette())
        return
    wanted_dark = appearance == "dark"
    hints.setColorScheme(Qt.ColorScheme.Dark if wanted_dark else Qt.ColorScheme.Light)
    app.setPalette(QPalette())
    if is_dark(app.palette()) != wanted_dark:
        app.setPalette(dark_palette() if wanted_dark else light_palette())


def light_palette() -> QPalette:
    return _palette(
        window="#efefef", text="#1f2328", base="#ffffff", alternate="#f6f8fa", button="#e9e9e9",
        highlight="#2f6fde", highlighted_text="#ffffff", disabled="#8c959f", link="#0a5cc2", tooltip="#ffffdc",
    )


def dark_palette() -> QPalette:
    return _palette(
        window="#2b2d31", text="#e6edf3", base="#1e1f22", alternate="#25272b", button="#35373c",
        highlight="#3d74d9", highlighted_text="#ffffff", disabled="#6e7681", link="#58a6ff", tooltip="#3a3d42",
    )


def _palette(**c: str) -> QPalette:
    R, G = QPalette.ColorRole, QPalette.ColorGroup
    palette = QPalette()
    roles = {
        R.Window: c["window"], R.WindowText: c["text"], R.Base: c["base"], R.AlternateBase: c["alternate"],
        R.ToolTipBase: c["tooltip"], R.ToolTipText: c["text"], R.PlaceholderText: c["disabled"],
        R.Text: c["text"], R.Button: c["button"], R.ButtonText: c["text"], R.BrightText: "#ff5555",
        R.Highlight: c["highlight"], R.HighlightedText: c["highlighted_text"], R.Link: c["link"],
        R.Light: QColor(c["button"]).lighter(130).name(), R.Midlight: QColor(c["button"]).lighter(115).name(),
        R.Mid: QColor(c["button"]).darker(130).name(), R.Dark: QColor(c["button"]).darker(160).name(),
        R.Shadow: "#000000",
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    for role in (R.WindowText, R.Text, R.ButtonText, R.HighlightedText):
        palette.setColor(G.Disabled, role, QColor(c["disabled"]))
    return palette
