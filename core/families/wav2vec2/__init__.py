"""wav2vec 2.0 upstreams: recipe here; reference and S3PRL backend from the shared upstream blocks
(core/reference/upstreams.py Wav2Vec2Reference, core/families/_upstream_s3prl.py)."""

from .recipe import Wav2Vec2UpstreamRecipe

RECIPES = (Wav2Vec2UpstreamRecipe,)
