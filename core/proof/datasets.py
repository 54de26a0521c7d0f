"""Reading a test set: which clips to compare on, with their labels, segments and trials.

A test set is given as one path (`read_dataset`), in any of the forms people keep them in:

- a folder: every audio file under it, recursively, in sorted order. A `metadata.csv` or
  `metadata.jsonl` at its top (Hugging Face's *audiofolder* convention: a `file_name` column, paths
  relative to the folder) gives each file its columns: a label (`label`, or the column named), the
  reference text a speech recognition model should write (`text`, audiofolder's column for ASR, or
  the column named), and optionally `start` / `duration` in seconds; a file named by several rows is
  compared once per row. An empty label or text cell is none.
- a CSV, TSV or JSONL manifest with those columns, paths relative to the manifest's folder;
- a fairseq manifest (`.tsv`): the root folder on the first line, then `path<TAB>frames` lines; a
  `.wrd` file beside it with the same stem (fairseq's word transcripts, `train.tsv` and `train.wrd`:
  one line per clip, in the manifest's order) gives each clip its reference text;
- a Kaldi `wav.scp`: `utterance-id path` lines. Kaldi also lets a line hold a command whose output
  is the audio (`id sox a.wav -t wav - |`), a byte offset into an archive or standard input: such a
  line is refused, whole set and all, before anything is read; Speechport never runs a command
  named by a file.
- a speaker-verification trial list (`label enroll test` lines, VoxCeleb's `veri_test.txt`): the
  clips are every file a trial names; the trials give each model's equal error rate.

Nothing here reads audio: a clip that is missing or cannot be decoded is found when it is compared,
and recorded with its reason (`core.proof.testset`); what is refused here is a set that cannot be
read as a set at all (an unknown form, a malformed row, a command), in one sentence naming the row.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import BadInput, quoted
from ..storage.files import regular_file, unreadable

# What a folder's walk takes for audio: the containers libsndfile (soundfile) decodes.
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc",
                            ".au", ".snd", ".w64", ".caf", ".sph", ".nist", ".wv", ".rf64", ".voc"})
METADATA_NAMES = ("metadata.csv", "metadata.jsonl")  # audiofolder's, in the order they are looked for
PATH_COLUMN = "file_name"
DEFAULT_LABEL_COLUMN = "label"
DEFAULT_TEXT_COLUMN = "text"  # audiofolder's column for a clip's transcription
FAIRSEQ_WORDS_SUFFIX = ".wrd"  # fairseq's word transcripts beside a manifest (`.ltr` holds the same, spelled out)
MAX_CLIPS = 1_000_000  # a set larger than this is a mistake (a folder at the root of a disk)
MAX_LIST_BYTES = 256 << 20  # a manifest or list file read whole: larger ones are refused before reading
FORMS = ("folder", "csv", "tsv", "jsonl", "fairseq", "kaldi", "trials")


@dataclass(frozen=True)
class ClipItem:
    """One clip of a set: a file, or a part of one (`start`, `duration` in seconds; None: as the
    comparison's own options say)."""

    index: int  # its place in the set, from 0
    key: str  # unique within the set: how its results are found again (its id, and its part when a file gives several)
    path: str  # absolute
    label: str | None = None
    start: float | None = None
    duration: float | None = None
    text: str | None = None  # the reference text a speech recognition model should write, as the set gives it


@dataclass(frozen=True)
class Trial:
    """A speaker-verification trial: whether `enroll` and `test` (clip keys) are the same speaker."""

    target: bool
    enroll: str
    test: str


@dataclass(frozen=True)
class Dataset:
    path: Path
    form: str  # one of FORMS
    clips: tuple[ClipItem, ...]
    trials: tuple[Trial, ...] = ()
    label_column: str | None = None  # the column labels came from; None when the set has none
    text_column: str | None = None  # where reference texts came from (a column, or a .wrd file's name); None: none
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def labelled(self) -> bool:
        return any(clip.label is not None for clip in self.clips)

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    def describe(self) -> str:
        """In words: "240 clips from the folder speech/ (labels from metadata.csv's label column)"."""
        what = {"folder": "the folder", "csv": "the CSV manifest", "tsv": "the TSV manifest",
                "jsonl": "the JSONL manifest", "fairseq": "the fairseq manifest", "kaldi": "the Kaldi wav.scp",
                "trials": "the trial list"}[self.form]
        text = f"{len(self.clips)} clip{'s' if len(self.clips) != 1 else ''} from {what} {self.path}"
        if self.trials:
            text += f" ({len(self.trials)} trials)"
        elif self.label_column:
            text += f" (labels from the {self.label_column!r} column)"
        if self.text_column:
            text += (f" (reference texts from {self.text_column})" if self.form == "fairseq"
                     else f" (reference texts from the {self.text_column!r} column)")
        return text


def read_dataset(path: str | os.PathLike, *, label_column: str | None = None,
                 text_column: str | None = None) -> Dataset:
    """The set at `path`, in whichever of the forms above it is; BadInput in one sentence otherwise.

    `label_column` names the column holding each clip's label (default `label`, used when present),
    `text_column` the one holding its reference text (default `text`, used when present); a column
    asked for by name must exist.
    """
    given = Path(path).expanduser()
    where = given.absolute()
    try:
        is_dir = where.is_dir()
    except OSError as exc:
        raise unreadable(given, exc, "test set") from None
    if is_dir:
        dataset = _folder(where, label_column, text_column)
    else:
        if not where.exists() and not where.is_symlink():
            raise BadInput(f"{given}: no such test set (a folder of clips, a manifest, a wav.scp or a trial list)")
        regular_file(where, "test set")  # never open a FIFO or a device: the read would block
        suffix = where.suffix.lower()
        if suffix in AUDIO_SUFFIXES:
            raise BadInput(f"{given}: is one audio clip, not a test set; compare on it with --audio, or give the "
                           "folder that holds the clips", cli_hint=None)
        text = _read_text(where)
        if where.name == "wav.scp" or suffix == ".scp":
            dataset = _kaldi(where, text)
        elif suffix == ".csv":
            dataset = _table(where, _csv_rows(where, text, ","), "csv", label_column, text_column)
        elif suffix == ".jsonl":
            dataset = _table(where, _jsonl_rows(where, text), "jsonl", label_column, text_column)
        elif suffix == ".tsv":
            first = text.split("\n", 1)[0]
            if "\t" not in first:  # fairseq: the root folder alone on the first line
                dataset = _fairseq(where, text)
            else:
                dataset = _table(where, _csv_rows(where, text, "\t"), "tsv", label_column, text_column)
        elif _looks_like_trials(text):
            dataset = _trials(where, text)
        else:
            raise BadInput(
                f"{given}: not a test set Speechport reads: give a folder of clips, a .csv, .tsv or .jsonl manifest "
                "with a file_name column, a fairseq .tsv manifest, a Kaldi wav.scp, or a trial list of "
                "'label enroll test' lines")
    if not dataset.clips:
        raise BadInput(f"{given}: the test set holds no clip to compare on"
                       + (" (no audio file under the folder)" if dataset.form == "folder" else ""))
    if label_column is not None and dataset.label_column is None and dataset.form in ("folder", "csv", "tsv", "jsonl"):
        raise BadInput(f"{given}: no {label_column!r} column to read labels from", cli_hint="--label-column NAME")
    if text_column is not None and dataset.text_column is None and dataset.form in ("folder", "csv", "tsv", "jsonl"):
        raise BadInput(f"{given}: no {text_column!r} column to read reference texts from",
                       cli_hint="--text-column NAME")
    return dataset


# -- forms ----------------------------------------------------------------------------------------


def _folder(root: Path, label_column: str | None, text_column: str | None) -> Dataset:
    files = sorted(_audio_files(root), key=lambda p: p.relative_to(root).as_posix())
    if len(files) > MAX_CLIPS:
        raise BadInput(f"{root}: holds more than {MAX_CLIPS:,} audio files; give a folder or a manifest of one test set")
    metadata = next((root / name for name in METADATA_NAMES if (root / name).is_file()), None)
    if metadata is None:
        clips = [ClipItem(i, path.relative_to(root).as_posix(), str(path)) for i, path in enumerate(files)]
        return Dataset(root, "folder", tuple(clips))
    text = _read_text(metadata)
    rows = _csv_rows(metadata, text, ",") if metadata.suffix == ".csv" else _jsonl_rows(metadata, text)
    listed = _table(root, rows, "folder", label_column, text_column, origin=metadata)
    # Every audio file under the folder is in the set; a row gives its file its columns, a file with
    # several rows is compared once per row, and a row naming no file there is recorded as unreadable.
    by_path: dict[str, list[ClipItem]] = {}
    for clip in listed.clips:
        by_path.setdefault(clip.path, []).append(clip)
    items: list[ClipItem] = []
    seen = set()
    for path in files:
        rows_of = by_path.get(str(path))
        if rows_of is None:
            items.append(ClipItem(0, path.relative_to(root).as_posix(), str(path)))
        else:
            items.extend(rows_of)
            seen.add(str(path))
    items += [clip for clip in listed.clips if clip.path not in seen]  # named by a row, not found as audio
    clips = tuple(_numbered(items))
    notes = listed.notes
    unlisted = sum(1 for clip in clips if clip.path not in by_path)
    if unlisted and listed.label_column:
        notes += (f"{unlisted} audio file{'s' if unlisted != 1 else ''} under the folder "
                  f"{'are' if unlisted != 1 else 'is'} not in {metadata.name}: compared without a label",)
    return Dataset(root, "folder", clips, label_column=listed.label_column, text_column=listed.text_column,
                   notes=notes)


def _audio_files(root: Path) -> Iterator[Path]:
    """Audio files under `root`, links to files followed, links to folders not (no loops); hidden
    folders (.git, .cache) skipped."""
    for folder, subfolders, names in os.walk(root, onerror=None, followlinks=False):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            if Path(name).suffix.lower() in AUDIO_SUFFIXES and not name.startswith("."):
                yield Path(folder) / name


def _table(where: Path, rows: Iterable[tuple[int, dict]], form: str, label_column: str | None,
           text_column: str | None = None, origin: Path | None = None) -> Dataset:
    """Rows with a `file_name` column (and a label, a reference text, start and duration), paths
    relative to the folder of the file listing them (`where` is that folder itself for a folder's metadata)."""
    origin = origin or where
    base = where if where.is_dir() else where.parent
    wanted = label_column or DEFAULT_LABEL_COLUMN
    wanted_text = text_column or DEFAULT_TEXT_COLUMN
    items: list[ClipItem] = []
    found_label = False
    columns_seen: set[str] = set()
    for line, row in rows:
        columns_seen.update(row)
        name = row.get(PATH_COLUMN)
        if name is None:
            raise BadInput(f"{origin}: line {line} has no {PATH_COLUMN!r} column (the path of its clip, relative to "
                           f"{'the folder' if form == 'folder' else 'the manifest'}); its columns: "
                           f"{', '.join(sorted(map(str, row))) or 'none'}")
        name = _text(name, origin, line, PATH_COLUMN)
        if not name:
            raise BadInput(f"{origin}: line {line}: the {PATH_COLUMN!r} column is empty")
        label = row.get(wanted)
        if label is not None and label != "":
            found_label = True
            label = _text(label, origin, line, wanted)
        else:
            label = None
        text = row.get(wanted_text)
        if text is not None:
            text = _text(text, origin, line, wanted_text) or None  # an empty cell: no reference text
        start = _seconds(row.get("start"), origin, line, "start", allow_zero=True)
        duration = _seconds(row.get("duration"), origin, line, "duration", allow_zero=False)
        path = Path(name).expanduser()
        path = path if path.is_absolute() else base / path
        items.append(ClipItem(0, name, os.path.normpath(path), label, start, duration, text))
        if len(items) > MAX_CLIPS:
            raise BadInput(f"{origin}: lists more than {MAX_CLIPS:,} clips")
    label_from = wanted if found_label or wanted in columns_seen else None
    text_from = wanted_text if wanted_text in columns_seen else None
    return Dataset(origin, form, tuple(_numbered(items)), label_column=label_from, text_column=text_from)


def _fairseq(where: Path, text: str) -> Dataset:
    lines = text.splitlines()
    root = Path(lines[0].strip()).expanduser()
    root = root if root.is_absolute() else where.parent / root
    items = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[1].strip().isdigit():
            raise BadInput(f"{where}: line {number} is not 'path<TAB>frames' as a fairseq manifest's lines are "
                           f"({quoted(line, 80)})")
        items.append(ClipItem(0, fields[0], os.path.normpath(root / fields[0])))
        if len(items) > MAX_CLIPS:
            raise BadInput(f"{where}: lists more than {MAX_CLIPS:,} clips")
    words = where.with_suffix(FAIRSEQ_WORDS_SUFFIX)
    if not (words.exists() or words.is_symlink()):
        return Dataset(where, "fairseq", tuple(_numbered(items)))
    regular_file(words, "word transcripts")  # never open a FIFO beside the manifest: the read would block
    # Lines end at a newline only (str.splitlines would also end one at a form feed or U+2028 inside a text).
    texts = _read_text(words).split("\n")
    if texts[-1] == "":
        texts.pop()
    if len(texts) != len(items):
        raise BadInput(f"{words}: has {len(texts)} line{'s' if len(texts) != 1 else ''} for the {len(items)} "
                       f"clip{'s' if len(items) != 1 else ''} of {where.name}; fairseq's word transcripts hold one "
                       "line per clip, in the manifest's order")
    items = [replace(item, text=text.strip() or None) for item, text in zip(items, texts)]
    return Dataset(where, "fairseq", tuple(_numbered(items)), text_column=words.name)


def kaldi_refusal(rxfilename: str) -> str | None:
    """Why a wav.scp entry is not a plain path Speechport reads, or None when it is one."""
    stripped = rxfilename.strip()
    if stripped.endswith("|") or stripped.startswith("|"):
        return "is a command to run, whose output would be the audio"
    if stripped == "-" or stripped.startswith("-"):
        return "is Kaldi's standard input"
    if stripped.endswith("]") and "[" in stripped:
        return "is a range of a Kaldi archive"
    if ":" in stripped and stripped.rsplit(":", 1)[1].isdigit():
        return "is a byte offset into a Kaldi archive"
    return None


def _kaldi(where: Path, text: str) -> Dataset:
    items = []
    ids = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split(maxsplit=1)
        if len(fields) != 2:
            raise BadInput(f"{where}: line {number} is not 'utterance-id path' ({quoted(line, 80)})")
        utterance, rxfilename = fields
        why = kaldi_refusal(rxfilename)
        if why is not None:
            raise BadInput(
                f"{where}: line {number} ({named_id(utterance)}): {quoted(rxfilename, 120)} {why}, not a file; "
                "Speechport reads only plain paths from a wav.scp and never runs a command: write the audio to files "
                "first and list their paths", hint="nothing was run and nothing was read")
        if utterance in ids:
            raise BadInput(f"{where}: line {number}: the utterance id {named_id(utterance)} is given twice")
        ids.add(utterance)
        path = Path(rxfilename.strip()).expanduser()
        path = path if path.is_absolute() else where.parent / path
        items.append(ClipItem(0, utterance, os.path.normpath(path)))
        if len(items) > MAX_CLIPS:
            raise BadInput(f"{where}: lists more than {MAX_CLIPS:,} clips")
    return Dataset(where, "kaldi", tuple(_numbered(items)))


def named_id(text: str) -> str:
    return quoted(text, 80)


def _looks_like_trials(text: str) -> bool:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    return bool(lines) and all(len(fields) == 3 and fields[0] in ("0", "1") for fields in lines)


def _trials(where: Path, text: str) -> Dataset:
    trials = []
    paths: dict[str, ClipItem] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        label, enroll, test = line.split()
        for name in (enroll, test):
            if name not in paths:
                path = Path(name).expanduser()
                path = path if path.is_absolute() else where.parent / path
                paths[name] = ClipItem(len(paths), name, os.path.normpath(path))
        trials.append(Trial(label == "1", enroll, test))
        if len(paths) > MAX_CLIPS:
            raise BadInput(f"{where}: names more than {MAX_CLIPS:,} clips")
    return Dataset(where, "trials", tuple(paths.values()), tuple(trials))


# -- reading rows ---------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_LIST_BYTES:
            raise BadInput(f"{path}: is {size / (1 << 20):.0f} MiB; a test set's list is read whole, and at most "
                           f"{MAX_LIST_BYTES >> 20} MiB of one is")
        with open(path, encoding="utf-8-sig", newline="") as handle:  # a BOM from a spreadsheet is not a column
            return handle.read()
    except UnicodeDecodeError:
        raise BadInput(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise unreadable(path, exc, "test set") from None


def _csv_rows(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        if reader.fieldnames is None:
            return
        if len(set(reader.fieldnames)) != len(reader.fieldnames):
            raise BadInput(f"{path}: the header names a column twice ({', '.join(reader.fieldnames)})")
        for row in reader:
            if None in row:  # more fields than the header names
                raise BadInput(f"{path}: line {reader.line_num} has more fields than the header names")
            if all(value in (None, "") for value in row.values()):
                continue
            yield reader.line_num, {key: value for key, value in row.items() if value is not None}
    except csv.Error as exc:
        raise BadInput(f"{path}: line {reader.line_num} cannot be read as {'TSV' if delimiter == chr(9) else 'CSV'} "
                       f"({exc})") from None


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    from ..storage.strict_json import loads

    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = loads(line, f"{path}: line {number}", "the line")
        if not isinstance(row, dict):
            raise BadInput(f"{path}: line {number} is not a JSON object with a {PATH_COLUMN!r} key")
        yield number, row


def _text(value: object, origin: Path, line: int, column: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadInput(f"{origin}: line {line}: the {column!r} column holds {quoted(value, 80)}, not text")
    return str(value).strip()


def _seconds(value: object, origin: Path, line: int, column: str, *, allow_zero: bool) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        need = "0 or more" if allow_zero else "above 0"
        raise BadInput(f"{origin}: line {line}: {column} {quoted(value, 40)} is not a number of seconds {need}")
    return number


def _numbered(items: Iterable[ClipItem]) -> Iterator[ClipItem]:
    """The items in order, indexed from 0, each key unique: a file listed several times is told apart
    by its part (`a.wav@1.5+2`), and by its row where even that repeats (`a.wav#3`)."""
    items = list(items)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.key] = counts.get(item.key, 0) + 1
    taken: set[str] = set()
    for index, item in enumerate(items):
        key = item.key
        if counts[key] > 1:
            key = f"{key}@{item.start or 0:g}+{item.duration:g}" if item.duration else f"{key}@{item.start or 0:g}"
        if key in taken:
            key = f"{key}#{index + 1}"
        taken.add(key)
        yield ClipItem(index, key, item.path, item.label, item.start, item.duration, item.text)

