"""HuBERT upstreams (fairseq `HubertModel`, as fairseq or S3PRL saved them) -> transformers `HubertModel`."""

from __future__ import annotations

from .._upstream import UpstreamRecipe


class HubertUpstreamRecipe(UpstreamRecipe):
    name = "hubert"
    title = "HuBERT upstream (fairseq, S3PRL) -> HubertModel"
    family = "hubert"
    target_name = "HubertModel"
    config_name = "HubertConfig"
    model_type = "hubert"

    def family_config_values(self, settings, names):
        return {
            "feat_proj_layer_norm": (True, "fairseq HuBERT normalises the features before post_extract_proj"),
            "conv_pos_batch_norm": (False, "fairseq HuBERT's positional conv is weight-normed, not batch-normed"),
        }
