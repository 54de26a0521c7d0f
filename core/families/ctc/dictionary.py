"""The symbols a CTC model writes: fairseq's target dictionary, found and checked, and the same
symbols as transformers' tokenizer numbers them.

Where it comes from, first found first: the checkpoint's `task_state["target_dictionary"]` (a
pickled fairseq `Dictionary`, read as the plain dict of its fields by the safe unpickler); a
`dict.<labels>.txt` (`dict.ltr.txt`), or the one `dict.*.txt`, beside the checkpoint; the file the
user names (`--dictionary`), which replaces a file beside the checkpoint but must agree with one the
checkpoint carries. A dictionary file is read as fairseq's `Dictionary.load` reads it: fairseq's four
special symbols first (`<s>`, `<pad>`, `</s>`, `<unk>`), then one `symbol count` per line.

Row i of the output layer scores symbol i. fairseq's CTC blank is row 0 (`<s>`); transformers'
is the pad token, so the tokenizer calls row 0 `<pad>` and the pad's own row `<s>`, the rows
themselves unchanged (transformers' convert_wav2vec2_original_pytorch_checkpoint_to_pytorch.py
does the same swap).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import BadInput, NeedsDictionary, quoted
from ...storage.files import describe_mode

BLANK = 0  # fairseq's CTC criterion and decoders take row 0 as the blank
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # fairseq Dictionary(): bos, pad, eos, unk, in this order
# A letter dictionary is a few hundred bytes and a subword one a few megabytes: a larger file is
# no dictionary, and is never read whole.
MAX_DICTIONARY_BYTES = 16 << 20
OVERWRITE_FLAG = "#fairseq:overwrite"


@dataclass(frozen=True)
class Vocabulary:
    """A target dictionary: its symbols in row order and its special words."""

    symbols: tuple[str, ...]
    bos: str
    pad: str
    eos: str
    unk: str
    origin: str  # where it was found, in words
    path: Path | None = None  # the file it was read from (None: the checkpoint's task_state)

    def __len__(self) -> int:
        return len(self.symbols)

    def transformers_names(self) -> tuple[str, ...]:
        """The symbols as transformers' tokenizer names the same rows: the blank row is the pad token."""
        names = list(self.symbols)
        pad = names.index(self.pad)
        names[BLANK], names[pad] = names[pad], names[BLANK]
        return tuple(names)

    def token_ids(self) -> dict[str, int | None]:
        """The config's special token ids, transformers' way: pad is the CTC blank."""
        names = self.transformers_names()
        return {"pad_token_id": BLANK, "bos_token_id": _index(names, self.bos), "eos_token_id": _index(names, self.eos)}

    def tokenizer_settings(self) -> dict[str, Any]:
        """What transformers' Wav2Vec2CTCTokenizer is built from, as plain data (part of the target's key)."""
        return {"vocab": list(self.transformers_names()), "unk_token": self.unk, "pad_token": self.pad,
                "bos_token": self.bos, "eos_token": self.eos, "word_delimiter_token": "|"}

    def described(self) -> str:
        shown = ", ".join(self.symbols[len(SPECIALS): len(SPECIALS) + 8])
        more = "…" if len(self.symbols) > len(SPECIALS) + 8 else ""
        return f"{len(self.symbols)} symbols ({shown}{more}) from {self.origin}"


def _index(names: Sequence[str], word: str) -> int | None:
    return names.index(word) if word in names else None


# -- the checkpoint's own ----------------------------------------------------------------------------

def from_task_state(content: Mapping, path: Path) -> Vocabulary | None:
    """The dictionary the checkpoint carries in `task_state["target_dictionary"]`, or None."""
    task_state = content.get("task_state")
    found = task_state.get("target_dictionary") if isinstance(task_state, Mapping) else None
    if found is None:
        return None
    where = f"{path}: task_state's target_dictionary"
    if not isinstance(found, Mapping) or not isinstance(found.get("symbols"), (list, tuple)):
        raise BadInput(f"{where} is no fairseq Dictionary (it has no list of symbols)")
    symbols = list(found["symbols"])
    for index, symbol in enumerate(symbols):
        if not isinstance(symbol, str):
            raise BadInput(f"{where}: symbol {index} is {type(symbol).__name__}, not text")
    words = {}
    for field, default in zip(("bos_word", "pad_word", "eos_word", "unk_word"), SPECIALS):
        word = found.get(field, default)
        if not isinstance(word, str):
            raise BadInput(f"{where}: {field} is {type(word).__name__}, not text")
        words[field] = word
    return _checked(symbols, words, "the checkpoint's task_state (target_dictionary)", where, None)


# -- a dictionary file ---------------------------------------------------------------------------------

def beside(checkpoint: Path, labels: str | None) -> Path | None:
    """The dictionary file fairseq's task would load, looked for beside the checkpoint: dict.<labels>.txt,
    dict.ltr.txt, else the only dict.*.txt there. Several others and none of those: `NeedsDictionary`."""
    folder = checkpoint.parent
    for name in dict.fromkeys([f"dict.{labels}.txt" if labels else None, "dict.ltr.txt"]):
        if name and (folder / name).is_file():
            return folder / name
    try:
        found = sorted(entry for entry in folder.glob("dict.*.txt") if entry.is_file())
    except OSError:
        return None
    if len(found) > 1:
        raise NeedsDictionary(str(checkpoint), f"{len(found)} dictionary files lie beside it "
                              f"({', '.join(p.name for p in found[:4])}{'…' if len(found) > 4 else ''}) and none is "
                              f"dict.{labels or 'ltr'}.txt, which fairseq would load: say which one")
    return found[0] if found else None


def read_file(path: Path, origin: str) -> Vocabulary:
    """A fairseq dictionary file, read as `Dictionary.load` reads it; one sentence when it cannot be."""
    path = Path(path)
    text = _read_text(path)
    symbols = list(SPECIALS)
    lines = {symbol: 0 for symbol in SPECIALS}  # where each symbol was given (0: fairseq's own)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip().rsplit(" ", 1)
        if len(parts) == 2 and parts[1] == OVERWRITE_FLAG:
            parts = parts[0].rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or not parts[0]:
            raise BadInput(f"{path}: line {number} is {quoted(line, 60)}, not 'symbol count' as a fairseq dictionary "
                           "has it")
        symbol = parts[0]
        if symbol in lines:
            first = f"line {lines[symbol]}" if lines[symbol] else "fairseq's own special symbols"
            raise BadInput(f"{path}: line {number} repeats the symbol {quoted(symbol, 40)} (already {first}); each "
                           "symbol is one row of the output layer, named once")
        lines[symbol] = number
        symbols.append(symbol)
    words = dict(zip(("bos_word", "pad_word", "eos_word", "unk_word"), SPECIALS))
    return _checked(symbols, words, origin, str(path), path)


def _read_text(path: Path) -> str:
    """The file's text, read no further than MAX_DICTIONARY_BYTES; never opens a FIFO or a device."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such dictionary file") from None
    except OSError as exc:
        raise BadInput(f"{path}: the dictionary cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{path}: is a folder, not a dictionary file")
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{path}: is {describe_mode(info.st_mode)}, not a regular file; a dictionary file was expected")
    too_large = BadInput(f"{path}: holds more than {MAX_DICTIONARY_BYTES:,} bytes, far more than a dictionary of "
                         "symbols; it is not read")
    if info.st_size > MAX_DICTIONARY_BYTES:
        raise too_large
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_DICTIONARY_BYTES + 1)
    except OSError as exc:
        raise BadInput(f"{path}: the dictionary cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_DICTIONARY_BYTES:  # grew since the look above
        raise too_large
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start} is not): fairseq reads dictionaries as UTF-8") from None


def _checked(symbols: list[str], words: dict[str, str], origin: str, where: str, path: Path | None) -> Vocabulary:
    seen: dict[str, int] = {}
    for index, symbol in enumerate(symbols):
        if symbol in seen:
            raise BadInput(f"{where}: the symbol {quoted(symbol, 40)} is rows {seen[symbol]} and {index}; each symbol "
                           "is one row of the output layer, named once")
        seen[symbol] = index
    if words["pad_word"] not in seen:
        raise BadInput(f"{where}: has no padding symbol {quoted(words['pad_word'], 40)}, which transformers' "
                       "tokenizer needs to name the CTC blank")
    return Vocabulary(tuple(symbols), words["bos_word"], words["pad_word"], words["eos_word"], words["unk_word"],
                      origin, path)


# -- choosing, and checking against the model ------------------------------------------------------------

def find(checkpoint: Path, content: Mapping, labels: str | None, given: Path | None) -> Vocabulary:
    """The dictionary for a CTC checkpoint (see the module docstring); `NeedsDictionary` when there is none."""
    own = from_task_state(content, checkpoint)
    if given is not None:
        chosen = read_file(given, f"the dictionary file {given}")
        if own is not None and own.symbols != chosen.symbols:
            raise BadInput(f"{given}: differs from the dictionary the checkpoint carries in its task_state "
                           f"({_first_difference(own.symbols, chosen.symbols)}); the checkpoint's own is the one "
                           "it was trained with", cli_hint="leave out --dictionary")
        return chosen if own is None else own
    if own is not None:
        return own
    found = beside(checkpoint, labels)
    if found is not None:
        return read_file(found, f"{found.name} beside the checkpoint")
    raise NeedsDictionary(str(checkpoint), "none is in its task_state and no dict.ltr.txt (or dict.*.txt) lies "
                          "beside it: give the letter dictionary it was fine-tuned with")


def _first_difference(ours: Sequence[str], theirs: Sequence[str]) -> str:
    if len(ours) != len(theirs):
        return f"{len(theirs)} symbols where it has {len(ours)}"
    index = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
    return f"row {index} is {quoted(theirs[index], 40)} where it has {quoted(ours[index], 40)}"


def check_rows(vocabulary: Vocabulary, rows: int, layer: str) -> None:
    """Refuse a dictionary that does not name every row of the output layer, one each."""
    if len(vocabulary) != rows:
        where = vocabulary.path or vocabulary.origin
        raise BadInput(f"{where}: the dictionary has {len(vocabulary)} symbols (fairseq's 4 special ones included), but "
                       f"the output layer {layer} has {rows} rows: it is not the dictionary this model was fine-tuned "
                       "with")
