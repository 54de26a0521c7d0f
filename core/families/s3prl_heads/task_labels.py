"""The class names of the SUPERB tasks whose classes S3PRL fixes, as S3PRL 0.4.18 numbers them.

A head's output i is the class S3PRL gave index i while training it, so these lists are S3PRL's own
order, read from its sources:

- `emotion` (ER, IEMOCAP): `downstream/emotion/dataset.py` takes the class index from the `labels`
  dict of the fold's meta data, `{"neu": 0, "hap": 1, "ang": 2, "sad": 3}` in each of the five folds
  S3PRL ships (`downstream/emotion/meta_data/Session*/`) and in what `IEMOCAP_preprocess.py` writes
  (which also folds "exc" into "hap").
- `speech_commands` (KS): `downstream/speech_commands/dataset.py` numbers its `CLASSES` list in
  order: the ten command words, then `_unknown_` and `_silence_`.

The other tasks have no fixed list: speaker identification and verification number the speakers of
the training data, and diarization names none. Their heads keep transformers' LABEL_i unless a
labels file names them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Args.downstream -> (the class names in index order, where they come from in words)
TASK_CLASSES: dict[str, tuple[tuple[str, ...], str]] = {
    "emotion": (("neu", "hap", "ang", "sad"),
                "S3PRL's emotion task classes (IEMOCAP's neutral, happy, angry and sad, in S3PRL's order)"),
    "speech_commands": (("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_",
                         "_silence_"),
                        "S3PRL's speech_commands task classes (the ten command words, _unknown_ and _silence_, "
                        "in S3PRL's order)"),
}
# Why a task without a fixed list keeps numbered labels.
NO_FIXED_LIST = {
    "voxceleb1": "S3PRL's voxceleb1 task numbers the speakers of its training data",
    "sv_voxceleb1": "S3PRL's sv_voxceleb1 task numbers the speakers of its training data",
    "diarization": "S3PRL's diarization task names no speakers",
}


@dataclass(frozen=True)
class TaskLabels:
    """The class names a head gets without a labels file, and where they come from."""

    names: list[str]
    origin: str  # "S3PRL's emotion task classes (...)", or "LABEL_n: why"
    note: str | None = None  # said in the config notes when a fixed list was not used
    short: str = ""  # a few words for the window's Labels row: "S3PRL's emotion task classes", "S3PRL's emotion task has 4"


def task_labels(downstream: str | None, classes: int) -> TaskLabels:
    """S3PRL's class names for a head of `downstream` with `classes` outputs, when S3PRL fixes them and
    the count matches; else LABEL_0 … LABEL_{classes-1}, saying why."""
    numbered = [f"LABEL_{i}" for i in range(classes)]
    known = TASK_CLASSES.get(downstream or "")
    if known is not None:
        names, origin = known
        if len(names) == classes:
            return TaskLabels(list(names), origin, short=f"S3PRL's {downstream} task classes")
        why = (f"the head has {classes} classes, but S3PRL's {downstream} task has {len(names)} "
               f"({', '.join(names)}), so it was trained on other classes; give a labels file to name them")
        return TaskLabels(numbered, f"LABEL_n: {why}", f"labels: LABEL_0 to LABEL_{classes - 1}: {why}",
                          short=f"S3PRL's {downstream} task has {len(names)}")
    why = NO_FIXED_LIST.get(downstream or "", "the task has no class list Speechport knows")
    return TaskLabels(numbered, f"LABEL_n: {why}; give a labels file to name them")
