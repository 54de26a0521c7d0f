"""What the original model reads: its own names first, the user's fixes only where it must.

The original side of a comparison must not simply follow the plan, or a wrong fix would be
"verified" by feeding both models the same wrong tensor. So it reads every tensor it can name
itself by that name (`Recipe.original_names`), whatever the plan says. Only a parameter that a
user's fix filled and that the original cannot name itself — a key the checkpoint spells in a way
no rule knows — is resolved through the fix: target key -> the original's own name (the derived
inverse of the recipe's rules) -> the fixed source tensor. Those rows are taken on trust and
listed as `fixes_used`, so a result can say how many rows only the user's word proves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..planning.plan import PlanRow, Status
from ..storage.stored_tensor import StoredTensor

if TYPE_CHECKING:
    from ..planning.recipe import Recipe, SourceTensor


@dataclass
class OriginalWeights:
    weights: dict[str, StoredTensor]  # under the original's own names
    fixes_used: list[dict[str, str]] = field(default_factory=list)  # {"source", "target"} rows taken on trust


def resolve_original_weights(
    recipe: Recipe,
    rows: Iterable[PlanRow],
    tensors: Mapping[str, SourceTensor],
    config=None,
) -> OriginalWeights:
    weights = recipe.original_names()
    stage = recipe.original_stage(config)
    used: list[dict[str, str]] = []
    for row in rows:
        if row.status is not Status.MAPPED or not row.by_fix or row.source_key not in tensors:
            continue
        name = stage.source_name(row.target_key)
        if name is None or name in weights:
            continue  # not the original's to read, or read by its own name: the fix is not trusted
        tensor = tensors[row.source_key].tensor
        # The tensor moves to the name the fix gave: under the file's name the original knows it not.
        for unknown in [key for key, value in weights.items() if value is tensor]:
            del weights[unknown]
        weights[name] = tensor
        used.append({"source": row.source_key, "target": row.target_key})
    return OriginalWeights(weights, used)


def fixes_sentence(count: int) -> str:
    """How a result says what rests on the user's word alone."""
    if not count:
        return "every row was proven against the original's own names"
    rows = "row" if count == 1 else "rows"
    return f"{count} {rows} proven only through your fixes (the original model read them under the names your fixes gave)"
