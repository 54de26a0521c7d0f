"""What a comparison found, in sentences for people who never read the code.

The verdict label keeps its short form ("✓ pass — max |diff| 1.4e-5 ≤ 5e-3"); beside it goes one
sentence built here from the same `core.comparison.ClipComparison`: how close the two models are
next to the tolerance and, when they are not, where they start to differ — or, for heads that give
one answer per clip, which label each model picks or how alike their speaker embeddings are.
The tooltips that explain each metric are here too, one sentence each, so every place that
shows a metric explains it the same way.
"""

from __future__ import annotations

import math

import numpy as np

# One plain sentence per metric, for the tooltips wherever the metric is shown.
MAX_DIFF = ("|diff| is how far apart the two models' numbers are; max |diff| is the largest such gap "
            "anywhere in the output, and the verdict compares it with the tolerance.")
MEAN_DIFF = "The average gap between the two models' numbers, over every value compared."
NMSE = ("How large the differences are next to the original's own values, in decibels: every −10 dB is ten "
        "times smaller, so −60 dB means the differences carry a millionth of the output's energy.")
COSINE = ("Cosine similarity says whether the two models' outputs point the same way: 1 means they do exactly, "
          "anything lower means they disagree.")
TOLERANCE = "The largest gap between the two models that still counts as the same result."
FRAMES = "How many moments of the clip the models gave an output for, and how far apart they are."
TIME = "How long the original and the converted model took on this clip."
DIFF_HEATMAP = ("|diff| is how far apart the two models' numbers are at each moment (across) and feature (up); "
                "pale means within the tolerance.")
SIMILARITY = ("Cosine similarity of the two models' speaker embeddings: 1 means the converted model describes "
              "the speaker exactly as the original does.")

FAR_BELOW = 10  # a gap this many times smaller than the tolerance is "far below" it


def plain_number(value: float) -> str:
    """A number as people write it, without exponents: 0.000014, 0.035, 1.5, 2,300."""
    if value != value:
        return "not a number"
    if math.isinf(value):
        return "infinite"
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.3g}"
    decimals = -math.floor(math.log10(magnitude)) + 1  # two significant digits
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(probability: float) -> str:
    """0.973 → "97 %"; below half a percent, "<1 %"."""
    if probability < 0.005:
        return "<1 %"
    return f"{round(probability * 100)} %"


def seconds_span(start: float, end: float) -> str:
    """(10, 130) → "10.0–130.0 s"."""
    return f"{start:.1f}–{end:.1f} s"


def verdict_sentence(result, tolerance: float, segment: tuple[float, float] | None = None) -> str:
    """One sentence for a `ClipComparison`: how close the models are, in words and plain numbers."""
    details = result.details or {}
    if getattr(result, "transcript_original", None) is not None:
        sentence = f"{heard_sentence(result)}; {_lower_first(_closeness(result, tolerance))}"
    elif "top5" in details:
        sentence = f"{_labels_sentence(result)}; {_lower_first(_closeness(result, tolerance, SCORES))}"
    elif "verification_embedding_cosine" in details:
        embedding = _embedding_sentence(details["verification_embedding_cosine"], result.verdict == "pass")
        sentence = f"{embedding}; {_lower_first(_closeness(result, tolerance, EMBEDDINGS))}"
    else:
        sentence = _closeness(result, tolerance)
    if segment is not None:
        sentence = f"On {seconds_span(*segment)} of the clip, {_lower_first(sentence)}"
    return sentence if sentence.endswith(".") else sentence + "."


# How the closeness sentence names what it compares: (subject, how it matches, how it differs).
OUTPUTS = ("The converted model's outputs", "match the original's", "differ from the original's")
SCORES = ("their scores", "match", "differ")
EMBEDDINGS = ("the embeddings' values", "match", "differ")


def _closeness(result, tolerance: float, words: tuple[str, str, str] = OUTPUTS) -> str:
    """How close the two models are: "… match the original's to within 0.000014 — far below …"."""
    subject, match, differ = words
    largest = result.max_abs_diff
    if math.isinf(largest):
        return "The converted model's output has another shape than the original's: the conversion is wrong"
    if largest != largest:
        return f"{subject} are not numbers (NaN), so they cannot match the original's"
    if result.verdict == "pass":
        if largest == 0:
            return f"{subject} {match} exactly"
        closeness = "far below" if largest * FAR_BELOW <= tolerance else "within"
        within = "less than 0.000001" if largest < 1e-6 else plain_number(largest)
        return f"{subject} {match} to within {within} — {closeness} the {plain_number(tolerance)} tolerance"
    where = result.first_divergent_layer
    place = (", in the output itself" if where in (None, "output")
             else f", starting at {where}: the conversion is wrong there")
    return f"{subject} {differ} by up to {plain_number(largest)} (the tolerance is {plain_number(tolerance)}){place}"


HEARD_CHARACTERS = 160  # a transcript longer than this is cut in the sentence (the transcript lanes show it whole)


def heard_sentence(result) -> str:
    """What a speech recognition model's two sides hear: the same words, or how far apart they are."""
    ours, theirs = result.transcript_original, result.transcript_converted
    if ours == theirs:
        return f"Both models hear: {_quoted(ours)}"
    rate = result.character_error_rate
    share = f"{rate:.1%} of the characters" if rate is not None and rate == rate else "some characters"
    return f"The models hear differently ({share}): the original {_quoted(ours)}, the converted {_quoted(theirs)}"


def _quoted(text: str | None) -> str:
    if not text:
        return "nothing"
    cut = text if len(text) <= HEARD_CHARACTERS else text[: HEARD_CHARACTERS - 1] + "…"
    return f"“{cut}”"


def _labels_sentence(result) -> str:
    """Which label each model picks, with how sure each is."""
    details = result.details
    top = details["top5"][0]
    label = top["label"]
    if details.get("top1_agrees"):
        return f"Both models pick '{label}' ({percent(top['original'])} vs {percent(top['converted'])})"
    other, probability = converted_choice(result)
    theirs = f"'{other}' ({percent(probability)})" if other is not None else "another label"
    return f"The models pick different labels: the original '{label}' ({percent(top['original'])}), the converted model {theirs}"


def converted_choice(result) -> tuple[str | None, float]:
    """The converted model's own best label and its probability (it may lie outside the original's top 5)."""
    labels = result.converted.extras.get("labels") if result.converted is not None else None
    if not labels:
        return None, 0.0
    logits = np.asarray(result.converted.primary.detach().double().cpu().numpy()).ravel()
    if len(logits) != len(labels) or not np.isfinite(logits).all():
        return None, 0.0
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    best = int(probabilities.argmax())
    return labels[best], float(probabilities[best])


def _embedding_sentence(cosine: float, passed: bool) -> str:
    if passed:
        return f"The two models describe the speaker the same way (similarity {cosine:.6f}, where 1 means identical)"
    return f"The two models describe the speaker differently (similarity {cosine:.6f}, where 1 would be identical)"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
