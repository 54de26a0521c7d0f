"""The source families Speechport converts: one folder each, found here without a list to edit.

A family folder (a package) holds its recipe (rules as data), its reference implementation of the
original model and its upstream backend, and exposes its `Recipe` subclasses as `RECIPES`.
Adding a family is adding a folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ..errors import BadInput
from ..planning.recipe import Detection, Recipe
from ..storage.checkpoint import Checkpoint

__all__ = ["all_recipes", "detect", "recipe_named"]


@cache
def all_recipes() -> tuple[type[Recipe], ...]:
    found = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_") or not module_info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found += [recipe for recipe in getattr(module, "RECIPES", ()) if issubclass(recipe, Recipe)]
    return tuple(sorted(found, key=lambda r: r.name))


def recipe_named(name: str) -> type[Recipe]:
    for recipe in all_recipes():
        if recipe.name == name:
            return recipe
    known = ", ".join(r.name for r in all_recipes())
    raise BadInput(f"unknown recipe {name!r}; known recipes: {known}")


def detect(checkpoint: Checkpoint) -> Detection:
    """The family whose fingerprint fits the checkpoint best; `BadInput` when none does."""
    detections = [d for d in (r.detect(checkpoint) for r in all_recipes()) if d is not None]
    if not detections:
        families = "; ".join(r.title for r in all_recipes())
        keys = ", ".join(checkpoint.top_level_keys()[:6]) or "no named entries"
        raise BadInput(
            f"{checkpoint.path}: not a checkpoint of a known family (top level: {keys})",
            hint=f"Speechport converts: {families}",
        )
    return max(detections, key=lambda d: d.score)


def forced(recipe: type[Recipe], checkpoint: Checkpoint) -> Detection:
    """The detection of a family the user named (`--recipe`)."""
    detection = recipe.detect(checkpoint)
    if detection is None:
        raise BadInput(f"{checkpoint.path}: does not look like a {recipe.name} checkpoint")
    return detection
