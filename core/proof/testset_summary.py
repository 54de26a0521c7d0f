"""What a test set says as a whole: counts, the spread of per-clip max |diff|, the worst clips, and
what the two models decide over the set (top-1 agreement, accuracy, EER, speaker decisions).

Every number here is formed from the clips' records (results.jsonl lines), so a summary is the
same whether the records came from one run, from a resumed one, from local workers or from Ray.

Definitions, so that other tools can reproduce them:

- percentiles of max |diff| are nearest-rank over the clips both models ran on: the p-th is the
  smallest value at or below which p % of them lie (sorted ascending, the value at rank
  ceil(p / 100 * n)); a clip whose outputs could not be compared at all counts as infinite;
- top-1 agreement: the share of clips with one answer per clip on which both models' best class is
  the same; accuracy: the share of labelled clips whose label is a model's best class (the class's
  name, or its index when the label is a whole number);
- a trial's score is the cosine similarity of its two clips' verification embeddings, for each
  model; the EER is where the ROC curve, drawn through the points of every threshold and straight
  between them, crosses false-acceptance = false-rejection (as VoxCeleb's and S3PRL's scoring do);
- a diarization clip's frame disagreement is the share of its frames on which the two models'
  sets of active speakers (sigmoid > 0.5) differ;
- a family adds numbers of its own (`Recipe.testset_aggregates`): for speech recognition models,
  how alike both transcribe and their error rates against the reference text, defined in
  `core.proof.testset_transcripts`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from .testset_clip import ERROR, UNREADABLE
from .testset_transcripts import TEXT, TRANSCRIBED_CLIPS

WORST_SHOWN = 10
PERCENTILES = {"median": 50, "p95": 95, "p99": 99}
# The fields a summary always has (null where they do not apply), in the order summary.json lists them.
SUMMARY_FIELDS = ("verdict", "clips", "passed", "failed", "unreadable", "errors", "tolerance", "max_abs_diff",
                  "worst_clips", "top1_agreement", "accuracy_original", "accuracy_converted", "eer_original",
                  "eer_converted")


def compared(records: Iterable[dict]) -> list[dict]:
    """The records of clips both models ran on."""
    return [r for r in records if r.get("verdict") in ("pass", "fail")]


def diff_of(record: dict) -> float:
    """A clip's max |diff|; infinite where the outputs could not be compared at all (null in JSON)."""
    value = record.get("max_abs_diff")
    return math.inf if value is None else float(value)


def nearest_rank(sorted_values: Sequence[float], percent: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def spread(records: Sequence[dict]) -> dict:
    values = sorted(diff_of(r) for r in records)
    found = {name: nearest_rank(values, percent) for name, percent in PERCENTILES.items()}
    found["worst"] = values[-1] if values else None
    return found


BULKY_FIELDS = ("embeddings",)  # in results.jsonl for the set's own numbers; left out of worst_clips


def reason_of(record: dict) -> str:
    """Why a clip was not compared, as a line that already names the clip says it: the refusal without
    the file's path it starts with (results.jsonl keeps the whole sentence, as `compare` says it)."""
    return str(record.get("error") or "").removeprefix(f"{record.get('path')}: ")


def worst_clips(records: Sequence[dict], count: int = WORST_SHOWN) -> list[dict]:
    """The clips with the largest max |diff|, largest first (ties in set order)."""
    worst = sorted(records, key=lambda r: (-diff_of(r), r.get("index", 0)))[:count]
    return [{key: value for key, value in record.items() if key not in BULKY_FIELDS} for record in worst]


def label_matches(label: str, name: str, index: int) -> bool:
    label = str(label).strip()
    return label == name or (label.isdigit() and int(label) == index)


def classification(records: Sequence[dict]) -> dict:
    answered = [r for r in records if isinstance(r.get("top1"), dict)]
    if not answered:
        return {"top1_agreement": None, "accuracy_original": None, "accuracy_converted": None, "labelled_clips": 0}
    agree = sum(1 for r in answered if r["top1"]["original_index"] == r["top1"]["converted_index"])
    labelled = [r for r in answered if r.get("label") is not None]
    found = {"top1_agreement": agree / len(answered), "top1_disagreements": len(answered) - agree,
             "labelled_clips": len(labelled), "accuracy_original": None, "accuracy_converted": None}
    if labelled:
        for side in ("original", "converted"):
            right = sum(1 for r in labelled if label_matches(r["label"], r["top1"][side], r["top1"][f"{side}_index"]))
            found[f"accuracy_{side}"] = right / len(labelled)
    return found


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def equal_error_rate(scores: Sequence[float], targets: Sequence[bool]) -> float | None:
    """The EER of trials (`targets[i]`: the same speaker), as the ROC curve's crossing of
    false acceptance = false rejection; None without both kinds of trial."""
    positives = sum(1 for t in targets if t)
    negatives = len(targets) - positives
    if not positives or not negatives:
        return None
    # The ROC's points, one per distinct score taken as the threshold (accepted: score >= it), from
    # the highest threshold down, starting at (0, 0).
    order = sorted(zip(scores, targets), key=lambda pair: -pair[0])
    points = [(0.0, 0.0)]
    true_accepts = false_accepts = 0
    for index, (score, target) in enumerate(order):
        if target:
            true_accepts += 1
        else:
            false_accepts += 1
        if index + 1 == len(order) or order[index + 1][0] != score:
            points.append((false_accepts / negatives, true_accepts / positives))
    # Where 1 - fpr - tpr (false rejection minus false acceptance) turns from positive to zero or below.
    for (fpr0, tpr0), (fpr1, tpr1) in zip(points, points[1:]):
        before, after = 1 - fpr0 - tpr0, 1 - fpr1 - tpr1
        if before > 0 >= after:
            share = before / (before - after)
            return fpr0 + share * (fpr1 - fpr0)
    return None


def verification(records: Sequence[dict], trials) -> dict:
    found = {"eer_original": None, "eer_converted": None, "trials": len(trials), "trials_scored": 0,
             "score_max_abs_diff": None}
    if not trials:
        return found
    embeddings = {r["key"]: r["embeddings"] for r in records if isinstance(r.get("embeddings"), dict)}
    scored = [(t, embeddings[t.enroll], embeddings[t.test]) for t in trials
              if t.enroll in embeddings and t.test in embeddings]
    if not scored:
        return found
    targets = [t.target for t, _, _ in scored]
    original = [cosine(a["original"], b["original"]) for _, a, b in scored]
    converted = [cosine(a["converted"], b["converted"]) for _, a, b in scored]
    found.update(trials_scored=len(scored), eer_original=equal_error_rate(original, targets),
                 eer_converted=equal_error_rate(converted, targets),
                 score_max_abs_diff=max(abs(a - b) for a, b in zip(original, converted)))
    return found


def diarization(records: Sequence[dict]) -> dict | None:
    shares = [(r["speaker_frame_disagreement"], r) for r in records
              if isinstance(r.get("speaker_frame_disagreement"), (int, float))]
    if not shares:
        return None
    return {"mean": sum(s for s, _ in shares) / len(shares), "worst": max(s for s, _ in shares),
            "clips_with_any": sum(1 for s, _ in shares if s > 0), "clips": len(shares)}


def summarize(records: Sequence[dict], *, clips_in_set: int, tolerance: float, trials=(), recipe_class=None) -> dict:
    """The summary of a set's records (summary.json's numbers; the caller adds what the run was)."""
    done = compared(records)
    passed = sum(1 for r in done if r["verdict"] == "pass")
    failed = len(done) - passed
    unreadable = sum(1 for r in records if r.get("verdict") == UNREADABLE)
    errors = sum(1 for r in records if r.get("verdict") == ERROR)
    verdict = "fail" if failed else ("pass" if passed else None)
    summary = {"verdict": verdict, "clips": clips_in_set, "passed": passed, "failed": failed,
               "unreadable": unreadable, "errors": errors, "tolerance": tolerance, "max_abs_diff": spread(done),
               "worst_clips": worst_clips(done)}
    summary.update(classification(done))
    summary.update(verification(done, trials))
    summary["speaker_frame_disagreement"] = diarization(done)
    notes = []
    if summary.get("labelled_clips") and summary["accuracy_original"] == 0 and summary["accuracy_converted"] == 0:
        notes.append("no label matched either model's best class on any clip: labels must be the model's class "
                     "names (its config's id2label) or their indices")
    if trials and not summary["trials_scored"]:
        notes.append("no trial could be scored: the model gives no speaker-verification embeddings, or the "
                     "trials' clips could not be compared")
    hook = getattr(recipe_class, "testset_aggregates", None)
    if hook is not None and done:
        extra = hook(done)
        summary.update({key: value for key, value in extra.items() if key not in summary})
    if summary.get(TRANSCRIBED_CLIPS) is None and any(isinstance(r.get(TEXT), str) for r in done):
        notes.append("the set's reference texts were not read: the model does not transcribe (they are for speech "
                     "recognition models)")
    summary["notes"] = notes
    return summary


def histogram(values: Sequence[float], tolerance: float, per_decade: int = 4) -> dict:
    """Counts of per-clip max |diff| in bins equally wide on a log scale (`per_decade` to a factor of
    10), from the decade below the smallest value to the one above the largest and the tolerance;
    exact zeros go to the first bin, values that could not be compared (infinite) are counted apart.
    The report's plot and the window's draw the same bins."""
    finite = [v for v in values if math.isfinite(v)]
    positive = [v for v in finite if v > 0]
    low = math.floor(math.log10(min([*positive, tolerance]))) if positive else math.floor(math.log10(tolerance)) - 3
    high = math.ceil(math.log10(max([*positive, tolerance]) * (1 + 1e-12)))
    high = max(high, low + 1)
    edges = [10 ** (low + i / per_decade) for i in range((high - low) * per_decade + 1)]
    counts = [0] * (len(edges) - 1)
    for value in finite:
        if value <= edges[0]:
            counts[0] += 1
            continue
        position = int((math.log10(value) - low) * per_decade)
        counts[min(max(position, 0), len(counts) - 1)] += 1
    return {"edges": edges, "counts": counts, "infinite": len(values) - len(finite), "tolerance": tolerance}
