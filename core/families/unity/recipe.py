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

A proof must be about the model the source is. Speechport's reference runs the inner encoder only,
so the whole-encoder recipe never converts: a mapping that drops its LayerNorms (accepting the
difference) would otherwise convert the inner encoder under the whole encoder's name and "verify" it
against the inner encoder. What the speech encoder computes after its inner encoder is a plan
problem no mapping can drop, and a comparison of the whole encoder runs only against a folder that
says it holds the inner encoder.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import BadInput
from ...planning.plan import ConfigConflict
from ...planning.recipe import Alternative, Detection
from ...planning.rules import Stage, drop, refuse, rename
from ...planning.wrapper_prefix import unwrapped
from ...proof.report import read_report
from ...storage.checkpoint import Checkpoint
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


# The modules the whole speech encoder computes with after its inner encoder: the inner LayerNorm,
# the feed-forward block, the length adaptor and the final LayerNorm.
AFTER_THE_INNER_ENCODER = re.compile(_SPEECH + r"\.(?:inner_layer_norm|proj1|proj2|adaptor_layers|layer_norm)(?=\.)")
WHOLE = "the whole UnitY speech encoder"


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

    def after_the_inner_encoder(self) -> list[str]:
        """The modules this checkpoint's speech encoder computes with after its inner encoder, in file order."""
        found: list[str] = []
        for key in unwrapped(_state_dict(self.checkpoint)):
            match = AFTER_THE_INNER_ENCODER.match(key)
            if match is not None and match.group(0) not in found:
                found.append(match.group(0))
        return found

    def choose_config(self, names, *, config_path=None, labels=None):
        choice = super().choose_config(names, config_path=config_path, labels=labels)
        choice.notes.append(f"the whole UnitY speech encoder cannot be converted: {self.alternative.why}; its inner "
                            f"conformer encoder can be converted on its own (--recipe {self.alternative.recipe})")
        after = self.after_the_inner_encoder()
        if after:
            # Not a row a mapping can drop: leaving any of these out converts another model than the source.
            choice.conflicts.append(ConfigConflict(
                "architectures", list(self.converted_architectures()), WHOLE,
                f"the source is {WHOLE}, which after its inner encoder computes with {', '.join(after)}; "
                f"{self.converted_architectures()[0]} cannot hold them, and a conversion that leaves them out "
                f"(even by a mapping's drop) is another model than the source (convert the inner encoder on its own: "
                f"--recipe {self.alternative.recipe})"))
        return choice

    def converted_side(self, folder):
        """Speechport runs the inner encoder only: a whole speech encoder is compared only with a folder that
        says it holds the inner encoder (its report names the unity_inner_encoder recipe), and the result says so."""
        after = self.after_the_inner_encoder()
        if not after:
            return super().converted_side(folder)
        if _converted_with(folder) != UnityInnerEncoderRecipe.name:
            raise BadInput(
                f"{folder}: the source is {WHOLE}, which after its inner encoder computes with {', '.join(after)}, "
                f"and Speechport can run only its inner encoder; a comparison is made only with a folder converted "
                f"from the inner encoder (its speechport_report.json names the {UnityInnerEncoderRecipe.name} recipe)",
                cli_hint=f"convert it with --recipe {UnityInnerEncoderRecipe.name}")
        side = super().converted_side(folder)
        side.notes += (f"both models are the source's inner conformer encoder ({Path(folder).name} was converted with "
                       f"{UnityInnerEncoderRecipe.name}): what {WHOLE} computes after it ({', '.join(after)}) is in "
                       "neither",)
        return side


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
        from ...planning.recipe import CardDetails

        return CardDetails(
            pipeline_tag="feature-extraction", base_model=None,
            tags=("wav2vec2-bert", "seamless_m4t", "unity", "audio", "speechport"),
            description=("The inner conformer encoder of a UnitY speech encoder (seamless M4T), converted to "
                         "transformers' `Wav2Vec2BertModel`: the frontend and the conformer layers, without the "
                         "LayerNorm, feed-forward block and length adaptor that follow them in the original."),
        )


def _converted_with(folder: Path) -> str | None:
    """The recipe a Speechport conversion recorded in its report (None for any other folder)."""
    report = read_report(folder)
    recipe = report.get("recipe") if report is not None else None
    name = recipe.get("name") if isinstance(recipe, dict) else None
    return name if isinstance(name, str) else None
