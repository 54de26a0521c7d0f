"""DistilHuBERT (S3PRL's distiller checkpoint) -> transformers `HubertModel`.

Its encoder converts: feature extractor, projection (no feature LayerNorm), positional conv and
layers. Two things of S3PRL's have no transformers counterpart and are said so: the prediction
heads (`output_layer.*`, dropped), and S3PRL's hidden state 0, the projected features BEFORE the
positional conv (transformers' hidden_states[0] is after it), so state 0 is not compared and a
Featurizer over DistilHuBERT's hidden states cannot be expressed by a transformers head.
"""

from __future__ import annotations

from .._upstream import UpstreamRecipe


class DistilHubertUpstreamRecipe(UpstreamRecipe):
    name = "distilhubert"
    title = "DistilHuBERT upstream (S3PRL distiller checkpoint) -> HubertModel"
    family = "distiller"
    target_name = "HubertModel"
    config_name = "HubertConfig"
    model_type = "hubert"

    def family_config_values(self, settings, names):
        return {
            "feat_proj_layer_norm": (False, "the distiller projects the features without a LayerNorm"),
            "conv_pos_batch_norm": (False, "the distiller's positional conv is weight-normed"),
            "conv_bias": (False, "the distiller's feature extractor has no conv bias (model.py)"),
        }

    def config_notes(self) -> list[str]:
        return ["S3PRL's hidden state 0 of DistilHuBERT precedes the positional conv (transformers' follows it) and "
                "S3PRL appends the prediction heads' outputs: neither has a transformers counterpart"]
