"""Renaming rules as data, and the small engine that applies them.

A rule is a regex and what becomes of the keys it matches: a new name (`re.sub` template) or
nothing (dropped, with the reason users will read). Rules are grouped in stages applied one after
another, e.g. "fairseq1 names -> fairseq2 names" and then "fairseq2 names -> transformers names".
Within a stage the first matching rule wins, which is how fairseq2's checkpoint converters behave.

Patterns users write (mapping files, the window's bulk rename) are bounded before they run, so
that none can hang a plan. Each is refused, by name, when it is longer than any key pattern needs
or has the shape that backtracks exponentially: a repeated group that can split a key among its
repetitions in more than one way (`(a+)+`, `(a|aa)+`, `(.*\\.)+`). The work of all of them together
is counted before any of them runs: each pattern reads every key once, so a plan's patterns read
(patterns x characters of keys), refused past USER_PATTERN_WORK. What the shape check cannot see
(a polynomial blow-up) is cut by the `regex` module's time limit, per match and for the whole plan.
The recipes' own patterns are plain `re`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import regex

from ..errors import BadInput, quoted

# The longest pattern a user may write: a key pattern needs a few dozen characters, and the
# shape check below parses the pattern in Python.
MAX_USER_PATTERN_CHARS = 1_000
# The work of a plan's user patterns, counted before any runs: characters of keys read, each
# pattern reading every key (plus one per key). Matched and renamed, keys of 80 characters go
# through at about 30 million characters a second (2 cores, 2026), so the limit is under two
# seconds of matching; a mapping file of 20 patterns on a checkpoint of 10,000 such keys reads 16 million.
USER_PATTERN_WORK = 50_000_000
# Backstops for what the shape check cannot see: no match may take longer than this...
USER_PATTERN_SECONDS = 0.25
# ... nor the matches of one plan longer than this in all.
USER_PATTERNS_TOTAL_SECONDS = 10.0


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
                    reason=f"no {stage.name} rule maps it" + (f" (as {quoted(current)})" if current != key else ""),
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
    """A user's pattern, compiled as `re` would (VERSION0 semantics); `BadInput` when it is invalid,
    too long, or has a shape that backtracks exponentially (see `_backtracking_shape`)."""
    if len(pattern) > MAX_USER_PATTERN_CHARS:
        raise BadInput(f"{origin}: the regular expression {quoted(pattern)} is {len(pattern):,} characters long; "
                       f"a pattern may have at most {MAX_USER_PATTERN_CHARS:,}")
    try:
        compiled = _user_compiled(pattern)
    except regex.error as exc:
        raise BadInput(f"{origin}: invalid regular expression {quoted(pattern)} ({exc})") from None
    shape = _backtracking_shape(pattern)
    if shape == "nested":
        raise BadInput(
            f"{origin}: the regular expression {quoted(pattern)} repeats a repetition (as (a+)+ does), which can take "
            "exponential time on a key it does not match; write it without the outer repetition"
        )
    if shape == "ambiguous":
        raise BadInput(
            f"{origin}: the regular expression {quoted(pattern)} repeats a group that can split a key among its "
            "repetitions in more than one way (as (a|aa)+ and (.*\\.)+ do), which can take exponential time on a key "
            "it does not match; let each repetition end where the next cannot begin, e.g. ([^.]*\\.)+"
        )
    return compiled


def check_user_replacement(replacement: str, origin: str = "pattern") -> str:
    """A user's replacement template, refused when longer than MAX_USER_PATTERN_CHARS."""
    if len(replacement) > MAX_USER_PATTERN_CHARS:
        raise BadInput(f"{origin}: the replacement {quoted(replacement)} is {len(replacement):,} characters long; "
                       f"a replacement may have at most {MAX_USER_PATTERN_CHARS:,}")
    return replacement


def user_pattern_work(patterns: int, keys: Iterable[str]) -> int:
    """The work `patterns` user patterns do on `keys`: characters read, every pattern reading every key."""
    return patterns * sum(len(key) + 1 for key in keys)


@dataclass
class _PlanBudget:
    work_left: int  # characters the plan's user patterns may still read, or add to keys
    deadline: float  # time.monotonic() by which they must be done


# The budget of the plan being built in this thread, or None outside a plan (the window's previews).
_BUDGET: contextvars.ContextVar[_PlanBudget | None] = contextvars.ContextVar("user_pattern_budget", default=None)


@contextlib.contextmanager
def bounded_user_patterns(rules: Sequence[Rule], keys: Sequence[str]) -> Iterator[None]:
    """The user patterns among `rules` are about to run on `keys` (one plan): refuse them, before any
    runs, when their work is over USER_PATTERN_WORK. While they run, what they read is counted
    against the same budget, and so is every character a rename adds to a key (source rules that
    lengthen keys make the rules after them read more); their matches together may take
    USER_PATTERNS_TOTAL_SECONDS at most."""
    patterns = sum(1 for rule in rules if rule.user)
    if patterns == 0:
        yield
        return
    work = user_pattern_work(patterns, keys)
    if work > USER_PATTERN_WORK:
        raise BadInput(
            f"the mapping file's {patterns} pattern(s) would read {work:,} characters of the checkpoint's "
            f"{len(keys):,} keys, more than the {USER_PATTERN_WORK:,} one plan may read; use fewer rules "
            "(one pattern can match many keys), or [rename] entries for single keys"
        )
    token = _BUDGET.set(_PlanBudget(USER_PATTERN_WORK, time.monotonic() + USER_PATTERNS_TOTAL_SECONDS))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _spend(characters: int, pattern: str, origin: str) -> float:
    """Count `characters` against the plan's budget; the time the next match may take."""
    budget = _BUDGET.get()
    if budget is None:
        return USER_PATTERN_SECONDS
    if characters > budget.work_left:
        raise _over_budget(pattern, origin)
    budget.work_left -= characters
    left = budget.deadline - time.monotonic()
    if left <= 0:
        raise _out_of_time(pattern, origin)
    return min(USER_PATTERN_SECONDS, left)


def user_search(pattern: str, key: str, origin: str = "pattern"):
    compiled = compile_user_pattern(pattern, origin)
    limit = _spend(len(key) + 1, pattern, origin)
    try:
        return compiled.search(key, timeout=limit)
    except TimeoutError:
        raise _too_slow(pattern, key, origin, limit) from None


def user_sub(pattern: str, replacement: str, key: str, origin: str = "pattern") -> str:
    """`key` with every match of `pattern` replaced (as `re.sub`). The key was searched just before,
    so in a plan only what the rename adds to it counts against the budget; a rename that could add
    more than is left is refused before it runs."""
    compiled = compile_user_pattern(pattern, origin)
    check_user_replacement(replacement, origin)
    budget = _BUDGET.get()
    if budget is not None:
        # At most len(key) + 1 matches, each replaced by the template's text and (at most one per
        # backslash) groups of at most the whole key: what it can add at most, known before it runs.
        most = (len(key) + 1) * (len(replacement) + replacement.count("\\") * len(key))
        if most > budget.work_left:
            raise BadInput(
                f"{origin}: {quoted(replacement)} in place of each match of {quoted(pattern)} could make a key of "
                f"{len(key):,} characters {len(key) + most:,} long, more than the {budget.work_left:,} characters "
                f"left of the {USER_PATTERN_WORK:,} one plan may read; simplify the rule"
            )
    limit = _spend(0, pattern, origin)
    try:
        renamed = compiled.sub(replacement, key, timeout=limit)
    except TimeoutError:
        raise _too_slow(pattern, key, origin, limit) from None
    except (regex.error, IndexError) as exc:
        raise BadInput(f"{origin}: the replacement {quoted(replacement)} does not fit {quoted(pattern)} ({exc})") from None
    _spend(max(len(renamed) - len(key), 0), pattern, origin)
    return renamed


def _over_budget(pattern: str, origin: str) -> BadInput:
    return BadInput(f"{origin}: the mapping file's patterns would read more than the {USER_PATTERN_WORK:,} characters "
                    f"of keys one plan may read (at {quoted(pattern)}, after renames made keys longer); simplify them")


def _out_of_time(pattern: str, origin: str) -> BadInput:
    return BadInput(f"{origin}: the mapping file's patterns took more than {USER_PATTERNS_TOTAL_SECONDS:g} s in "
                    f"all to match the checkpoint's keys (stopped at {quoted(pattern)}); simplify them")


def _too_slow(pattern: str, key: str, origin: str, limit: float) -> BadInput:
    if limit < USER_PATTERN_SECONDS:  # the plan's time ran out, not this match's
        return _out_of_time(pattern, origin)
    return BadInput(
        f"{origin}: the regular expression {quoted(pattern)} takes more than {USER_PATTERN_SECONDS:g} s to match "
        f"{quoted(key)}: it backtracks catastrophically; simplify it"
    )


# -- the shape of a pattern that backtracks exponentially ----------------------------------------
#
# A backtracking matcher tries every way a pattern can match a key before it gives up on it. A
# repeated group that can split one string among its repetitions in several ways has exponentially
# many: `(a|aa)+` splits forty 'a's in 2**40 ways, `(.*\.)+` a key of forty dots likewise. That
# happens where, inside the repeated group, a choice (a repetition that can stop or go on, an
# alternative among several) can be resolved two ways by the same next character: the repetition's
# characters and what may follow it (the rest of the group, or the group's next repetition) share a
# character, or two alternatives can begin with the same one. Patterns are read with the stdlib's
# own parser; sets of characters are compared on an alphabet of ASCII, a few characters of each
# Unicode class, and every character the pattern names.

try:
    from re import _parser as _sre  # Python 3.11+
except ImportError:  # Python 3.10
    import sre_parse as _sre  # type: ignore[no-redef]

_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", _sre.MAX_REPEAT)}
_ATOMIC = getattr(_sre, "ATOMIC_GROUP", None)
_ZERO_WIDTH = {_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT}
_CATEGORIES = {
    _sre.CATEGORY_DIGIT: re.compile(r"\d"), _sre.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    _sre.CATEGORY_SPACE: re.compile(r"\s"), _sre.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    _sre.CATEGORY_WORD: re.compile(r"\w"), _sre.CATEGORY_NOT_WORD: re.compile(r"\W"),
}
_OTHER_CHARACTERS = "\n\x85\xa0\xe9\xdf\u0130\u017f\u0663\u2028\u212a\u4e2d\U0001d7d8"


@functools.lru_cache(maxsize=256)  # checked once per pattern, not once per key matched
def _backtracking_shape(pattern: str) -> str | None:
    """"nested" (a group repeated whose whole body is a repetition: `(a+)+`), "ambiguous" (a repeated
    group that can split a string among its repetitions in several ways), or None."""
    try:
        tree = _sre.parse(pattern)
    except (re.error, RecursionError):
        return None  # `regex` compiled it; nothing the stdlib parser refuses is checked further
    alphabet = _alphabet(pattern)
    found: list[str] = []

    def chars(test, ignore_case: bool) -> frozenset[str]:
        if not ignore_case:
            return frozenset(c for c in alphabet if test(c))
        return frozenset(c for c in alphabet if test(c) or test(c.lower()) or test(c.upper()))

    def in_set(items, ignore_case: bool) -> frozenset[str]:
        negate = bool(items) and items[0][0] is _sre.NEGATE

        def test(c: str) -> bool:
            hit = any(_class_item_matches(op, argument, c) for op, argument in items if op is not _sre.NEGATE)
            return hit != negate

        return chars(test, ignore_case)

    def first(items, ignore_case: bool) -> tuple[frozenset[str], bool]:
        """(characters a match of `items` can begin with, whether it can be empty)."""
        union: frozenset[str] = frozenset()
        for op, argument in items:
            begins, empty = first_of(op, argument, ignore_case)
            union |= begins
            if not empty:
                return union, False
        return union, True

    def first_of(op, argument, ignore_case: bool) -> tuple[frozenset[str], bool]:
        if op is _sre.LITERAL:
            return chars(lambda c: c == chr(argument), ignore_case), False
        if op is _sre.NOT_LITERAL:
            return chars(lambda c: c != chr(argument), ignore_case), False
        if op is _sre.ANY:
            return chars(lambda c: c != "\n", False) | (alphabet if _dot_all(tree) else frozenset()), False
        if op is _sre.IN:
            return in_set(argument, ignore_case), False
        if op in _ZERO_WIDTH:
            return frozenset(), True
        if op is _sre.SUBPATTERN:
            return first(argument[-1], _group_ignore_case(argument, ignore_case))
        if _ATOMIC is not None and op is _ATOMIC:
            return first(argument, ignore_case)
        if op is _sre.BRANCH:
            parts = [first(branch, ignore_case) for branch in argument[1]]
            return frozenset().union(*(begins for begins, _ in parts)), any(empty for _, empty in parts)
        if op in _REPEATS:
            low, _, body = argument
            begins, empty = first(body, ignore_case)
            return begins, empty or low == 0
        if op is _sre.GROUPREF_EXISTS:
            _, yes, no = argument
            parts = [first(yes, ignore_case), first(no or [], ignore_case)]
            return parts[0][0] | parts[1][0], parts[0][1] or parts[1][1]
        return alphabet, True  # a back-reference: anything, or nothing

    def choices(items, follows: frozenset[str], ignore_case: bool) -> bool:
        """Whether a choice inside `items` can be resolved two ways by the same next character;
        `follows` are the characters that can come after `items`."""
        for index, (op, argument) in enumerate(items):
            after, empty = first(items[index + 1:], ignore_case)
            after = after | follows if empty else after
            if op is _sre.SUBPATTERN:
                if choices(argument[-1], after, _group_ignore_case(argument, ignore_case)):
                    return True
            elif _ATOMIC is not None and op is _ATOMIC:
                if choices(argument, after, ignore_case):
                    return True
            elif op in _REPEATS:
                low, high, body = argument
                begins, _ = first(body, ignore_case)
                if high > low and begins & after:
                    return True  # stop here or repeat once more: the next character allows both
                if choices(body, after | begins if high > 1 else after, ignore_case):
                    return True
            elif op is _sre.BRANCH or op is _sre.GROUPREF_EXISTS:
                branches = argument[1] if op is _sre.BRANCH else [argument[1], argument[2] or []]
                seen: frozenset[str] = frozenset()
                for branch in branches:
                    begins, empty = first(branch, ignore_case)
                    begins = begins | after if empty else begins
                    if begins & seen or choices(branch, after, ignore_case):
                        return True
                    seen |= begins
        return False

    def walk(items, ignore_case: bool) -> None:
        for op, argument in items:
            if op in _REPEATS:
                _, high, body = argument
                if high > 1:
                    inner = _whole_body(body)
                    if len(inner) == 1 and inner[0][0] in _REPEATS and inner[0][1][1] > inner[0][1][0]:
                        found.append("nested")
                    elif choices(body, first(body, ignore_case)[0], ignore_case):
                        found.append("ambiguous")
                walk(body, ignore_case)
            elif op is _sre.SUBPATTERN:
                walk(argument[-1], _group_ignore_case(argument, ignore_case))
            elif _ATOMIC is not None and op is _ATOMIC:
                walk(argument, ignore_case)
            elif op is _sre.BRANCH:
                for branch in argument[1]:
                    walk(branch, ignore_case)
            elif op is _sre.GROUPREF_EXISTS:
                walk(argument[1], ignore_case)
                walk(argument[2] or [], ignore_case)

    try:
        walk(list(tree), bool(tree.state.flags & re.IGNORECASE))
    except RecursionError:
        return "nested"  # groups nested hundreds deep: no key pattern needs them
    return "nested" if "nested" in found else ("ambiguous" if found else None)


def _whole_body(items):
    """A repeated body without the groups that only wrap it: `((a+))` -> `a+`."""
    items = list(items)
    while len(items) == 1 and items[0][0] is _sre.SUBPATTERN:
        items = list(items[0][1][-1])
    return items


def _group_ignore_case(argument, ignore_case: bool) -> bool:
    _, add, remove, _ = argument
    if add & re.IGNORECASE:
        return True
    return False if remove & re.IGNORECASE else ignore_case


def _dot_all(tree) -> bool:
    return bool(tree.state.flags & re.DOTALL)


def _class_item_matches(op, argument, c: str) -> bool:
    if op is _sre.LITERAL:
        return c == chr(argument)
    if op is _sre.RANGE:
        return argument[0] <= ord(c) <= argument[1]
    if op is _sre.CATEGORY:
        test = _CATEGORIES.get(argument)
        return test is None or test.match(c) is not None
    return True  # anything else inside a class: assume it may match (only ever refuses more)


def _alphabet(pattern: str) -> frozenset[str]:
    """ASCII, a few characters of other classes, and every character written in the pattern."""
    return frozenset(map(chr, range(128))) | frozenset(_OTHER_CHARACTERS) | frozenset(pattern)


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
