"""The mapping plan: one row per source key, saying what becomes of it and whether that is a problem.

A plan is computed before anything is written, against the real target model built on the `meta`
device, so every missing key, extra key, shape mismatch and duplicate shows up at once.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum

from ..errors import BadInput
from ..storage.stored_tensor import DTYPES
from .mapping_file import Overrides
from .rules import Decision, Rule, RuleSet, Stage, bounded_user_patterns


class Status(str, Enum):
    MAPPED = "mapped"
    DROPPED = "dropped"
    UNMAPPED = "unmapped source"
    MISSING = "missing target"
    SHAPE_MISMATCH = "shape mismatch"
    DUPLICATE = "duplicate target"

    @property
    def is_problem(self) -> bool:
        return self in PROBLEM_STATUSES


# How many names (layer indices collapsed) a refusal lists before it says how many more there are.
MAX_NAMED = 3

PROBLEM_STATUSES = frozenset({Status.UNMAPPED, Status.MISSING, Status.SHAPE_MISMATCH, Status.DUPLICATE})

# One plain sentence per problem status: what it means and the likely fix.
STATUS_HELP = {
    Status.MAPPED: "copied to the target parameter of the same shape",
    Status.DROPPED: "deliberately left out of the converted model",
    Status.UNMAPPED: "no target for this source key: give it a target key, or drop it with a reason",
    Status.MISSING: "nothing in the checkpoint fills this model parameter: map a source key to it, "
    "or check the config (e.g. the number of layers)",
    Status.SHAPE_MISMATCH: "the source tensor and the model parameter differ in shape: the config "
    "probably disagrees with the checkpoint, or the key is mapped to the wrong target",
    Status.DUPLICATE: "several source keys map to this target: rename or drop all but one",
}


@dataclass(frozen=True)
class SourceEntry:
    key: str
    shape: tuple[int, ...] | None  # None for a non-tensor entry (e.g. an optimizer state)
    dtype: str | None
    nbytes: int = 0


@dataclass(frozen=True)
class TargetTensor:
    shape: tuple[int, ...]
    dtype: str


@dataclass
class PlanRow:
    source_key: str | None  # None for a missing-target row
    source_shape: tuple[int, ...] | None
    source_dtype: str | None
    target_key: str | None
    target_shape: tuple[int, ...] | None
    status: Status
    rule: str = ""
    reason: str = ""
    via: list[str] = field(default_factory=list)
    nbytes: int = 0
    by_fix: bool = False  # decided through a user's fix (rename, rule, source rule): taken on trust

    def to_dict(self) -> dict:
        # Written out by hand: dataclasses.asdict deep-copies, which shows on 800-row plans.
        return {
            "source_key": self.source_key,
            "source_shape": list(self.source_shape) if self.source_shape is not None else None,
            "source_dtype": self.source_dtype,
            "target_key": self.target_key,
            "target_shape": list(self.target_shape) if self.target_shape is not None else None,
            "status": self.status.value,
            "rule": self.rule,
            "reason": self.reason,
            "via": list(self.via),
            "nbytes": self.nbytes,
            "by_fix": self.by_fix,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> PlanRow:
        data = dict(data)
        data["status"] = Status(data["status"])
        for key in ("source_shape", "target_shape"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass(frozen=True)
class ConfigConflict:
    """A config value that contradicts the checkpoint (or the original architecture)."""

    field: str
    config_value: object
    expected: object
    evidence: str

    def describe(self) -> str:
        return f"config {self.field}={self.config_value!r}, but {self.evidence} (expected {self.expected!r})"


@dataclass
class Plan:
    recipe: str
    layout: str
    target_class: str
    rows: list[PlanRow]
    config_conflicts: list[ConfigConflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[PlanRow]:
        return [row for row in self.rows if row.status.is_problem]

    @property
    def ok(self) -> bool:
        return not self.problems() and not self.config_conflicts

    def counts(self) -> dict[str, int]:
        counted = Counter(row.status for row in self.rows)
        return {status.value: counted.get(status, 0) for status in Status}

    def mapped(self) -> list[PlanRow]:
        return [row for row in self.rows if row.status is Status.MAPPED]

    def problem_lines(self) -> list[str]:
        """Every problem, one line per kind, with layer indices collapsed: `layers.{0...23}.x`."""
        lines = [f"config conflict: {conflict.describe()}" for conflict in self.config_conflicts]
        groups: dict[Status, list[str]] = defaultdict(list)
        unmapped_by_reason: dict[str, list[str]] = defaultdict(list)
        for row in self.problems():
            if row.status is Status.UNMAPPED and not row.target_key:
                unmapped_by_reason[row.reason].append(row.source_key or "")
                continue
            key, detail = _problem_key_and_detail(row)
            groups[row.status].append(key + detail)
        for reason, keys in unmapped_by_reason.items():
            detail = f" ({reason})" if reason else ""
            lines.append(f"{Status.UNMAPPED.value}: {', '.join(collapse_indices(keys))}{detail}")
        for status, texts in groups.items():
            lines += [f"{status.value}: {collapsed}" for collapsed in collapse_indices(texts)]
        return lines

    def problem_hints(self) -> list[str]:
        """One sentence per kind of problem present: what it means and the likely fix."""
        present = {row.status for row in self.problems()}
        return [f"{status.value}: {STATUS_HELP[status]}" for status in Status if status in present]

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{count} {status}" for status, count in counts.items() if count]
        if self.config_conflicts:
            parts.append(f"{len(self.config_conflicts)} config conflict(s)")
        return ", ".join(parts) if parts else "empty plan"

    def to_dict(self) -> dict:
        return {
            "recipe": self.recipe,
            "layout": self.layout,
            "target_class": self.target_class,
            "counts": self.counts(),
            "problems": self.problem_lines(),
            "config_conflicts": [asdict(conflict) for conflict in self.config_conflicts],
            "notes": list(self.notes),
            "rows": [row.to_dict() for row in self.rows],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Plan:
        return cls(
            recipe=data["recipe"],
            layout=data["layout"],
            target_class=data["target_class"],
            rows=[PlanRow.from_dict(row) for row in data["rows"]],
            config_conflicts=[ConfigConflict(**c) for c in data.get("config_conflicts", [])],
            notes=list(data.get("notes", [])),
        )


def build_plan(
    *,
    recipe: str,
    layout: str,
    target_class: str,
    sources: Sequence[SourceEntry],
    rules: RuleSet,
    targets: Mapping[str, TargetTensor] | None,
    overrides: Overrides | None = None,
    inferred: Sequence[Rule] = (),
    other_entries: Mapping[str, str] | None = None,
    inexpressible: Mapping[str, str] | None = None,
    config_conflicts: Iterable[ConfigConflict] = (),
    notes: Iterable[str] = (),
) -> Plan:
    """Decide every source key, then check the decisions against the target model's parameters.

    `other_entries` are non-tensor entries of the checkpoint (training state, arguments), each
    with the reason it is left out; they appear as dropped rows so the plan accounts for everything.
    `inexpressible` are settings of the original (not tensors) that the target class cannot
    reproduce, with the reason: each is an unmapped-source problem unless the user's mapping file
    drops it on purpose, accepting the difference.
    `inferred` are source renames Speechport inferred itself (a wrapper prefix to strip), applied
    first; then the user's source rules; explicit renames and drops name keys as in the file.
    """
    overrides = overrides or Overrides()
    renames = _SourceRenames(inferred, overrides.source_rules)
    user_rules = RuleSet([Stage("mapping file", overrides.rules)]) if overrides.rules else None
    with bounded_user_patterns([*overrides.source_rules, *overrides.rules], [source.key for source in sources]):
        rows = [_decide(source, rules, user_rules, overrides, renames) for source in sources]
    rows += [
        PlanRow(key, None, None, None, None, Status.DROPPED, "recipe", reason)
        for key, reason in (other_entries or {}).items()
    ]
    for key, reason in (inexpressible or {}).items():
        if key in overrides.drop:
            rows.append(PlanRow(key, None, None, None, None, Status.DROPPED, "mapping file: drop",
                                f"{overrides.drop[key]} (accepted difference: {reason})"))
        else:
            rows.append(PlanRow(key, None, None, None, None, Status.UNMAPPED, "recipe",
                                f"cannot map: {reason}; drop it in a mapping file only to accept the difference"))
    known_keys = [s.key for s in sources] + list(inexpressible or {}) + list(other_entries or {})
    plan_notes = list(notes) + overrides.unused_entries(known_keys) + renames.unused_notes()
    if targets is not None:
        _check_against_targets(rows, targets)
    return Plan(recipe, layout, target_class, rows, list(config_conflicts), plan_notes)


def refuse_non_floating_weights(rows: Iterable[PlanRow], targets: Mapping[str, TargetTensor], where: str) -> None:
    """Refuse (BadInput, naming the tensors and their dtypes) integer, bool or complex tensors mapped
    onto floating-point parameters. Copied as they are, transformers would cast them on loading:
    quantized weights would load without their scales, and the model would compute something else.
    Parameters that are integers in the target (counters) take integer tensors, as they should."""
    keys_by_pair: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        target = targets.get(row.target_key) if row.status is Status.MAPPED and row.source_dtype else None
        if target is not None and _floating(target.dtype) and not _floating(row.source_dtype):
            keys_by_pair[(row.source_dtype, target.dtype)].append(row.source_key)
    if not keys_by_pair:
        return
    said = []
    for (source, target), keys in keys_by_pair.items():
        names = collapse_indices(keys)
        listed = ", ".join(names[:MAX_NAMED]) + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
        many = len(keys) > 1
        said.append(f"{listed} {'are' if many else 'is'} {source} in the checkpoint, where the model's "
                    f"{'parameters are' if many else 'parameter is'} {target}")
    raise BadInput(f"{where}: {'; '.join(said)}: weights that are not floating point (quantized integers, say) "
                   "cannot be converted or compared as they are; dequantize them to floating point first")


class _SourceRenames:
    """Speechport's inferred source renames (the first that matches), then each of the user's source
    rules in turn, as a sed script runs: every rule whose pattern is found renames what the rules
    before it made of the key (every occurrence, as `re.sub` does); a key no rule matches keeps its name."""

    def __init__(self, inferred: Sequence[Rule], user: Sequence[Rule]):
        self.inferred = Stage("inferred", inferred, keep_unmatched=True)
        self.user = list(user)
        self.used: set[str] = set()

    def apply(self, key: str) -> tuple[str, list[str], list[str], bool]:
        """(the name the rules see, intermediate names, rule descriptions, renamed by the user)."""
        via, applied, by_user = [], [], False
        inferred = self.inferred.first_match(key) if self.inferred.rules else None
        steps = [(inferred, False)] if inferred is not None and inferred.target is not None else []
        for rule, user in [*steps, *((rule, True) for rule in self.user)]:
            if user and not rule.search(key):
                continue
            renamed = rule.sub(key)
            if user:
                self.used.add(rule.pattern)
            if renamed == key:
                continue
            key = renamed
            via.append(key)
            applied.append(f"{rule.note}: {_shown(rule.pattern)} -> {_shown(rule.target)}")
            by_user = by_user or user
        return key, via, applied, by_user

    def unused_notes(self) -> list[str]:
        return [f"{rule.note} {_shown(rule.pattern)} matches no source key"
                for rule in self.user if rule.pattern not in self.used]


def _shown(pattern: str) -> str:
    """A pattern as the user wrote it, in quotes (repr would double every backslash)."""
    return f"'{pattern}'" if "'" not in pattern else f'"{pattern}"'


def _decide(source: SourceEntry, rules: RuleSet, user_rules: RuleSet | None, overrides: Overrides,
            renames: _SourceRenames) -> PlanRow:
    key, renamed_via, renamed_by, by_user = renames.apply(source.key)

    def row(status: Status, target: str | None, rule: str, reason: str = "", via=(), by_fix: bool = by_user) -> PlanRow:
        rule = " | ".join([*renamed_by, rule] if rule else renamed_by)
        return PlanRow(source.key, source.shape, source.dtype, target, None, status, rule, reason,
                       [*renamed_via, *via], source.nbytes, by_fix)

    def user_drop(rule: str, reason: str) -> PlanRow:
        recipe = rules.apply(key)
        if recipe.target is None and not recipe.dropped and recipe.reason.startswith("cannot map"):
            reason = f"{reason} (accepted difference: {recipe.reason.removeprefix('cannot map: ')})"
        return row(Status.DROPPED, None, rule, reason, by_fix=True)

    if source.key in overrides.rename:
        return row(Status.MAPPED, overrides.rename[source.key], "mapping file: rename", by_fix=True)
    if source.key in overrides.drop:
        return user_drop("mapping file: drop", overrides.drop[source.key])
    decision: Decision | None = None
    if user_rules is not None:
        decision = user_rules.apply(key)
        if decision.dropped:
            return user_drop(decision.rule, decision.reason)
        if decision.target is None:
            decision = None  # no user rule matched: the recipe's rules decide
        else:
            return row(Status.MAPPED, decision.target, decision.rule, "", decision.via, by_fix=True)
    decision = rules.apply(key)
    if decision.dropped:
        return row(Status.DROPPED, None, decision.rule, decision.reason, decision.via)
    if decision.target is None:
        return row(Status.UNMAPPED, None, decision.rule, decision.reason, decision.via)
    return row(Status.MAPPED, decision.target, decision.rule, "", decision.via)


def _check_against_targets(rows: list[PlanRow], targets: Mapping[str, TargetTensor]) -> None:
    claims: dict[str, list[PlanRow]] = defaultdict(list)
    for row in rows:
        if row.status is not Status.MAPPED:
            continue
        target = targets.get(row.target_key)
        if target is None:
            row.status = Status.UNMAPPED
            row.reason = f"the model has no parameter {row.target_key!r}"
            continue
        row.target_shape = tuple(target.shape)
        claims[row.target_key].append(row)
        if tuple(row.source_shape) != tuple(target.shape):
            row.status = Status.SHAPE_MISMATCH
            row.reason = f"checkpoint {list(row.source_shape)} vs model {list(target.shape)}"
    for target_key, claimants in claims.items():
        if len(claimants) > 1:
            names = ", ".join(r.source_key for r in claimants)
            for row in claimants:
                row.status = Status.DUPLICATE
                row.reason = f"{names} all map to {target_key!r}"
    for target_key, target in targets.items():
        if target_key not in claims:
            rows.append(
                PlanRow(
                    None, None, None, target_key, tuple(target.shape), Status.MISSING,
                    "", "nothing in the checkpoint maps to it",
                )
            )


def _floating(dtype: str) -> bool:
    known = DTYPES.get(dtype)
    return known is not None and known.is_floating_point


def _problem_key_and_detail(row: PlanRow) -> tuple[str, str]:
    if row.status is Status.MISSING:
        return row.target_key or "", ""
    if row.status is Status.SHAPE_MISMATCH:
        return row.source_key or "", (
            f" -> {row.target_key}: checkpoint {list(row.source_shape)} vs model {list(row.target_shape)}"
        )
    if row.status is Status.DUPLICATE:
        return row.source_key or "", f" -> {row.target_key}"
    if row.status is Status.UNMAPPED and row.target_key:
        return row.source_key or "", f" -> {row.target_key} (not in the model)"
    if row.status is Status.UNMAPPED and row.reason:
        return row.source_key or "", f" ({row.reason})"
    return row.source_key or "", ""


_INDEX = re.compile(r"(?<=\.)(\d+)(?=\.|$)")


def collapse_indices(keys: Iterable[str]) -> list[str]:
    """Merge keys that differ only in their numeric parts: `layers.{0...23}.ffn1.bias`.

    Keys are grouped by their shape with numbers blanked; within a group each numeric position
    shows its values as `{a...b}` when contiguous, `{a, b, c}` otherwise, or the single value.
    """
    groups: dict[str, list[list[int]]] = {}
    order: list[str] = []
    for key in keys:
        pattern = _INDEX.sub("#", key)
        numbers = [int(n) for n in _INDEX.findall(key)]
        if pattern not in groups:
            groups[pattern] = [[] for _ in numbers]
            order.append(pattern)
        for slot, number in zip(groups[pattern], numbers):
            if number not in slot:
                slot.append(number)
    collapsed = []
    for pattern in order:
        pieces = pattern.split("#")
        text = pieces[0]
        for slot, piece in zip(groups[pattern], pieces[1:]):
            text += _format_indices(sorted(slot)) + piece
        collapsed.append(text)
    return collapsed


def _format_indices(values: list[int]) -> str:
    if len(values) == 1:
        return str(values[0])
    if values == list(range(values[0], values[-1] + 1)):
        return f"{{{values[0]}...{values[-1]}}}"
    return "{" + ", ".join(map(str, values)) + "}"
