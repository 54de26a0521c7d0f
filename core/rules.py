"""Renaming rules as data, and the small engine that applies them.

A rule is a regex and what becomes of the keys it matches: a new name (`re.sub` template) or
nothing (dropped, with the reason users will read). Rules are grouped in stages applied one after
another, e.g. "fairseq1 names -> fairseq2 names" and then "fairseq2 names -> transformers names".
Within a stage the first matching rule wins, which is how fairseq2's checkpoint converters behave.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    pattern: str
    target: str | None  # `re.sub` replacement; None drops the key (or refuses it, see `refused`)
    note: str  # for a rename, where it comes from; for a drop or refusal, the reason shown to users
    refused: bool = False  # the target cannot express this key: a problem, not a silent drop

    @property
    def regex(self) -> re.Pattern:
        return _compiled(self.pattern)

    def describe(self) -> str:
        if self.refused:
            return f"cannot map {self.pattern}: {self.note}"
        if self.target is None:
            return f"drop {self.pattern}: {self.note}"
        return f"{self.pattern} -> {self.target} ({self.note})"


def rename(pattern: str, target: str, note: str) -> Rule:
    return Rule(pattern, target, note)


def drop(pattern: str, reason: str) -> Rule:
    return Rule(pattern, None, reason)


def refuse(pattern: str, reason: str) -> Rule:
    """Keys the target architecture has no place for: reported as problems with the reason."""
    return Rule(pattern, None, reason, refused=True)


@dataclass(frozen=True)
class Stage:
    name: str
    rules: Sequence[Rule]
    keep_unmatched: bool = False  # True: a key no rule matches keeps its name (fairseq2 semantics)

    def first_match(self, key: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.regex.search(key)), None)

    def rename_all(self, tensors: dict) -> dict:
        """Apply this stage alone to a whole state dict: renamed keys, dropped keys left out."""
        renamed = {}
        for key, value in tensors.items():
            rule = self.first_match(key)
            if rule is None:
                if self.keep_unmatched:
                    renamed[key] = value
            elif rule.target is not None:
                renamed[rule.regex.sub(rule.target, key, count=1)] = value
        return renamed


@dataclass
class Decision:
    """What the rules make of one source key."""

    target: str | None  # None: dropped (see `dropped`) or unmapped
    dropped: bool = False
    reason: str = ""  # the drop reason, or why nothing mapped the key
    rule: str = ""  # the rule(s) that decided, for display
    via: list[str] = field(default_factory=list)  # intermediate names between stages


class RuleSet:
    """Stages of rules applied in order to every source key."""

    def __init__(self, stages: Sequence[Stage]):
        self.stages = tuple(stages)

    def apply(self, key: str) -> Decision:
        current = key
        applied: list[str] = []
        via: list[str] = []
        for index, stage in enumerate(self.stages):
            rule = stage.first_match(current)
            if rule is None:
                if stage.keep_unmatched:
                    continue
                return Decision(
                    target=None,
                    reason=f"no {stage.name} rule maps it" + (f" (as {current!r})" if current != key else ""),
                    rule=" | ".join(applied),
                    via=via,
                )
            if rule.refused:
                return Decision(
                    target=None, reason=f"cannot map: {rule.note}",
                    rule=" | ".join([*applied, f"{stage.name}: {rule.describe()}"]), via=via,
                )
            if rule.target is None:
                return Decision(
                    target=None, dropped=True, reason=rule.note,
                    rule=" | ".join([*applied, f"{stage.name}: {rule.describe()}"]), via=via,
                )
            renamed = rule.regex.sub(rule.target, current, count=1)
            applied.append(f"{stage.name}: {rule.note}")
            if index < len(self.stages) - 1:
                via.append(renamed)
            current = renamed
        return Decision(target=current, rule=" | ".join(applied), via=via)


_CACHE: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    compiled = _CACHE.get(pattern)
    if compiled is None:
        compiled = _CACHE[pattern] = re.compile(pattern)
    return compiled
