"""Fine-tuned CTC speech recognition checkpoints (fairseq `wav2vec_ctc` / `hubert_ctc` on the
`audio_finetuning` task) -> transformers `Wav2Vec2ForCTC`, `HubertForCTC`, `Data2VecAudioForCTC`.

The encoder is the pretrained upstream under `w2v_encoder.w2v_model.`: its own family's recipe
(core/families/<family>/) converts it, rules, config and checks alike, under the head's base
prefix (`wav2vec2.`, `hubert.`, `data2vec_audio.`); only the output layer is this folder's
(`w2v_encoder.proj` -> `lm_head`, its rows in the dictionary's order). The dictionary gives the
config's vocabulary and special token ids and the tokenizer files (core/families/ctc/dictionary.py).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import BadInput
from ...planning.plan import ConfigConflict
from ...planning.recipe import CardDetails, ConfigChoice, Detection, Recipe, SourceTensor, hub_model_id
from ...planning.rules import Rule, RuleSet, Stage, rename
from ...planning.target_cache import ConfigSpec
from ...storage.checkpoint import Checkpoint, StoredTensor, as_torch, iter_tensors
from .._upstream import UpstreamRecipe
from ..data2vec_audio.recipe import Data2VecAudioUpstreamRecipe
from ..hubert.recipe import HubertUpstreamRecipe
from ..wav2vec2.recipe import Wav2Vec2UpstreamRecipe
from . import dictionary
from .layout import (
    CTC_SUFFIX,
    ENCODER_PREFIX,
    PROJECTION_PREFIX,
    PROJECTION_WEIGHT,
    TARGETS,
    FineTunedFile,
    encoder_state,
    read_fine_tuned,
)

if TYPE_CHECKING:
    from ...proof.audio import Clip
    from ...proof.comparison import SideOutput

ENCODER_RECIPES: dict[str, type[UpstreamRecipe]] = {
    "wav2vec2": Wav2Vec2UpstreamRecipe, "hubert": HubertUpstreamRecipe, "data2vec": Data2VecAudioUpstreamRecipe,
}
# Every transformers CTC head a folder of this recipe may hold (WavLM and UniSpeech-SAT have CTC heads
# too; fairseq has no CTC fine-tuning of them, so none is converted here, but their folders compare alike).
CTC_CLASSES = ("Wav2Vec2ForCTC", "HubertForCTC", "Data2VecAudioForCTC", "WavLMForCTC", "UniSpeechSatForCTC")
PROJECTION_RULE = rename(r"^w2v_encoder\.proj\.(weight|bias)$", r"lm_head.\1",
                         "the output layer w2v_encoder.proj -> lm_head (its rows in the dictionary's order)")
TRAINING_ENTRIES = {"cfg": "the training config (read for the config)",
                    "args": "the training arguments (read for the config)"}


class CtcRecipe(Recipe):
    name = "ctc"
    title = "fine-tuned CTC speech recognition (fairseq wav2vec_ctc, hubert_ctc) -> Wav2Vec2ForCTC, HubertForCTC, Data2VecAudioForCTC"

    def __init__(self, checkpoint: Checkpoint, detection: Detection, base_model: Path | None = None):
        super().__init__(checkpoint, detection, base_model)
        found = read_fine_tuned(checkpoint.content)  # a BadInput here names the unusable setting
        if found is None:
            raise BadInput(f"{checkpoint.path}: not a fairseq CTC fine-tuned checkpoint (wav2vec_ctc, hubert_ctc)")
        self.file: FineTunedFile = found
        self._dictionary_path: Path | None = None
        self._vocabulary: dictionary.Vocabulary | None = None
        encoder_class = ENCODER_RECIPES[found.family]
        inner = replace(checkpoint, content=found.encoder_content(encoder_state(self.state())))
        self.encoder: UpstreamRecipe = encoder_class(
            inner, Detection(encoder_class, found.naming, "encoder", 0.0, "the fine-tuned checkpoint's encoder"))
        self.class_prefix, self.base_prefix = TARGETS[found.family]

    # -- recognising and reading -----------------------------------------------------------
    @classmethod
    def detect(cls, checkpoint: Checkpoint) -> Detection | None:
        try:
            found = read_fine_tuned(checkpoint.content)
        except BadInput:  # ours, but unusable: opening it says why
            name = checkpoint.content["cfg"]["model"].get("_name") if _has_cfg(checkpoint.content) else "a CTC model"
            return Detection(cls, "fairseq_cfg", "ctc", 30.0, f"a fairseq CTC fine-tuned checkpoint ({name})")
        if found is None:
            return None
        return Detection(cls, found.naming, "ctc", 30.0,  # above the upstreams': this file is their fine-tuning
                         f"a fairseq CTC fine-tuned checkpoint ({found.model_name} on a {found.family} encoder, "
                         f"{'omegaconf cfg' if found.naming == 'fairseq_cfg' else 'argparse args'})")

    @classmethod
    def load_libraries(cls) -> None:
        import transformers

        for name in CTC_CLASSES[:3]:
            getattr(transformers, name)
        transformers.Wav2Vec2CTCTokenizer  # noqa: B018 - the tokenizer files are written by it

    def use_dictionary(self, path: Path) -> None:
        self._dictionary_path = Path(path)
        self._vocabulary = None

    def vocabulary(self) -> dictionary.Vocabulary:
        """The symbols the model writes, found and checked against the output layer's rows (read once)."""
        if self._vocabulary is None:
            found = dictionary.find(self.checkpoint.path, self.checkpoint.content, self.file.labels,
                                    self._dictionary_path)
            weight = self.state().get(PROJECTION_WEIGHT)
            if isinstance(weight, StoredTensor) and weight.dim() == 2:
                dictionary.check_rows(found, int(weight.shape[0]), "w2v_encoder.proj")
            self._vocabulary = found
        return self._vocabulary

    def check_checkpoint(self) -> None:
        self.vocabulary()  # no dictionary, or the wrong one: refused before anything else is done

    def state(self) -> Mapping:
        return self.checkpoint.content["model"]

    def source_tensors(self) -> dict[str, SourceTensor]:
        return {name: SourceTensor(tensor, self.checkpoint) for name, tensor in iter_tensors(self.state())}

    def other_entries(self) -> dict[str, str]:
        entries = {str(key): TRAINING_ENTRIES.get(key, "training state, not the model") for key in self.checkpoint.content
                   if key != "model"}
        if dictionary.from_task_state(self.checkpoint.content, self.checkpoint.path) is not None:
            entries["task_state"] = "the task's state (its target_dictionary is read for the vocabulary)"
        return entries

    def inexpressible(self, config=None) -> dict[str, str]:
        return {f"w2v_args.{key}": reason for key, reason in self.encoder.inexpressible(config).items()}

    # -- planning ---------------------------------------------------------------------------
    def rules(self, config=None) -> RuleSet:
        encoder = [self._under_encoder(rule) for rule in self.encoder.rules(config).stages[0].rules]
        return RuleSet([Stage(f"{self.name} -> transformers", (*encoder, PROJECTION_RULE))])

    def _under_encoder(self, rule: Rule) -> Rule:
        """The encoder's rule for its keys as the fine-tuned file holds them, into the head's base prefix."""
        pattern = "^" + ENCODER_PREFIX.replace(".", r"\.") + rule.pattern.removeprefix("^")
        target = f"{self.base_prefix}.{rule.target}" if rule.target is not None else None
        return Rule(pattern, target, rule.note, rule.refused)

    def choose_config(self, names, *, config_path=None, labels=None) -> ConfigChoice:
        if labels:
            raise BadInput("class names (labels) are for classification heads; a CTC model writes the symbols of its "
                           "dictionary", cli_hint="--dictionary FILE")
        vocabulary = self.vocabulary()
        encoder_names = {key[len(ENCODER_PREFIX):]: tensor for key, tensor in names.items()
                         if key.startswith(ENCODER_PREFIX)}
        base = self.encoder.choose_config(encoder_names, config_path=config_path)
        facts = self.ctc_facts(vocabulary)
        values = base.config.to_dict()
        if config_path is None:
            values.update({field: value for field, (value, _) in facts.items()})
            conflicts = list(base.conflicts)
        else:
            conflicts = [*base.conflicts, *(ConfigConflict(field, values.get(field), value, evidence)
                                            for field, (value, evidence) in facts.items() if values.get(field) != value)]
        spec = ConfigSpec(base.config.config_class, values, build="from_dict",
                          then={"architectures": [self.class_prefix + CTC_SUFFIX]}, source=base.path)
        config = self.build_config(spec, tensors=len(names))
        inferred = dict(base.inferred)
        if config_path is None:
            inferred.update({field: f"{value!r}: {evidence}" for field, (value, evidence) in facts.items()})
        inferred["vocabulary"] = vocabulary.described()
        return ConfigChoice(config, base.origin, path=base.path, inferred=inferred, conflicts=conflicts,
                            notes=list(base.notes))

    def ctc_facts(self, vocabulary: dictionary.Vocabulary) -> dict[str, tuple[Any, str]]:
        """The config's vocabulary fields, transformers' way (the CTC blank is the pad token)."""
        ids = vocabulary.token_ids()
        names = vocabulary.transformers_names()
        facts: dict[str, tuple[Any, str]] = {
            "vocab_size": (len(vocabulary), f"{len(vocabulary)} symbols in {vocabulary.origin}"),
            "pad_token_id": (ids["pad_token_id"], f"fairseq's CTC blank {vocabulary.symbols[dictionary.BLANK]!r} is "
                                                  f"row {dictionary.BLANK}, transformers' blank is the pad token"),
            "final_dropout": (0.0, "no dropout at inference"),
        }
        for field, word in (("bos_token_id", vocabulary.bos), ("eos_token_id", vocabulary.eos)):
            if ids[field] is not None:
                facts[field] = (ids[field], f"{word!r} is row {ids[field]} as transformers names the rows ("
                                            f"{names[dictionary.BLANK]!r} and {word!r} swapped)"
                                if field == "bos_token_id" else f"{word!r} is row {ids[field]}")
        return facts

    def target_class(self, config):
        import transformers

        return getattr(transformers, config.architectures[0])

    def target_extras(self) -> dict[str, Any]:
        return {"normalize": self.file.normalize, "tokenizer": self.vocabulary().tokenizer_settings()}

    # -- writing ----------------------------------------------------------------------------
    def preprocessor_config(self, config) -> dict[str, Any]:
        return self.encoder.preprocessor_config(config)  # its do_normalize is the fine-tuning task's

    def saved_files(self, config) -> dict[str, str]:
        """The tokenizer's files, exactly as transformers' Wav2Vec2CTCTokenizer.save_pretrained writes them."""
        from transformers import Wav2Vec2CTCTokenizer

        settings = self.vocabulary().tokenizer_settings()
        with tempfile.TemporaryDirectory(prefix="speechport-tokenizer-") as folder:
            vocab_file = Path(folder) / "vocab.json"
            vocab_file.write_text(json.dumps({name: index for index, name in enumerate(settings["vocab"])}),
                                  encoding="utf-8")
            tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), unk_token=settings["unk_token"],
                                             pad_token=settings["pad_token"], bos_token=settings["bos_token"],
                                             eos_token=settings["eos_token"],
                                             word_delimiter_token=settings["word_delimiter_token"], do_lower_case=False)
            saved = Path(folder) / "saved"
            tokenizer.save_pretrained(str(saved))
            return {item.name: item.read_text(encoding="utf-8") for item in sorted(saved.iterdir()) if item.is_file()}

    def card_details(self, config) -> CardDetails:
        family = self.encoder.title.split(" upstream")[0]
        return CardDetails(
            pipeline_tag="automatic-speech-recognition",
            base_model=hub_model_id(getattr(config, "_name_or_path", "") or ""),
            tags=(config.model_type, "ctc", "automatic-speech-recognition", "audio", "speechport"),
            description=(f"A {family} model fine-tuned for speech recognition with CTC in fairseq "
                         f"({self.file.model_name}), converted to transformers' `{config.architectures[0]}` with its "
                         f"tokenizer: `pipeline(\"automatic-speech-recognition\", model=<this folder>)` transcribes "
                         f"16 kHz audio into the {len(self.vocabulary())} symbols of its dictionary."),
        )

    # -- proving ----------------------------------------------------------------------------
    @classmethod
    def converted_architectures(cls) -> tuple[str, ...]:
        return CTC_CLASSES

    def original_names(self) -> dict[str, StoredTensor]:
        return dict(iter_tensors(self.state()))

    def original_stage(self, config=None) -> Stage:
        return self.rules(config).stages[0]

    def original_side(self, *, weights=None, backend="reference"):
        import torch

        from .reference import CtcReference
        from .sides import CtcOriginalSide

        self.check_backend(backend)
        weights = weights if weights is not None else self.original_names()
        encoder = {key[len(ENCODER_PREFIX):]: tensor for key, tensor in weights.items() if key.startswith(ENCODER_PREFIX)}
        projection = {key[len(PROJECTION_PREFIX):]: tensor for key, tensor in weights.items()
                      if key.startswith(PROJECTION_PREFIX)}
        model = self.encoder.original_model(weights=encoder, backend=backend)
        reference = CtcReference(model, as_torch(projection, torch.float32), self.vocabulary().symbols)
        return CtcOriginalSide(reference, normalize=self.file.normalize, frame_seconds=self.frame_seconds,
                               layers=int(self.encoder.file.settings()["encoder_layers"]))

    def converted_side(self, folder):
        from .sides import TransformersCtcSide

        return TransformersCtcSide(folder, normalize=self.file.normalize, frame_seconds=self.frame_seconds)

    def check_clip(self, clip: Clip, config=None) -> None:
        self.encoder.check_clip(clip, config)

    def explain(self, original: SideOutput, converted: SideOutput) -> tuple[list[str], dict]:
        from ...proof.comparison import TRANSCRIPT
        from ...proof.transcripts import character_error_rate
        from .sides import WORDS

        ours, theirs = original.extras.get(TRANSCRIPT), converted.extras.get(TRANSCRIPT)
        details = {f"words_{side}": [word.to_dict() for word in output.extras.get(WORDS, ())]
                   for side, output in (("original", original), ("converted", converted))}
        if ours is None or theirs is None:
            return [], details
        if ours == theirs:
            return [f"both models hear: {_said(ours)}"], details
        rate = character_error_rate(ours, theirs)
        return [f"the models hear differently (character error rate {rate:.1%}): the original {_said(ours)}, "
                f"the converted {_said(theirs)}"], details

    def clip_answers(self, original: SideOutput, converted: SideOutput) -> dict:
        """Each model's greedy transcript of the clip, under the names `compare --json` gives them
        (a test set's line holds them once, and holds them by this recipe's word)."""
        from ...proof.comparison import TRANSCRIPT
        from ...proof.testset_transcripts import TRANSCRIPT_FIELDS

        heard = (original.extras.get(TRANSCRIPT), converted.extras.get(TRANSCRIPT))
        if any(text is None for text in heard):
            return {}
        return dict(zip(TRANSCRIPT_FIELDS, heard))

    @classmethod
    def testset_aggregates(cls, clips: list[dict]) -> dict:
        """Over a test set: how many clips both models transcribe identically, the corpus character
        error rate between them, and each model's character and word error rates against the
        reference text where the set gives one (core.proof.testset_transcripts defines each)."""
        from ...proof.testset_transcripts import transcription_aggregates

        return transcription_aggregates(clips)


def _said(text: str) -> str:
    return f"“{text}”" if text else "nothing (no symbol but the blank)"


def _has_cfg(content: Any) -> bool:
    return (isinstance(content, Mapping) and isinstance(content.get("cfg"), Mapping)
            and isinstance(content["cfg"].get("model"), Mapping))
