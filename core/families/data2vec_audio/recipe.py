"""data2vec-audio upstreams (fairseq `Data2VecAudioModel`, as fairseq or S3PRL saved them) ->
transformers `Data2VecAudioModel`.

Its positional embedding is a stack of `pos_conv_depth` convolutions, each of kernel
max(3, conv_pos // depth) (fairseq data2vec_audio.py); the checkpoint also carries `_ema`, the
EMA teacher's weights, which are not the model's and are dropped.
"""

from __future__ import annotations

from ...planning.recipe import LAYER_COUNT_FIELDS
from .._upstream import STACKED_POSITIONAL_RULES, UpstreamRecipe


class Data2VecAudioUpstreamRecipe(UpstreamRecipe):
    name = "data2vec_audio"
    title = "data2vec-audio upstream (fairseq, S3PRL) -> Data2VecAudioModel"
    family = "data2vec"
    target_name = "Data2VecAudioModel"
    config_name = "Data2VecAudioConfig"
    model_type = "data2vec-audio"
    positional_rules = STACKED_POSITIONAL_RULES
    layer_count_fields = (*LAYER_COUNT_FIELDS, "num_conv_pos_embeddings")  # here the depth of the positional convs

    def family_config_values(self, settings, names):
        depth = int(settings.get("pos_conv_depth", 1))
        kernel = max(3, int(settings["conv_pos"]) // depth)
        return {
            "num_conv_pos_embeddings": (depth, f"pos_conv_depth {depth}: that many positional convolutions"),
            "conv_pos_kernel_size": (kernel, f"max(3, conv_pos {settings['conv_pos']} // depth {depth})"),
            # Data2VecAudioModel has no such options: its extractor always layer-norms and its layers are post-LN.
            "feat_extract_norm": None,
            "do_stable_layer_norm": None,
        }

    def inexpressible(self, config=None) -> dict[str, str]:
        settings, found = self.file.settings(), {}
        if settings["extractor_mode"] != "layer_norm":
            found["cfg.extractor_mode"] = (f"{settings['extractor_mode']!r}: transformers' Data2VecAudioModel always "
                                           "layer-norms every convolution of its feature extractor")
        if settings["layer_norm_first"]:
            found["cfg.layer_norm_first"] = "pre-LN layers: transformers' Data2VecAudioModel has post-LN layers only"
        return found
