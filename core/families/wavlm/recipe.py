"""WavLM upstreams (Microsoft's `{"cfg", "model"}` checkpoint) -> transformers `WavLMModel`.

What makes a checkpoint WavLM is its config, not its name: `relative_position_embedding` (a
bucketed relative position bias computed by layer 0 and shared by every layer, with the config's
own `num_buckets` and `max_distance`) gated per query (`gru_rel_pos`). transformers' WavLM always
applies the gate, so an ungated WavLM has no exact transformers equivalent and is refused.
"""

from __future__ import annotations

from .._upstream import GATED_ATTENTION_RULES, UpstreamRecipe


class WavLMUpstreamRecipe(UpstreamRecipe):
    name = "wavlm"
    title = "WavLM upstream (Microsoft checkpoint) -> WavLMModel"
    family = "wavlm"
    target_name = "WavLMModel"
    config_name = "WavLMConfig"
    model_type = "wavlm"
    family_rules = GATED_ATTENTION_RULES

    def family_config_values(self, settings, names):
        return {
            "num_buckets": (int(settings["num_buckets"]), "cfg num_buckets"),
            "max_bucket_distance": (int(settings["max_distance"]), "cfg max_distance"),
        }

    def inexpressible(self, config=None) -> dict[str, str]:
        if not self.file.settings()["gru_rel_pos"]:
            return {"cfg.gru_rel_pos": "a relative position bias without the gate (gru_rel_pos off): transformers' "
                                       "WavLM always gates it, so it would compute something else"}
        return {}
