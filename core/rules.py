"""Renaming rules as data, and the small engine that applies them.

A rule is a regex and what becomes of the keys it matches: a new name (`re.sub` template) or
nothing (dropped, with the reason users will read). Rules are grouped in stages applied one after
another, e.g. "fairseq1 names -> fairseq2 names" and then "fairseq2 names -> transformers names".
Within a stage the first matching rule wins, which is how fairseq2's checkpoint converters behave.

Patterns users write (mapping files, the window's bulk rename) are run by the `regex` module with
a time limit per key, so that one with catastrophic backtracking (`^(a+)+$`) is refused by name
instead of hanging; the recipes' own patterns are plain `re`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import regex

from .errors import BadInput

# A sane pattern matches a checkpoint key in microseconds; one that needs this long per key is
# backtracking catastrophically, and would take hours over a whole plan.
USER_PATTERN_SECONDS = 0.25


@dataclass(frozen=True)
class Rule:
    pattern: str
    target: str | None  # `re.sub` replacement; None drops the key (or refuses it, see `refused`)
    note: str  # for a rename, where it comes from; for a drop or refusal, the reason shown to users
    refused: bool = False  # the target cannot express this key: a problem, not a silent drop
    user: bool = False  # written by a user: matched with a time limit (see USER_PATTERN_SECONDS)

    @property
    def regex(self) -> re.Pattern:
        return _compiled(self.pattern)

    def search(self, key: str):
        if not self.user:
            return self.regex.search(key)
        return user_search(self.pattern, key, "mapping rule")

    def sub(self, key: str) -> str:
        if not self.user:
            return self.regex.sub(self.target, key, count=1)
        return user_sub(self.pattern, self.target, key, "mapping rule")

    def inverse(self) -> Rule | None:
        """The rule mapping this rule's targets back to its sources, when that is one-to-one.

        Derived, never written twice: a rename `^lit(group)lit(group)...$` -> `lit\\1lit\\2...`
        whose template uses every group once inverts to `^lit(group)...$` -> `lit\\1...` with the
        groups swapped back. Anything else (alternation outside groups, optional parts, a group
        used twice or not at all) loses information and has no inverse.
        """
        if self.target is None or self.user:
            return None
        return _inverse(self)

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
        return next((rule for rule in self.rules if rule.search(key)), None)

    def source_name(self, target: str) -> str | None:
        """The name that this stage renames to `target`, through the derived inverse rules; None
        when no invertible rule produces it. Checked forwards, so a name it returns really maps."""
        for rule in self.rules:
            inverse = rule.inverse()
            if inverse is None or not inverse.regex.search(target):
                continue
            candidate = inverse.sub(target)
            if self.first_match(candidate) is rule and rule.sub(candidate) == target:
                return candidate
        return None

    def rename_all(self, tensors: dict) -> dict:
        """Apply this stage alone to a whole state dict: renamed keys, dropped keys left out."""
        renamed = {}
        for key, value in tensors.items():
            rule = self.first_match(key)
            if rule is None:
                if self.keep_unmatched:
                    renamed[key] = value
            elif rule.target is not None:
                renamed[rule.sub(key)] = value
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
            renamed = rule.sub(current)
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


# -- patterns users write -----------------------------------------------------------------------


def compile_user_pattern(pattern: str, origin: str = "pattern") -> regex.Pattern:
    """A user's pattern, compiled as `re` would (VERSION0 semantics); `BadInput` when it is invalid
    or repeats a repetition, the textbook form of catastrophic backtracking."""
    try:
        compiled = _user_compiled(pattern)
    except regex.error as exc:
        raise BadInput(f"{origin}: invalid regular expression {pattern!r} ({exc})") from None
    if _repeated_repetition(pattern):
        raise BadInput(
            f"{origin}: the regular expression {pattern!r} repeats a repetition (as (a+)+ does), which can take "
            "exponential time on a key it does not match; write it without the outer repetition"
        )
    return compiled


@functools.lru_cache(maxsize=256)  # checked once per pattern, not once per key matched
def _repeated_repetition(pattern: str) -> bool:
    """`(a+)+`, `(?:x*)*`, `(a{1,5})+`: a group repeated more than once whose whole body is itself a
    variable repetition matches one string in exponentially many ways (and means the same as the
    inner repetition alone). Patterns like `(\\w+\\.)*` (a separator after the repetition) are fine."""
    try:
        from re import _parser as parser  # the stdlib's own parse of the pattern
    except ImportError:  # Python 3.10
        import sre_parse as parser
    try:
        tree = parser.parse(pattern)
    except re.error:
        return False
    repeats = (parser.MAX_REPEAT, parser.MIN_REPEAT)

    def body(items):
        while len(items) == 1 and items[0][0] is parser.SUBPATTERN:
            items = items[0][1][-1]
        return items

    def walk(items) -> bool:
        for op, argument in items:
            if op in repeats:
                low, high, inner = argument
                inner = list(body(list(inner)))
                if high > 1 and len(inner) == 1 and inner[0][0] in repeats:
                    inner_low, inner_high, _ = inner[0][1]
                    if inner_high > inner_low:
                        return True
                if walk(inner):
                    return True
            elif op is parser.SUBPATTERN and walk(argument[-1]):
                return True
            elif op is parser.BRANCH and any(walk(branch) for branch in argument[1]):
                return True
        return False

    return walk(tree.data if hasattr(tree, "data") else tree)


def user_search(pattern: str, key: str, origin: str = "pattern"):
    try:
        return compile_user_pattern(pattern, origin).search(key, timeout=USER_PATTERN_SECONDS)
    except TimeoutError:
        raise _too_slow(pattern, key, origin) from None


def user_sub(pattern: str, replacement: str, key: str, origin: str = "pattern") -> str:
    try:
        return compile_user_pattern(pattern, origin).sub(replacement, key, timeout=USER_PATTERN_SECONDS)
    except TimeoutError:
        raise _too_slow(pattern, key, origin) from None
    except (regex.error, IndexError) as exc:
        raise BadInput(f"{origin}: the replacement {replacement!r} does not fit {pattern!r} ({exc})") from None


def _too_slow(pattern: str, key: str, origin: str) -> BadInput:
    return BadInput(
        f"{origin}: the regular expression {pattern!r} takes more than {USER_PATTERN_SECONDS:g} s to match "
        f"{key!r}: it backtracks catastrophically (nested repetition like (a+)+); simplify it"
    )


_USER_CACHE: dict[str, regex.Pattern] = {}


def _user_compiled(pattern: str) -> regex.Pattern:
    compiled = _USER_CACHE.get(pattern)
    if compiled is None:
        compiled = _USER_CACHE[pattern] = regex.compile(pattern, flags=regex.VERSION0)
    return compiled


# -- inverting simple rules -----------------------------------------------------------------------

_METACHARACTERS = set(".^$*+?{}[]|()")


def _pattern_parts(pattern: str) -> list[tuple[str, str]] | None:
    """`^lit(group)lit...$` as [("lit", text) | ("group", regex)], or None for anything else."""
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        return None
    body, parts, literal, index = pattern[1:-1], [], "", 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1 : index + 2]
            if not escaped or escaped.isalnum():
                return None  # a class such as \\d outside a group
            literal += escaped
            index += 2
        elif char == "(":
            end = _closing_parenthesis(body, index)
            group = body[index + 1 : end] if end is not None else None
            if group is None or group.startswith("?") or "(" in group:
                return None  # non-capturing, nested or unbalanced: group numbers would not line up
            if literal:
                parts.append(("lit", literal))
                literal = ""
            parts.append(("group", group))
            index = end + 1
        elif char in _METACHARACTERS:
            return None
        else:
            literal += char
            index += 1
    if literal:
        parts.append(("lit", literal))
    return parts


def _closing_parenthesis(text: str, start: int) -> int | None:
    depth, index = 0, start
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def _template_parts(template: str) -> list[tuple[str, object]] | None:
    """A `re.sub` template as [("lit", text) | ("ref", group number)], or None if it escapes anything else."""
    parts: list[tuple[str, object]] = []
    literal, index = "", 0
    while index < len(template):
        char = template[index]
        if char != "\\":
            literal += char
            index += 1
            continue
        match = re.match(r"\\(?:(\d+)|g<(\d+)>)", template[index:])
        if match is None:
            return None
        if literal:
            parts.append(("lit", literal))
            literal = ""
        parts.append(("ref", int(match.group(1) or match.group(2))))
        index += match.end()
    if literal:
        parts.append(("lit", literal))
    return parts


def _inverse(rule: Rule) -> Rule | None:
    pattern, template = _pattern_parts(rule.pattern), _template_parts(rule.target or "")
    if pattern is None or template is None:
        return None
    groups = [text for kind, text in pattern if kind == "group"]
    references = [number for kind, number in template if kind == "ref"]
    if sorted(references) != list(range(1, len(groups) + 1)):
        return None  # a group dropped or used twice: the target does not determine the source
    order = {number: position + 1 for position, number in enumerate(references)}  # group -> its place in the target
    inverse_pattern = "^" + "".join(
        re.escape(text) if kind == "lit" else f"({groups[text - 1]})" for kind, text in template
    ) + "$"
    group_number = 0
    inverse_template = ""
    for kind, text in pattern:
        if kind == "lit":
            inverse_template += text.replace("\\", "\\\\")
        else:
            group_number += 1
            inverse_template += f"\\g<{order[group_number]}>"
    return Rule(inverse_pattern, inverse_template, f"reverse of: {rule.note}")
