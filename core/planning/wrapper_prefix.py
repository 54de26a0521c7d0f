"""Prefixes that training wrappers put in front of every key of a state dict.

A model saved from inside a wrapper has every key prefixed with the wrapper's attribute name:
`module.` (torch DistributedDataParallel and DataParallel), `_orig_mod.` (torch.compile), `model.`
(a PyTorch Lightning module holding the model as `self.model`), in any combination
(`module._orig_mod.`). The prefix is stripped when every key carries it and stripping lets the
recipe's rules map more keys: shown as an inferred fix the user can undo, and applied by the
original side as part of reading the file's names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from .rules import Rule

if TYPE_CHECKING:
    from .recipe import Recipe

WRAPPERS = (
    ("module.", "torch DistributedDataParallel or DataParallel"),
    ("_orig_mod.", "torch.compile"),
    ("model.", "a PyTorch Lightning module"),
)
INFERRED_NOTE = "inferred: wrapper prefix"

Value = TypeVar("Value")


def wrapper_prefix(keys: Iterable[str]) -> tuple[str, list[str]] | None:
    """The chain of wrapper prefixes every key starts with ("module._orig_mod.") and what saved
    each, or None. A prefix is stripped only while a key would remain after it."""
    keys = [str(key) for key in keys]
    if not keys:
        return None
    prefix, saved_by = "", []
    while True:
        for token, what in WRAPPERS:
            longer = prefix + token
            if all(key.startswith(longer) and len(key) > len(longer) for key in keys):
                prefix, saved_by = longer, [*saved_by, what]
                break
        else:
            return (prefix, saved_by) if prefix else None


def strip_rule(prefix: str, saved_by: list[str]) -> Rule:
    """The inferred source rule that strips `prefix` (a fix the window can undo)."""
    return Rule("^" + re.escape(prefix), "", f"{INFERRED_NOTE} {prefix!r} ({', then '.join(saved_by)})")


def unwrapped(state: Mapping[str, Value]) -> dict[str, Value]:
    """`state` with the wrapper prefix every key carries removed (unchanged when there is none)."""
    found = wrapper_prefix(state)
    if found is None:
        return dict(state)
    length = len(found[0])
    return {key[length:]: value for key, value in state.items()}


def infer_source_renames(recipe: Recipe, tensors, config) -> list[Rule]:
    """A wrapper prefix every key carries (DDP's `module.`, torch.compile's `_orig_mod.`,
    Lightning's `model.`), as a source rule, when stripping it lets the recipe map more keys."""
    found = wrapper_prefix(tensors)
    if found is None:
        return []
    rule = strip_rule(*found)
    rules = recipe.rules(config)

    def decided(keys) -> int:
        return sum(1 for key in keys if (decision := rules.apply(key)).target is not None or decision.dropped)

    return [rule] if decided(rule.sub(key) for key in tensors) > decided(tensors) else []
