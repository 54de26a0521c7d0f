"""What a test set says of speech recognition (CTC) models: whether both models transcribe the set
alike, and how close each comes to the reference text.

A clip's results.jsonl line holds both models' greedy transcripts (`transcript_original`,
`transcript_converted`) and, where the set gives one, its reference text (`text`). Over the clips
both models ran on, with these definitions (so that other tools can reproduce them):

- edit distance: Levenshtein's (an insertion, a deletion or a substitution each count one), over
  characters (Unicode code points) for a character error rate, over words (split at whitespace)
  for a word error rate;
- a corpus error rate: the edits summed over the clips, divided by the length of their reference
  side summed over the same clips (not the mean of per-clip rates: a long clip weighs more, as
  every ASR scorer counts it); a reference side of no characters at all divides by 1, as one clip's
  `character_error_rate` does;
- between the models (`cer_between_models`): the original's transcript is the reference side, the
  converted one's the hypothesis, both as written: they write the same dictionary's symbols;
- `transcripts_identical`: the share of clips whose two transcripts are equal character for character;
- against the text (`cer_original`, `cer_converted`, `wer_original`, `wer_converted`): the text is the
  reference side and each model's transcript the hypothesis, over the clips that have a text
  (`text_clips`), both normalised first by `normalise` (upper-case, whitespace collapsed); null
  where no clip has a text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .transcripts import edit_distance

TEXT = "text"  # a clip's reference text in its results.jsonl line (core.proof.datasets: the `text` column)
TRANSCRIPT_FIELDS = ("transcript_original", "transcript_converted")  # as `compare --json` names them per clip
# What a test set's summary adds for models that transcribe, in the order summary.json lists them.
TRANSCRIBED_CLIPS = "transcribed_clips"
TRANSCRIPTS_IDENTICAL = "transcripts_identical"
TRANSCRIPTS_DIFFERING = "transcripts_differing"
CER_BETWEEN_MODELS = "cer_between_models"
TEXT_CLIPS = "text_clips"
CER_AGAINST_TEXT = {"original": "cer_original", "converted": "cer_converted"}
WER_AGAINST_TEXT = {"original": "wer_original", "converted": "wer_converted"}
TRANSCRIPTION_FIELDS = (TRANSCRIBED_CLIPS, TRANSCRIPTS_IDENTICAL, TRANSCRIPTS_DIFFERING, CER_BETWEEN_MODELS,
                        TEXT_CLIPS, *CER_AGAINST_TEXT.values(), *WER_AGAINST_TEXT.values())


def normalise(text: str) -> str:
    """A transcript or a reference text as compared against each other: upper-case (fairseq's
    letter dictionaries are; a text is usually written in mixed case) and every run of whitespace
    one space, ends stripped. Nothing else: punctuation a dictionary holds (an apostrophe) is a
    symbol the model writes, and a model that drops it is counted for it."""
    return " ".join(text.upper().split())


def word_edits(reference: str, hypothesis: str) -> int:
    """Edit distance in words (split at whitespace)."""
    return edit_distance(reference.split(), hypothesis.split())


def transcribed(records: Iterable[dict]) -> list[dict]:
    """The records that hold both models' transcripts."""
    return [r for r in records if all(isinstance(r.get(name), str) for name in TRANSCRIPT_FIELDS)]


def _rate(edits: int, length: int) -> float:
    return edits / max(length, 1)


def transcription_aggregates(records: Sequence[dict]) -> dict:
    """The set's transcription numbers (TRANSCRIPTION_FIELDS) over the records of clips both models
    ran on; {} when no record holds transcripts (a model that does not transcribe)."""
    found = transcribed(records)
    if not found:
        return {}
    identical = sum(1 for r in found if r["transcript_original"] == r["transcript_converted"])
    between = sum(edit_distance(r["transcript_original"], r["transcript_converted"]) for r in found)
    summary = {TRANSCRIBED_CLIPS: len(found), TRANSCRIPTS_IDENTICAL: identical / len(found),
               TRANSCRIPTS_DIFFERING: len(found) - identical,
               CER_BETWEEN_MODELS: _rate(between, sum(len(r["transcript_original"]) for r in found))}
    with_text = [r for r in found if isinstance(r.get(TEXT), str)]
    summary[TEXT_CLIPS] = len(with_text)
    texts = [normalise(r[TEXT]) for r in with_text]
    characters, words = sum(len(t) for t in texts), sum(len(t.split()) for t in texts)
    heard = {side: [normalise(r[f"transcript_{side}"]) for r in with_text] for side in ("original", "converted")}
    for names, measure, length in ((CER_AGAINST_TEXT, edit_distance, characters), (WER_AGAINST_TEXT, word_edits, words)):
        counted: dict[tuple[str, str], int] = {}  # where both models hear the same, the text is measured once
        for side, name in names.items():
            total = 0
            for text, said in zip(texts, heard[side]):
                if (text, said) not in counted:
                    counted[(text, said)] = measure(text, said)
                total += counted[(text, said)]
            summary[name] = _rate(total, length) if with_text else None
    return summary


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


def transcription_rows(summary: dict) -> list[tuple[str, str]]:
    """The set's transcription numbers in words, as (what, how much) rows for the command line's
    table and the window's summary; [] for a set of a model that does not transcribe."""
    if summary.get(TRANSCRIBED_CLIPS) is None:
        return []
    clips, differing = summary[TRANSCRIBED_CLIPS], summary[TRANSCRIPTS_DIFFERING]
    rows = [("transcripts", f"both models transcribe {clips - differing} of {clips} clip{'s' if clips != 1 else ''} "
                            f"identically; character error rate between them "
                            f"{_percent(summary[CER_BETWEEN_MODELS])}")]
    if summary.get(TEXT_CLIPS):
        rows.append(("against the text",
                     f"character error rate original {_percent(summary[CER_AGAINST_TEXT['original']])}, converted "
                     f"{_percent(summary[CER_AGAINST_TEXT['converted']])}; word error rate original "
                     f"{_percent(summary[WER_AGAINST_TEXT['original']])}, converted "
                     f"{_percent(summary[WER_AGAINST_TEXT['converted']])} ({summary[TEXT_CLIPS]} clip"
                     f"{'s' if summary[TEXT_CLIPS] != 1 else ''} with a reference text)"))
    else:
        rows.append(("against the text", "no clip has a reference text (a 'text' column gives one, or a .wrd file beside a "
                                         "fairseq manifest)"))
    return rows
