"""data2vec-audio upstreams: recipe here; reference and S3PRL backend from the shared upstream blocks."""

from .recipe import Data2VecAudioUpstreamRecipe

RECIPES = (Data2VecAudioUpstreamRecipe,)
