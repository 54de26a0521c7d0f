"""wav2vec 2.0 upstreams (fairseq `Wav2Vec2Model`, as fairseq, older fairseq or S3PRL saved them)
-> transformers `Wav2Vec2Model`."""

from __future__ import annotations

from .._upstream import UpstreamRecipe


class Wav2Vec2UpstreamRecipe(UpstreamRecipe):
    name = "wav2vec2"
    title = "wav2vec 2.0 upstream (fairseq, S3PRL) -> Wav2Vec2Model"
    family = "wav2vec2"
    target_name = "Wav2Vec2Model"
    config_name = "Wav2Vec2Config"
    model_type = "wav2vec2"
