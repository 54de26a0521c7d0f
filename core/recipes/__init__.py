"""Recipes: one module per source family, each knowing how to recognise, map and configure it.

Adding a family means adding a module here that defines a `Recipe` subclass and exposes it as
`RECIPE`; the registry finds it. Nothing else needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ..checkpoint import Checkpoint
from ..errors import BadInput
from .base import ConfigChoice, Detection, Recipe

__all__ = ["ConfigChoice", "Detection", "Recipe", "all_recipes", "detect", "recipe_named"]


@cache
def all_recipes() -> tuple[Recipe, ...]:
    found = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_") or module_info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        recipe = getattr(module, "RECIPE", None)
        if isinstance(recipe, Recipe):
            found.append(recipe)
    return tuple(sorted(found, key=lambda r: r.name))


def recipe_named(name: str) -> Recipe:
    for recipe in all_recipes():
        if recipe.name == name:
            return recipe
    known = ", ".join(r.name for r in all_recipes())
    raise BadInput(f"unknown recipe {name!r}; known recipes: {known}")


def detect(checkpoint: Checkpoint) -> Detection:
    """The recipe whose fingerprint fits the checkpoint best; `BadInput` when none does."""
    detections = [d for d in (r.detect(checkpoint) for r in all_recipes()) if d is not None]
    if not detections:
        families = "; ".join(r.title for r in all_recipes())
        keys = ", ".join(checkpoint.top_level_keys()[:6]) or "no named entries"
        raise BadInput(
            f"{checkpoint.path}: not a checkpoint of a known family (top level: {keys})",
            hint=f"Speechport converts: {families}",
        )
    return max(detections, key=lambda d: d.score)
