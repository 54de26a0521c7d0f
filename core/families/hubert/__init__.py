"""HuBERT upstreams: recipe here; reference and S3PRL backend from the shared upstream blocks."""

from .recipe import HubertUpstreamRecipe

RECIPES = (HubertUpstreamRecipe,)
