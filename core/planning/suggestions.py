"""Which parameter an unmapped key probably is: candidates ranked for each unmapped source key.

A key no rule maps is usually one the user's checkpoint spells differently: `query` for `q_proj`,
`ln` for `layer_norm`, another separator, an extra prefix. Each unclaimed target parameter is a
candidate, ranked by what can be checked: the same shape first (a tensor can only go where it
fits), then how alike the names are, then the same layer index. Names are compared as tokens
(split at separators and camelCase; numbers kept apart as layer indices) after mapping synonyms
and abbreviations to one word, against the target's name and the original's own name for it
(the derived inverse of the recipe's rules, so `linear_q` is also seen as `q_proj`).

A suggestion is *confident* when its candidate fits the shape and the layer, is clearly more alike
than every other parameter of that shape, and no other unmapped key wants the same parameter: the
window applies those in one step. A key *wants* the parameter that is its best candidate only when
that parameter fits its shape: a key that fits no parameter (an extra classifier of the training
run) or wants one of another shape could never take it, so it withholds nothing. Both tests look at
the parameters still free and the keys still unmapped only, and each can only pass more often as
fixes claim parameters and map keys: fixing one row never takes a confident suggestion from a row
that did not want what the fix claimed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .plan import Plan, PlanRow, Status, TargetTensor
from .rules import Stage

# Variants -> one word. Multi-word variants ("layer norm") are matched before single words.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "q": ("query", "q"),
    "k": ("key", "k"),
    "v": ("value", "v"),
    "out": ("output", "out", "o"),
    "proj": ("proj", "projection", "dense", "linear", "fc"),
    "norm": ("layer norm", "layernorm", "layer_norm", "ln", "norm"),
    "attn": ("self attn", "self attention", "attention", "attn", "mha"),
    "ffn": ("feed forward", "feedforward", "mlp", "ffn"),
    "embed": ("embedding", "embeddings", "embed", "emb"),
    "conv": ("convolution", "conv"),
    "depthwise": ("depthwise", "depth wise", "dw"),
    "pointwise": ("pointwise", "point wise", "pw"),
    "in": ("intermediate", "inner", "in", "up"),
    "rel": ("relative", "rel", "distance"),
    "pos": ("positional", "position", "pos"),
}
_PHRASES = sorted(
    ((tuple(variant.split()), word) for word, variants in SYNONYMS.items() for variant in variants),
    key=lambda item: -len(item[0]),
)
_SEPARATORS = re.compile(r"[._/\-:\s]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+\d*|\d+")
MIN_CONFIDENT_SIMILARITY = 0.5
SIMILARITY_MARGIN = 0.1  # how much more alike than the next candidate of the same shape and layer


@dataclass(frozen=True)
class Suggestion:
    target: str
    shape_matches: bool
    similarity: float  # 0..1: how alike the names are
    same_layer: bool  # the layer indices agree (or neither name has one)
    confident: bool = False

    def to_dict(self) -> dict:
        return {"target": self.target, "shape_matches": self.shape_matches, "similarity": round(self.similarity, 3),
                "same_layer": self.same_layer, "confident": self.confident}


def name_tokens(key: str) -> tuple[list[str], list[int]]:
    """(words after synonyms, layer indices) of a key."""
    words, indices = _tokens(key)
    return list(words), list(indices)


@functools.lru_cache(maxsize=65536)  # every name is compared with every open target: tokenize it once
def _tokens(key: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    raw: list[str] = []
    indices: list[int] = []
    for part in _SEPARATORS.split(key):
        for piece in _CAMEL.findall(part):
            if piece.isdigit():
                indices.append(int(piece))
            else:
                raw.append(piece.lower())
    words: list[str] = []
    position = 0
    while position < len(raw):
        for phrase, word in _PHRASES:
            if tuple(raw[position : position + len(phrase)]) == phrase:
                words.append(word)
                position += len(phrase)
                break
        else:
            words.append(raw[position])
            position += 1
    return tuple(words), tuple(indices)


def similarity(a: str, b: str) -> float:
    """Overlap of the two names' words (a word of 3+ letters also matches one it begins)."""
    return _word_overlap(_tokens(a)[0], _tokens(b)[0])


def _word_overlap(words_a: tuple[str, ...], words_b: tuple[str, ...]) -> float:
    if not words_a or not words_b:
        return 0.0
    unmatched = list(words_b)
    matched = 0
    for word in words_a:
        hit = next((other for other in unmatched if _same_word(word, other)), None)
        if hit is not None:
            unmatched.remove(hit)
            matched += 1
    return matched / (len(words_a) + len(words_b) - matched)


def _same_word(a: str, b: str) -> bool:
    return a == b or (min(len(a), len(b)) >= 3 and (a.startswith(b) or b.startswith(a)))


def suggest(
    plan: Plan,
    targets: Mapping[str, TargetTensor],
    original_stage: Stage | None = None,
    limit: int = 5,
) -> dict[str, list[Suggestion]]:
    """Ranked candidates (best first, at most `limit`) for every unmapped source key with a shape."""
    claimed = {row.target_key for row in plan.rows if row.status is Status.MAPPED}
    open_targets = [key for key in targets if key not in claimed]
    alias_words = {key: [_tokens(alias)[0] for alias in _aliases(key, original_stage)] for key in open_targets}
    target_shapes = {key: tuple(targets[key].shape) for key in open_targets}
    ranked: dict[str, list[Suggestion]] = {}
    for row in _unmapped(plan.rows):
        name_words = [_tokens(name)[0] for name in (row.source_key, *row.via)]
        source_indices = _tokens(row.source_key)[1]
        source_shape = tuple(row.source_shape)
        candidates = []
        for target in open_targets:
            target_indices = _tokens(target)[1]
            candidates.append(Suggestion(
                target,
                shape_matches=target_shapes[target] == source_shape,
                similarity=max(_word_overlap(words, alias) for words in name_words for alias in alias_words[target]),
                same_layer=source_indices == target_indices,
            ))
        candidates.sort(key=lambda s: (s.shape_matches, s.similarity, s.same_layer), reverse=True)
        ranked[row.source_key] = candidates
    return {source: found[:limit] for source, found in _mark_confident(ranked).items()}


def confident_fixes(suggestions: Mapping[str, list[Suggestion]]) -> dict[str, str]:
    """source key -> target for every confident suggestion (what "Apply confident suggestions" does)."""
    return {source: found[0].target for source, found in suggestions.items() if found and found[0].confident}


def _unmapped(rows: Iterable[PlanRow]) -> Iterable[PlanRow]:
    for row in rows:
        if row.status is Status.UNMAPPED and row.source_key and row.source_shape is not None:
            yield row


def _aliases(target: str, stage: Stage | None) -> list[str]:
    original = stage.source_name(target) if stage is not None else None
    return [target, original] if original else [target]


def _clearly_ahead(best: Suggestion, others: Iterable[Suggestion]) -> bool:
    """Nothing else fits as well: every other candidate has another shape, is of another layer and no
    more alike, or is clearly less alike. Every candidate is looked at, not just the runner-up: the
    runner-up may be of another layer while a same-layer one just behind it is nearly as alike, and
    claiming the runner-up must not reveal a doubt that was there all along."""
    for other in others:
        if not other.shape_matches:
            break  # ranked shape first: none after this one fits either
        if not other.same_layer and other.similarity <= best.similarity:
            continue
        if best.similarity - other.similarity < SIMILARITY_MARGIN:
            return False
    return True


def _wanted(found: list[Suggestion]) -> str | None:
    """The parameter this key wants: its best candidate, when that fits its shape. A key whose best
    candidate has another shape could not take it, nor any parameter ranked after it."""
    return found[0].target if found and found[0].shape_matches else None


def _mark_confident(ranked: dict[str, list[Suggestion]]) -> dict[str, list[Suggestion]]:
    """Mark each key's best candidate confident where it is; `ranked` holds every candidate, best first."""
    wanted: dict[str, int] = {}
    for found in ranked.values():
        target = _wanted(found)
        if target is not None:
            wanted[target] = wanted.get(target, 0) + 1
    for found in ranked.values():
        if not found:
            continue
        best = found[0]
        if (best.shape_matches and best.same_layer and best.similarity >= MIN_CONFIDENT_SIMILARITY
                and _clearly_ahead(best, found[1:]) and wanted[best.target] == 1):
            found[0] = Suggestion(best.target, best.shape_matches, best.similarity, best.same_layer, confident=True)
    return ranked
