"""UnitY speech encoders (seamless M4T): the whole encoder refused with its reason, its inner conformer
encoder converted; the reference is conformer_shaw's (core/families/conformer_shaw/reference.py)."""

from .recipe import UnityInnerEncoderRecipe, UnitySpeechEncoderRecipe

RECIPES = (UnitySpeechEncoderRecipe, UnityInnerEncoderRecipe)
