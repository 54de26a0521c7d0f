"""What a speech recognition (CTC) model hears, as text: greedy decoding, words on the clip's time
axis, and how far two transcripts are apart.

A CTC model gives one row of scores per frame. Greedy decoding takes the best symbol of each
frame, merges repeats, drops the blank and turns the word delimiter `|` into a space: fairseq's
W2lViterbiDecoder-style decoding with its "letter" post-processing, and what transformers'
`Wav2Vec2CTCTokenizer.decode` does with the same ids. Plain Python over ids (no torch), so the
window and a test-set summary use it as freely as the comparison does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WORD_DELIMITER = "|"  # fairseq's letter dictionaries mark the space between words with it


@dataclass(frozen=True)
class Run:
    """One symbol the greedy path keeps: its id and the frames it spans (first, last inclusive)."""

    symbol: int
    first: int
    last: int


@dataclass(frozen=True)
class Word:
    """A word of a transcript and where on the compared audio it is heard, in seconds."""

    text: str
    start: float
    end: float

    def to_dict(self) -> dict:
        return {"word": self.text, "start": round(self.start, 4), "end": round(self.end, 4)}


def greedy_runs(best: Sequence[int], blank: int) -> list[Run]:
    """The best symbol per frame with repeats merged and the blank dropped (a symbol repeated with
    a blank between is two symbols, as CTC means it)."""
    runs: list[Run] = []
    previous = None
    for frame, symbol in enumerate(int(s) for s in best):
        if symbol == previous:
            if symbol != blank:
                runs[-1] = Run(symbol, runs[-1].first, frame)
            continue
        previous = symbol
        if symbol != blank:
            runs.append(Run(symbol, frame, frame))
    return runs


def transcript(runs: Sequence[Run], names: Sequence[str], delimiter: str = WORD_DELIMITER) -> str:
    """The text of a greedy path: the symbols joined, the delimiter a space, ends stripped."""
    return "".join(names[run.symbol] for run in runs).replace(delimiter, " ").strip()


def words(runs: Sequence[Run], names: Sequence[str], frame_seconds: float,
          delimiter: str = WORD_DELIMITER) -> list[Word]:
    """Each word of a greedy path with the time it spans: from its first symbol's first frame to
    the end of its last symbol's last frame (CTC gives a frame per symbol)."""
    found: list[Word] = []
    text, first, last = "", None, None
    for run in [*runs, None]:
        name = names[run.symbol] if run is not None else delimiter
        if delimiter in name or run is None:
            if text.strip():
                found.append(Word(text.strip(), first * frame_seconds, (last + 1) * frame_seconds))
            text, first, last = "", None, None
            continue
        text += name
        first = run.first if first is None else first
        last = run.last
    return found


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein's distance (an insertion, a deletion or a substitution each count one) between two
    strings, in characters, or two lists, in their items (words)."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(reference, hypothesis))


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Edits to turn `reference` into `hypothesis`, per character of the reference (0 when both
    are empty; an empty reference counts each character heard as one edit)."""
    return edit_distance(reference, hypothesis) / max(len(reference), 1)


def differing_spans(first: str, second: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Where two transcripts differ: (start, end) character ranges of `first` and of `second` that
    the other does not share, for highlighting them: the characters a fewest-edits alignment
    substitutes, deletes or inserts."""
    if first == second:
        return [], []
    from rapidfuzz.distance import Levenshtein

    ours: set[int] = set()
    theirs: set[int] = set()
    for operation in Levenshtein.opcodes(first, second):
        if operation.tag != "equal":
            ours.update(range(operation.src_start, operation.src_end))
            theirs.update(range(operation.dest_start, operation.dest_end))
    return _spans(ours), _spans(theirs)


def _spans(indices: set[int]) -> list[tuple[int, int]]:
    """Character indices as (start, end) ranges of consecutive ones."""
    spans: list[tuple[int, int]] = []
    for index in sorted(indices):
        if spans and spans[-1][1] == index:
            spans[-1] = (spans[-1][0], index + 1)
        else:
            spans.append((index, index + 1))
    return spans
