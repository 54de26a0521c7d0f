"""What a speech recognition (CTC) model hears, on the clip's time axis: the original's words in the
upper lane, the converted model's in the lower, each word where the model heard it (CTC gives a
frame per symbol), and the characters one heard and the other did not highlighted.

The words and their times come from the comparison (`details["words_original"]`, `…_converted"]`),
the highlighted characters from the two transcripts (`core.proof.transcripts.differing_spans`).
Words that would run into the one before them at the present zoom are hidden until there is room:
zooming in shows them all.
"""

from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics, QGuiApplication, QPalette
from PySide6.QtWidgets import QWidget

from ...core.proof.transcripts import differing_spans
from ..shared import theme
from ..shared.plots import TimePlot, line_colour

LANES = (("original", 1.5), ("converted", 0.5))  # (side, the lane's middle): the original above
WORD_GAP = 6  # pixels between two words shown side by side
DIFFERENCE_COLOURS = ("#ffd1cc", "#8e1519")  # behind characters only one model heard: (light, dark palette)


def _spans_in(start: int, end: int, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of the characters [start, end) that `spans` cover, relative to `start`."""
    return [(max(a, start) - start, min(b, end) - start) for a, b in spans if a < end and b > start]


def word_html(word: str, marked: list[tuple[int, int]], colour: str, background: str) -> str:
    """A word in `colour`, its `marked` character ranges on `background`."""
    parts, at = [], 0
    for a, b in sorted(marked):
        parts.append(html.escape(word[at:a]))
        parts.append(f'<span style="background-color:{background}">{html.escape(word[a:b])}</span>')
        at = b
    parts.append(html.escape(word[at:]))
    return f'<span style="color:{colour}">{"".join(parts)}</span>'


class TranscriptPlot(TimePlot):
    def __init__(self, parent: QWidget | None = None):
        line = QFontMetrics(QGuiApplication.font()).height()
        super().__init__("transcriptPlot", "heard", parent, minimum_height=2 * line + 8)  # a line per lane
        self.setAccessibleName("What both models hear, word by word along the clip")
        item = self.getPlotItem()
        item.setYRange(0, 2, padding=0)
        item.getAxis("left").setLabel(None)
        item.getAxis("left").setTicks([[(middle, side) for side, middle in LANES], []])
        self.words: list[tuple[str, pg.TextItem, float, str]] = []  # (side, item, start second, text)
        self.marked: dict[str, list[tuple[int, int]]] = {}  # side -> character ranges only it heard
        self.comparison = None
        self.start = 0.0
        item.sigXRangeChanged.connect(lambda *_: self._thin_out())

    def set_transcripts(self, comparison, start: float = 0.0) -> None:
        """The words of one `core.comparison.ClipComparison` of a CTC model, `start` seconds into the clip."""
        self.comparison, self.start = comparison, start
        ours, theirs = comparison.transcript_original or "", comparison.transcript_converted or ""
        marked_ours, marked_theirs = differing_spans(ours, theirs)
        self.marked = {"original": marked_ours, "converted": marked_theirs}
        self.setToolTip(f"The original hears: “{ours}”\nThe converted model hears: “{theirs}”\n"
                        "Each word sits where the model heard it; characters only one of them heard are highlighted.")
        self._draw()

    def clear_transcripts(self) -> None:
        self.comparison = None
        item = self.getPlotItem()
        for _, text_item, _, _ in self.words:
            item.removeItem(text_item)
        self.words = []

    def shown_words(self, side: str) -> list[str]:
        """The words of one lane drawn at the present zoom (the others would overlap their neighbours)."""
        return [text for lane, item, _, text in self.words if lane == side and item.isVisible()]

    def marked_text(self, side: str) -> list[str]:
        """The characters highlighted in one lane, as they read in that model's transcript."""
        comparison = self.comparison
        text = (comparison.transcript_original if side == "original" else comparison.transcript_converted) or ""
        return [text[a:b] for a, b in self.marked.get(side, [])]

    def _draw(self) -> None:
        comparison = self.comparison
        self.clear_transcripts()
        self.comparison = comparison
        if comparison is None:
            return
        palette = QGuiApplication.palette()
        background = DIFFERENCE_COLOURS[theme.is_dark(palette)]
        item = self.getPlotItem()
        details = comparison.details or {}
        for side, middle in LANES:
            transcript = (comparison.transcript_original if side == "original" else comparison.transcript_converted) or ""
            colour = line_colour(side, palette).name()
            offset = 0
            for word in details.get(f"words_{side}", []):
                text = str(word.get("word", ""))
                at = transcript.find(text, offset)
                at = offset if at < 0 else at
                offset = at + len(text)
                marked = _spans_in(at, at + len(text), self.marked.get(side, []))
                text_item = pg.TextItem(html=word_html(text, marked, colour, background), anchor=(0, 0.5))
                text_item.setPos(self.start + float(word.get("start", 0.0)), middle)
                text_item.setToolTip(f"{side}: “{text}” at {float(word.get('start', 0.0)):.2f}–"
                                     f"{float(word.get('end', 0.0)):.2f} s of the compared part")
                item.addItem(text_item, ignoreBounds=True)
                self.words.append((side, text_item, self.start + float(word.get("start", 0.0)), text))
        self._thin_out()

    def _thin_out(self) -> None:
        """Hide the words that would run into the word before them in their lane at the present zoom."""
        if not getattr(self, "words", None):  # pyqtgraph resizes the view while it is being built
            return
        (left, right), _ = self.getPlotItem().getViewBox().viewRange()
        width = max(self.getPlotItem().getViewBox().width(), 1.0)
        pixels_per_second = width / max(right - left, 1e-9)
        metrics = self.fontMetrics()
        ends = {side: float("-inf") for side, _ in LANES}
        for side, text_item, start, text in self.words:
            x = (start - left) * pixels_per_second
            fits = x >= ends[side]
            text_item.setVisible(fits)
            if fits:
                ends[side] = x + metrics.horizontalAdvance(text) + WORD_GAP

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._thin_out()

    def restyle(self, palette: QPalette | None = None) -> None:
        super().restyle(palette)
        if getattr(self, "comparison", None) is not None:
            self._draw()
