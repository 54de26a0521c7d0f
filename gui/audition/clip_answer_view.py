"""What a head that gives one answer per clip answered, drawn as what it is: for a classifier, bars
of the labels the original rates highest with both models' probabilities side by side; for a
speaker-verification head, how alike the two models' speaker embeddings are, as one figure.

Time plots would mislead here — one vector for the whole clip has no course in time.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QLabel, QSizePolicy, QStackedWidget, QToolTip, QVBoxLayout, QWidget

from ..shared.elided_label import ElidedLabel
from ..shared.plots import line_colour
from . import plain_words

SIDES = (("original", "original"), ("converted", "converted"))  # (key in a top-5 entry, colour name)
LEAST_LANE = 9  # pixels: the shortest a bar may be
LANE_GAP = 2  # between a label's two bars
ROW_GAP = 6  # between labels
LEFT_MARGIN = 12  # the answer starts a little right of the plots' left edge


class LabelBars(QWidget):
    """Each label on a row of its own: the original's probability bar above the converted model's."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("labelBars")
        self.setAccessibleName("Top labels of both models")
        self.entries: list[dict] = []  # core's top-5 entries: label, original, converted
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMouseTracking(True)

    def set_entries(self, entries: list[dict]) -> None:
        self.entries = list(entries)
        self.setAccessibleDescription("; ".join(
            f"{e['label']}: original {plain_words.percent(e['original'])}, converted {plain_words.percent(e['converted'])}"
            for e in self.entries))
        self.updateGeometry()
        self.update()

    # -- geometry ---------------------------------------------------------------------------------
    # A row is a label beside two lanes (the original's bar, the converted model's); rows take what
    # room there is, from a text line per lane down to LEAST_LANE pixels.

    def _line(self) -> int:
        return self.fontMetrics().height()

    def _legend_height(self) -> int:
        return self._line() + 8

    def _row_height(self, lane: float) -> float:
        return 2 * lane + LANE_GAP + ROW_GAP

    def _lane(self) -> float:
        """The lane height the widget's height allows."""
        rows = max(1, len(self.entries))
        room = (self.height() - self._legend_height()) / rows
        return min(self._line() + 2, max(LEAST_LANE, (room - LANE_GAP - ROW_GAP) / 2))

    def sizeHint(self) -> QSize:
        rows = max(1, len(self.entries))
        return QSize(320, self._legend_height() + round(rows * self._row_height(self._line() + 2)))

    def minimumSizeHint(self) -> QSize:
        rows = max(1, len(self.entries))
        return QSize(200, self._legend_height() + round(rows * self._row_height(LEAST_LANE)))

    def _label_width(self) -> int:
        metrics = self.fontMetrics()
        widest = max((metrics.horizontalAdvance(e["label"]) for e in self.entries), default=0)
        return min(widest + 12, self.width() // 3)

    def _row_at(self, y: float) -> int | None:
        top = self._legend_height()
        row = int((y - top) // self._row_height(self._lane()))
        return row if y >= top and 0 <= row < len(self.entries) else None

    # -- drawing ----------------------------------------------------------------------------------

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.Text)
        metrics = self.fontMetrics()
        line = self._line()
        colours = {key: line_colour(colour, palette) for key, colour in SIDES}

        # The legend: which colour is which model.
        x = 0
        for key, _ in SIDES:
            painter.fillRect(QRectF(x, 4 + line * 0.2, line * 0.8, line * 0.8), colours[key])
            x += line
            painter.setPen(text)
            words = f"{key} model"
            painter.drawText(QRectF(x, 4, metrics.horizontalAdvance(words) + 4, line), Qt.AlignmentFlag.AlignVCenter, words)
            x += metrics.horizontalAdvance(words) + 2 * line

        lane = self._lane()
        row_height = self._row_height(lane)
        # The numbers beside the bars fit their lane: a smaller font when lanes are short.
        numbers = QFont(self.font())
        if lane < line:
            numbers.setPixelSize(max(9, int(lane + LANE_GAP - 1)))
        label_width = self._label_width()
        number_width = QFontMetrics(numbers).horizontalAdvance("100 %") + 8
        bar_room = max(10, self.width() - label_width - number_width)
        bold = QFont(self.font())
        bold.setBold(True)
        for row, entry in enumerate(self.entries):
            top = self._legend_height() + row * row_height
            painter.setFont(bold if row == 0 else self.font())
            painter.setPen(text)
            label = metrics.elidedText(entry["label"], Qt.TextElideMode.ElideMiddle, label_width - 8)
            painter.drawText(QRectF(0, top, label_width - 8, 2 * lane + LANE_GAP),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)
            painter.setFont(numbers)
            for number, (key, _) in enumerate(SIDES):
                y = top + number * (lane + LANE_GAP)
                probability = min(max(float(entry[key]), 0.0), 1.0)
                width = max(1.0, bar_room * probability)
                painter.fillRect(QRectF(label_width, y, width, lane), colours[key])
                painter.setPen(text)
                painter.drawText(QRectF(label_width + width + 4, y, number_width, lane),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                                 plain_words.percent(probability))
        painter.end()

    def event(self, event) -> bool:
        if event.type() == event.Type.ToolTip:
            row = self._row_at(event.pos().y())
            if row is None:
                QToolTip.hideText()
            else:
                entry = self.entries[row]
                QToolTip.showText(event.globalPos(), f"{entry['label']}: the original model gives it "
                                  f"{entry['original']:.4%}, the converted model {entry['converted']:.4%}", self)
            return True
        return super().event(event)


class ClipAnswerView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("clipAnswerView")
        self.title = ElidedLabel(parent=self)  # one line: its height never depends on the width
        self.title.setObjectName("clipAnswerTitle")
        self.pages = QStackedWidget(self)
        self.bars = LabelBars(self.pages)
        self.similarity = QWidget(self.pages)
        self.figure = QLabel(self.similarity)
        self.figure.setObjectName("similarityFigure")
        self.figure.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.figure.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.figure.font()
        font.setPointSizeF(font.pointSizeF() * 2.6)
        font.setWeight(QFont.Weight.Bold)
        self.figure.setFont(font)
        self.figure_words = QLabel(self.similarity)
        self.figure_words.setObjectName("similarityWords")
        self.figure_words.setWordWrap(True)
        self.figure_words.setAlignment(Qt.AlignmentFlag.AlignCenter)
        similarity_layout = QVBoxLayout(self.similarity)
        similarity_layout.setContentsMargins(0, 0, 0, 0)
        similarity_layout.addStretch(1)
        similarity_layout.addWidget(self.figure)
        similarity_layout.addWidget(self.figure_words)
        similarity_layout.addStretch(2)
        self.pages.addWidget(self.bars)
        self.pages.addWidget(self.similarity)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(LEFT_MARGIN, 6, 8, 0)
        layout.setSpacing(8)
        layout.addWidget(self.title)
        layout.addWidget(self.pages, 1)

    def show_labels(self, top5: list[dict]) -> None:
        self.title.setText(f"One answer for the whole clip: how sure each model is of the {len(top5)} labels "
                           "the original rates highest")
        self.bars.set_entries(top5)
        self.pages.setCurrentWidget(self.bars)

    def show_similarity(self, cosine: float, what: str) -> None:
        """One figure: the cosine similarity of the two models' `what` (e.g. "speaker embeddings")."""
        self.title.setText(f"One answer for the whole clip: the two models' {what}")
        self.figure.setText(f"{cosine:.6f}")
        self.figure.setToolTip(plain_words.SIMILARITY)
        self.figure_words.setText(f"similarity of the two models' {what} — 1 means the converted model gives "
                                  "exactly what the original gives")
        self.figure_words.setToolTip(plain_words.COSINE)
        self.pages.setCurrentWidget(self.similarity)

    def clear(self) -> None:
        """Nothing answered (a comparison runs)."""
        self.bars.set_entries([])
        self.figure.setText("")

    def restyle(self, palette: QPalette | None = None) -> None:
        """The bars take their colours from the palette each time they are drawn."""
        self.bars.update()

