"""Undoable changes to the user's fixes.

Everything the user changes by hand is an `Overrides` object, the same thing a `--mapping` file
holds. Each command swaps one `Overrides` for another; applying one asks the core for a new plan
(`Prepared.replan`, milliseconds even for 800-row plans), so undo and redo are immediate.

Fixes Speechport inferred itself (a training wrapper's prefix stripped from every key) are implied
by the checkpoint; whether they apply is part of the `Overrides` (`keep_wrapper_prefix`), so the
mapping file remembers an undo of them. Their command switches them on or off, so that Ctrl+Z shows
the keys as saved and redo strips them again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from PySide6.QtGui import QUndoCommand

from ...core.planning.mapping_file import Overrides, source_rule
from ...core.planning.rules import compile_user_pattern, user_search, user_sub

DROP_REASON = "dropped by hand in the Speechport window"


def copy_overrides(overrides: Overrides) -> Overrides:
    return overrides.copy()


def same_overrides(a: Overrides, b: Overrides) -> bool:
    return a == b


class FixesCommand(QUndoCommand):
    """Replaces the user's fixes with new ones; undo puts the previous ones back."""

    def __init__(self, text: str, before: Overrides, after: Overrides, apply: Callable[[Overrides], None]):
        super().__init__(text)
        self._before = copy_overrides(before)
        self._after = copy_overrides(after)
        self._apply = apply

    @property
    def after(self) -> Overrides:
        return copy_overrides(self._after)

    def redo(self) -> None:
        self._apply(copy_overrides(self._after))

    def undo(self) -> None:
        self._apply(copy_overrides(self._before))


class InferredFixesCommand(QUndoCommand):
    """Switches Speechport's inferred fixes on (`applied`) or off; undo switches them back.

    The command that records them when a checkpoint opens finds them applied already: its first
    redo does nothing, so opening costs no second plan."""

    def __init__(self, text: str, applied: bool, apply: Callable[[bool], None], *, already_done: bool = False):
        super().__init__(text)
        self._applied = applied
        self._apply = apply
        self._skip_redo = already_done

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        self._apply(self._applied)

    def undo(self) -> None:
        self._apply(not self._applied)


# -- what each edit does to the fixes -----------------------------------------------------------


def renamed(current: Overrides, targets: Mapping[str, str]) -> Overrides:
    """Give source keys new target keys; an empty target hands the key back to the recipe's rules."""
    fixes = copy_overrides(current)
    for source, target in targets.items():
        fixes.drop.pop(source, None)
        if target:
            fixes.rename[source] = target
        else:
            fixes.rename.pop(source, None)
    return fixes


def dropped(current: Overrides, sources: Iterable[str], reason: str = DROP_REASON) -> Overrides:
    fixes = copy_overrides(current)
    for source in sources:
        fixes.rename.pop(source, None)
        fixes.drop[source] = reason
    return fixes


def restored(current: Overrides, sources: Iterable[str]) -> Overrides:
    """Forget the user's rename or drop of these keys: the recipe's rules decide them again."""
    fixes = copy_overrides(current)
    for source in sources:
        fixes.rename.pop(source, None)
        fixes.drop.pop(source, None)
    return fixes


def with_source_rule(current: Overrides, pattern: str, replacement: str) -> Overrides:
    """The fixes with one more rename of source keys, tried after the user's earlier ones."""
    fixes = copy_overrides(current)
    fixes.source_rules.append(source_rule(pattern, replacement))
    return fixes


def regex_renames(sources: Iterable[str], pattern: str, replacement: str) -> dict[str, str]:
    """`re.sub(pattern, replacement, source_key)` for every source key the pattern matches.

    Raises `BadInput` for a bad pattern or replacement, or one that backtracks catastrophically
    (matching is time-limited per key): the dialog shows it as you type.
    """
    compile_user_pattern(pattern, "the pattern")
    result = {}
    for source in sources:
        if user_search(pattern, source, "the pattern"):
            result[source] = user_sub(pattern, replacement, source, "the pattern")
    return result


# -- command factories: the undo-menu text says what the command did ----------------------------


def rename_command(current: Overrides, targets: Mapping[str, str], apply) -> FixesCommand | None:
    after = renamed(current, targets)
    if same_overrides(current, after):
        return None
    if len(targets) == 1:
        source, target = next(iter(targets.items()))
        text = f"Rename {_short(source)} → {_short(target)}" if target else f"Reset {_short(source)} to the recipe's rule"
    else:
        text = f"Rename {len(targets)} keys"
    return FixesCommand(text, current, after, apply)


def bulk_rename_command(current: Overrides, targets: Mapping[str, str], pattern: str, apply) -> FixesCommand | None:
    after = renamed(current, targets)
    if same_overrides(current, after):
        return None
    return FixesCommand(f"Bulk rename of {len(targets)} key(s) with /{pattern}/", current, after, apply)


def source_rule_command(current: Overrides, pattern: str, replacement: str, apply) -> FixesCommand:
    return FixesCommand(f"Rename source keys /{pattern}/ → {replacement or '(nothing)'}", current,
                        with_source_rule(current, pattern, replacement), apply)


def suggestions_command(current: Overrides, targets: Mapping[str, str], apply) -> FixesCommand | None:
    after = renamed(current, targets)
    if same_overrides(current, after):
        return None
    return FixesCommand(f"Apply {len(targets)} confident suggestion(s)", current, after, apply)


def drop_command(current: Overrides, sources: list[str], apply) -> FixesCommand | None:
    after = dropped(current, sources)
    if same_overrides(current, after):
        return None
    text = f"Drop {_short(sources[0])}" if len(sources) == 1 else f"Drop {len(sources)} keys"
    return FixesCommand(text, current, after, apply)


def restore_command(current: Overrides, sources: list[str], apply) -> FixesCommand | None:
    after = restored(current, sources)
    if same_overrides(current, after):
        return None
    text = f"Restore {_short(sources[0])}" if len(sources) == 1 else f"Restore {len(sources)} keys"
    return FixesCommand(text, current, after, apply)


def load_mapping_command(current: Overrides, loaded: Overrides, name: str, apply) -> FixesCommand:
    return FixesCommand(f"Load mapping file {name}", current, loaded, apply)


def _short(key: str, width: int = 48) -> str:
    return key if len(key) <= width else "…" + key[-(width - 1):]
