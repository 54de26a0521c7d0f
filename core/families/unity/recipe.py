"""UnitY speech encoders (seamless M4T's): the inner conformer encoder -> transformers `Wav2Vec2BertModel`.

fairseq2's UnitY speech encoder (seamless_communication models/unity, `UnitYEncoderAdaptor`) is a
w2v-BERT 2.0 frontend and conformer encoder (`encoder.inner.layers.*`) followed by a LayerNorm
(`encoder.inner_layer_norm`), a feed-forward block (`encoder.proj1`, `encoder.proj2`), adaptor
layers (`encoder.adaptor_layers.*`) and a final LayerNorm (`encoder.layer_norm`); a whole M4T
checkpoint holds it under `speech_encoder_frontend.` / `speech_encoder.` beside its text and unit
models. transformers' Wav2Vec2BertModel has no module for the inner LayerNorm nor the final
LayerNorm, so the whole speech encoder cannot be converted: that recipe (`unity_speech_encoder`,
what detection finds) refuses them by name. The encoder-only conversion (`unity_inner_encoder`,
chosen explicitly) keeps the frontend and the inner conformer layers — exactly a conformer_shaw
encoder — drops everything else with its reason, and is proven against the inner encoder's output
by the conformer_shaw reference.
"""

from __future__ import annotations

from ...checkpoint import Checkpoint
from ...recipe import Alternative, Detection
from ...rules import Stage, drop, refuse, rename
from ...wrapper_prefix import unwrapped
from ..conformer_shaw.recipe import ConformerShawRecipe, _state_dict

_SPEECH = r"^(?:speech_)?encoder"  # "encoder." in a speech encoder checkpoint, "speech_encoder." in a whole M4T one
TO_CONFORMER = (
    rename(r"^(?:speech_)?encoder_frontend\.(.*)$", r"encoder_frontend.\1", "the speech encoder's frontend (w2v-BERT 2.0)"),
    rename(_SPEECH + r"\.inner\.layers\.(.*)$", r"encoder.layers.\1", "the inner conformer encoder's layers"),
)
OUTSIDE_THE_SPEECH_ENCODER = drop(
    r"^(?!(?:speech_)?encoder(?:_frontend)?\.)", "not part of the speech encoder (M4T's text or unit models)")
NO_LAYER_NORM = "transformers' Wav2Vec2BertModel has no module for it, so the whole speech encoder cannot be converted"
WHOLE_ENCODER = Stage("UnitY -> conformer_shaw", (
    *TO_CONFORMER,
    refuse(_SPEECH + r"\.inner_layer_norm\.", f"the inner encoder's final LayerNorm: {NO_LAYER_NORM}"),
    refuse(_SPEECH + r"\.layer_norm\.", f"the speech encoder's final LayerNorm (after the adaptor): {NO_LAYER_NORM}"),
    drop(_SPEECH + r"\.(proj1|proj2|adaptor_layers)\.", "part of the whole speech encoder, which cannot be converted "
                                                       "(see the LayerNorms); convert the inner encoder only instead"),
    OUTSIDE_THE_SPEECH_ENCODER,
))
INNER_ENCODER = Stage("UnitY inner encoder -> conformer_shaw", (
    *TO_CONFORMER,
    drop(_SPEECH + r"\.inner_layer_norm\.", "outside the inner conformer encoder: the LayerNorm after it"),
    drop(_SPEECH + r"\.(proj1|proj2)\.", "outside the inner conformer encoder: the feed-forward block after it"),
    drop(_SPEECH + r"\.adaptor_layers\.", "outside the inner conformer encoder: the length adaptor"),
    drop(_SPEECH + r"\.layer_norm\.", "outside the inner conformer encoder: the final LayerNorm"),
    OUTSIDE_THE_SPEECH_ENCODER,
))


def _unity_naming(checkpoint: Checkpoint) -> str | None:
    keys = unwrapped(_state_dict(checkpoint))
    if not any(".inner.layers." in key and ".self_attn.sdpa.rel_k_embed." in key for key in keys):
        return None  # no inner conformer encoder with Shaw relative keys
    return "m4t" if any(key.startswith("speech_encoder.") for key in keys) else "unity"


class UnitySpeechEncoderRecipe(ConformerShawRecipe):
    name = "unity_speech_encoder"
    title = "UnitY speech encoder (seamless M4T) -> refused whole; its inner encoder converts with unity_inner_encoder"
    original_backends = ("reference",)
    alternative = Alternative(
        "unity_inner_encoder", "Convert the inner encoder only",
        "transformers' Wav2Vec2BertModel has no module for the LayerNorm after its inner encoder nor for its final "
        "LayerNorm")

    @classmethod
    def detect(cls, checkpoint: Checkpoint) -> Detection | None:
        naming = _unity_naming(checkpoint)
        if naming is None:
            return None
        where = "a whole M4T checkpoint's" if naming == "m4t" else "a"
        return Detection(cls, naming, "speech encoder", 10.0,
                         f"{where} UnitY speech encoder: a w2v-BERT 2.0 conformer (encoder.inner) with its adaptor")

    @classmethod
    def layout_of(cls, detection: Detection) -> str:
        return detection.naming

    def naming_stages(self) -> list[Stage]:
        return [WHOLE_ENCODER]

    def choose_config(self, names, *, config_path=None, labels=None):
        choice = super().choose_config(names, config_path=config_path, labels=labels)
        choice.notes.append(f"the whole UnitY speech encoder cannot be converted: {self.alternative.why}; its inner "
                            f"conformer encoder can be converted on its own (--recipe {self.alternative.recipe})")
        return choice


class UnityInnerEncoderRecipe(ConformerShawRecipe):
    name = "unity_inner_encoder"
    title = "UnitY speech encoder's inner conformer encoder (seamless M4T) -> Wav2Vec2BertModel"
    original_backends = ("reference",)

    @classmethod
    def detect(cls, checkpoint: Checkpoint) -> Detection | None:
        naming = _unity_naming(checkpoint)
        if naming is None:
            return None
        # Chosen explicitly: detection prefers the whole speech encoder, which says why it cannot convert.
        return Detection(cls, naming, "inner encoder", 9.0,
                         "a UnitY speech encoder: its frontend and inner conformer encoder, on their own")

    @classmethod
    def layout_of(cls, detection: Detection) -> str:
        return detection.naming

    def naming_stages(self) -> list[Stage]:
        return [INNER_ENCODER]

    def card_details(self, config):
        from ...recipe import CardDetails

        return CardDetails(
            pipeline_tag="feature-extraction", base_model=None,
            tags=("wav2vec2-bert", "seamless_m4t", "unity", "audio", "speechport"),
            description=("The inner conformer encoder of a UnitY speech encoder (seamless M4T), converted to "
                         "transformers' `Wav2Vec2BertModel`: the frontend and the conformer layers, without the "
                         "LayerNorm, feed-forward block and length adaptor that follow them in the original."),
        )
