"""UniSpeech-SAT upstreams -> transformers `UniSpeechSatModel`.

S3PRL loads UniSpeech-SAT with unilm's WavLM classes (upstream/unispeech_sat/expert.py): a
Microsoft `{"cfg", "model"}` checkpoint whose config turns `relative_position_embedding` off, so
the attention is plain, as in UniSpeechSatModel. A gate's tensors saved without the relative bias
are never used by the original and are dropped.
"""

from __future__ import annotations

from ...planning.rules import drop
from .._upstream import UpstreamRecipe


class UniSpeechSatUpstreamRecipe(UpstreamRecipe):
    name = "unispeech_sat"
    title = "UniSpeech-SAT upstream (Microsoft checkpoint) -> UniSpeechSatModel"
    family = "unispeech_sat"
    target_name = "UniSpeechSatModel"
    config_name = "UniSpeechSatConfig"
    model_type = "unispeech-sat"
    family_rules = (
        drop(r"^encoder\.layers\.\d+\.self_attn\.(grep_linear\.|grep_a$|relative_attention_bias\.)",
             "unused by the original: without relative_position_embedding the attention has no position bias or gate"),
    )
