"""S3PRL SUPERB downstream heads: recipe, S3PRL-semantics reference of the featurizer and heads,
S3PRL backend."""

from .recipe import S3prlRecipe

RECIPES = (S3prlRecipe,)
