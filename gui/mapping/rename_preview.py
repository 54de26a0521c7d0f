"""What a bulk rename would do to the plan, worked out before it is applied.

Two kinds of rename: a rule on *source keys* (`[[source_rules]]` in a mapping file: it renames the
checkpoint's keys before the recipe's rules see them, e.g. strips `backbone.`), or *target keys*
given to rows (`[rename]` entries). Either way the open checkpoint is planned again with the
rename added — on a copy, so the plan shown stays as it is until the user applies it — and the
rows it touches are listed with what they become.

Runs on a worker: the user's pattern is matched against every key (each match time-limited by
the core), and planning the 600M model's keys takes tens of milliseconds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ...core.planning.mapping_file import Overrides
from ...core.planning.plan import Plan, Status
from ...core.planning.rules import Stage, compile_user_pattern, user_search, user_sub
from ..workspace.commands import regex_renames, renamed, with_source_rule

ORIGIN = "the pattern"  # what the core's messages about the pattern start with
SOURCE_KEYS = "source"  # a rule renaming the checkpoint's keys
TARGET_KEYS = "target"  # target keys given to the rows in scope


@dataclass(frozen=True)
class PreviewRow:
    source: str  # the key in the checkpoint
    renamed: str  # what the pattern makes of it: a new source name, or the new target key
    status: Status  # the row's status once the rename is applied
    target: str | None  # its target key then
    was_problem: bool


@dataclass(frozen=True)
class RenamePreview:
    mode: str
    pattern: str
    replacement: str
    scope: int  # how many keys the pattern was tried on
    rows: list[PreviewRow]
    renames: dict[str, str] = field(default_factory=dict)  # target-key mode: source key -> target key
    unknown_targets: int = 0  # target-key mode: new keys that are no parameter of the model
    problems_before: int = 0
    problems_after: int = 0
    problem_lines: list[str] = field(default_factory=list)  # of the plan after

    def count(self, status: Status) -> int:
        return sum(1 for row in self.rows if row.status is status)

    def fixed(self) -> int:
        """Rows that had a problem and are mapped once it is applied."""
        return sum(1 for row in self.rows if row.was_problem and row.status is Status.MAPPED)


def preview(prepared, fixes: Overrides, mode: str, pattern: str, replacement: str, scope: list[str]) -> RenamePreview:
    """The rename applied to a copy of `prepared` (a `core.conversion.Prepared`) with the user's
    `fixes`; `scope` are the source keys a target-key rename is tried on. Raises `BadInput` for a
    pattern or replacement the core refuses (invalid, nested repetition, too slow)."""
    compile_user_pattern(pattern, ORIGIN)
    before = prepared.plan
    if mode == SOURCE_KEYS:
        after_fixes = with_source_rule(fixes, pattern, replacement)
        names = _renamed_sources(prepared, fixes, pattern, replacement)
        scope_size = len(prepared.tensors)
        renames: dict[str, str] = {}
    else:
        renames = names = regex_renames(scope, pattern, replacement)
        after_fixes = renamed(fixes, renames)
        scope_size = len(scope)
    after = copy.copy(prepared).replan(after_fixes)  # a copy: the plan the window shows stays
    rows_after = {row.source_key: row for row in after.rows if row.source_key is not None}
    was_problem = {row.source_key for row in before.rows if row.source_key is not None and row.status.is_problem}
    rows = [PreviewRow(source, name, rows_after[source].status, rows_after[source].target_key, source in was_problem)
            for source, name in names.items() if source in rows_after]
    unknown = sum(1 for target in renames.values() if target not in prepared.targets)
    return RenamePreview(mode, pattern, replacement, scope_size, rows, dict(renames), unknown,
                         _problem_count(before), _problem_count(after), after.problem_lines())


def _renamed_sources(prepared, fixes: Overrides, pattern: str, replacement: str) -> dict[str, str]:
    """source key -> the name the new rule gives it. Source renames apply in order, the first
    matching rule of each stage winning (`core.plan`): Speechport's inferred ones, then the user's;
    so the new rule, tried after the user's earlier ones, renames only the keys they leave alone."""
    inferred = Stage("inferred", prepared.inferred, keep_unmatched=True)
    earlier = Stage("source rules", fixes.source_rules, keep_unmatched=True)
    names = {}
    for key in prepared.tensors:
        name = key
        stripped = inferred.first_match(name) if prepared.inferred else None
        if stripped is not None and stripped.target is not None:
            name = stripped.sub(name)
        if fixes.source_rules and earlier.first_match(name) is not None:
            continue
        if user_search(pattern, name, ORIGIN):
            names[key] = user_sub(pattern, replacement, name, ORIGIN)
    return names


KEY_SEPARATORS = "./"  # between the parts of a key's name


def changed_span(before: str, after: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a rename changed a key: the (start, end) in `before` and in `after` of the parts of the
    name that differ, whole parts between separators ("q_proj" and "query" of two layer keys, not
    just "_proj" and "uery" after their common "q")."""
    limit = min(len(before), len(after))
    head = 0
    while head < limit and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < limit - head and before[len(before) - 1 - tail] == after[len(after) - 1 - tail]:
        tail += 1
    # Back to the start of the part the change begins in (the same place in both: they agree up to it) …
    start = max(before.rfind(separator, 0, head) for separator in KEY_SEPARATORS) + 1
    # … and on to the end of the part it ends in (the same distance from the end in both).
    end_before = _part_end(before, len(before) - tail)
    tail = len(before) - end_before
    return (start, end_before), (start, max(start, len(after) - tail))


def _part_end(text: str, position: int) -> int:
    if position == 0 or text[position - 1] in KEY_SEPARATORS:
        return position  # the change ends where a part ends
    ends = [found for found in (text.find(separator, position) for separator in KEY_SEPARATORS) if found >= 0]
    return min(ends) if ends else len(text)


def _problem_count(plan: Plan) -> int:
    return len(plan.problems()) + len(plan.config_conflicts)
