"""S3PRL SUPERB downstream heads -> transformers `*ForSequenceClassification` (SID/ER/KS),
`*ForAudioFrameClassification` (SD) and `*ForXVector` (ASV).

An S3PRL `run_downstream.py` checkpoint holds only the head (`Downstream`) and the layer weights
(`Featurizer`); the upstream is a local transformers folder given with `--base-model`. The
converted model is that upstream's weights plus the head's, planned row by row. Whatever
transformers' heads cannot compute the way S3PRL does is refused with its reason.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import BadInput, quoted
from ...planning.plan import ConfigConflict
from ...planning.recipe import (
    CardDetails,
    ConfigChoice,
    Detection,
    Recipe,
    SourceTensor,
    hub_model_id,
    read_config_json,
)
from ...planning.rules import Rule, RuleSet, Stage, drop, refuse, rename
from ...planning.target_cache import PREPROCESSOR_FILE, ConfigSpec, TargetConfig
from ...proof.audio import MODEL_RATE
from ...storage.checkpoint import Checkpoint, StoredTensor, as_torch, load_checkpoint
from ...storage.safetensors_file import WEIGHTS_NAME, weight_files
from ...storage.strict_json import load_file
from .._upstream import UpstreamRecipe
from . import identity
from .layout import HEAD_CLASS_SUFFIX, check_upstream_clip, head_kind, read_modelrc
from .task_labels import TaskLabels, task_labels

if TYPE_CHECKING:  # the models run (torch) only where a comparison does: see sides.py
    from ...proof.audio import Clip
    from ...proof.comparison import SideOutput

# S3PRL downstream (Args.downstream) -> task kind, the SUPERB task's name.
DOWNSTREAMS = {
    "voxceleb1": ("cls", "speaker identification (SID)"),
    "emotion": ("cls", "emotion recognition (ER)"),
    "speech_commands": ("cls", "keyword spotting (KS)"),
    "diarization": ("sd", "speaker diarization (SD)"),
    "sv_voxceleb1": ("asv", "automatic speaker verification (ASV)"),
}
PIPELINE_TAG = {"cls": "audio-classification", "sd": "voice-activity-detection", "asv": "feature-extraction"}
# The upstream families a head may sit on: model_type -> (transformers class prefix, the
# base_model_prefix of its heads). A base model is a transformers folder of one of them, or one of
# their original checkpoints (core/families/<family>/), converted in the same run.
BASE_FAMILIES = {"wav2vec2": ("Wav2Vec2", "wav2vec2"), "hubert": ("Hubert", "hubert"), "wavlm": ("WavLM", "wavlm"),
                 "unispeech-sat": ("UniSpeechSat", "unispeech_sat"), "data2vec-audio": ("Data2VecAudio", "data2vec_audio")}
# The head classes transformers does not have (known without importing it; a test checks the list
# against the installed transformers).
MISSING_HEAD_CLASSES = frozenset({"HubertForAudioFrameClassification", "HubertForXVector"})
# sv_voxceleb1/model.py XVector: its five TDNN layers' context sizes and dilations.
XVECTOR_CONTEXT = (5, 3, 3, 1, 1)
XVECTOR_DILATION = (1, 2, 3, 1, 1)
TRAINING_STATE = ("Optimizer", "Scheduler", "Step", "Epoch", "WorldSize")
MODEL_SECTIONS = ("Downstream", "Featurizer", "Upstream", "Args", "Config")  # what the original model reads

# -- rules ------------------------------------------------------------------------------------
# Renames follow transformers' convert_wav2vec2_original_s3prl_checkpoint_to_pytorch.py (the
# assignments in convert_classification / convert_diarization / convert_xvector, and
# `layer_weights <- Featurizer["weights"]`). "{base}" is the target's base_model_prefix.

FEATURIZER_RULES = (
    rename(r"^Featurizer\.weights$", "layer_weights", "Featurizer weights -> layer_weights (softmaxed alike)"),
    drop(r"^Downstream\.best_score$", "S3PRL bookkeeping: best_score"),
)
UPSTREAM_RULES = (
    drop(r"^BaseModel\.(?:\w+\.)?(quantizer|project_q|project_hid|lm_head|dropout_features)\.",
         "a pretraining or CTC head of the base model, unused by S3PRL's upstream"),
    rename(r"^BaseModel\.(?:wav2vec2\.|hubert\.|wavlm\.|unispeech_sat\.|data2vec_audio\.)?(.*)$", r"{base}.\1",
           "the upstream's weights, from the base model"),
    rename(r"^Upstream\.model\.(.*)$", r"{base}.\1", "the upstream fine-tuned with the head (saved in the checkpoint)"),
)
HEAD_RULES = {
    "cls": (
        rename(r"^Downstream\.projector\.(weight|bias)$", r"projector.\1", "projector -> projector"),
        rename(r"^Downstream\.model\.post_net\.linear\.(weight|bias)$", r"classifier.\1", "post_net.linear -> classifier"),
        refuse(r"^Downstream\.model\.pre_net\.", "UtteranceLevel pre_net: transformers' head has no layer before pooling"),
        refuse(r"^Downstream\.model\.post_net\.", "post_net hidden layers: transformers' classifier is one linear layer"),
        refuse(r"^Downstream\.model\.pooling\.", "attention pooling: transformers' head pools with a plain mean"),
        refuse(r"^Downstream\.model\.", "this downstream model: transformers' head is projector, mean, linear"),
    ),
    "sd": (
        rename(r"^Downstream\.model\.linear\.(weight|bias)$", r"classifier.\1", "diarization linear -> classifier"),
        refuse(r"^Downstream\.model\.rnn\.", "the diarization LSTM (rnn_layers > 0): transformers' frame classifier "
               "applies its linear layer straight to the features"),
    ),
    "asv": (
        rename(r"^Downstream\.connector\.(weight|bias)$", r"projector.\1", "connector -> projector"),
        rename(r"^Downstream\.model\.framelevel_feature_extractor\.module\.(\d+)\.kernel\.(weight|bias)$",
               r"tdnn.\1.kernel.\2", "XVector TDNN kernel -> tdnn kernel"),
        refuse(r"^Downstream\.model\.framelevel_feature_extractor\.module\.\d+\.bn\.",
               "TDNN batch norm: transformers' TDNNLayer has none"),
        rename(r"^Downstream\.model\.utterancelevel_feature_extractor\.linear1\.(weight|bias)$",
               r"feature_extractor.\1", "UtteranceExtractor linear1 -> feature_extractor"),
        rename(r"^Downstream\.model\.utterancelevel_feature_extractor\.linear2\.(weight|bias)$",
               r"classifier.\1", "UtteranceExtractor linear2 -> classifier"),
        rename(r"^Downstream\.objective\.W$", "objective.weight", "AMSoftmax W -> objective.weight"),
        refuse(r"^Downstream\.objective\.", "this objective: transformers' x-vector head has AMSoftmax only"),
    ),
}


class S3prlRecipe(Recipe):
    name = "s3prl"
    title = "S3PRL SUPERB downstream heads (SID, ER, KS, SD, ASV) + a local base model -> Wav2Vec2For*"
    needs_base_model = True
    original_backends = ("reference", "s3prl")

    def __init__(self, checkpoint: Checkpoint, detection: Detection, base_model: Path | None = None):
        super().__init__(checkpoint, detection, base_model)
        self._base: Checkpoint | None = None
        self._upstream: UpstreamRecipe | None = None
        self._base_config = None
        # Whether the user accepts a base model other than the upstream the head records (read once:
        # the window's worker threads and a CLI command's context see the recipe alike).
        self.mismatch_accepted = identity.is_mismatch_accepted()
        # Where the converted config's class names come from, in words (set with the config).
        self.labels_origin: str | None = None
        self.task_labels: TaskLabels | None = None  # the names S3PRL's task gives, when no file or config does

    @classmethod
    def layout_of(cls, detection: Detection) -> str:
        return detection.task  # every head is S3PRL-named; what tells them apart is the task

    # -- detection ------------------------------------------------------------------------
    @classmethod
    def detect(cls, checkpoint: Checkpoint) -> Detection | None:
        content = checkpoint.content
        if not isinstance(content, dict):
            return None
        markers = [key for key in ("Downstream", "Featurizer", "Args", "Config") if key in content]
        if "Downstream" not in markers and len(markers) < 2:
            return None
        kind, task = _task(content)
        downstream = _downstream(content) or "unknown downstream"
        return Detection(cls, "s3prl", kind, float(len(markers)) + 10.0,  # top-level names no other family uses
                         f"S3PRL run_downstream.py checkpoint ({downstream}: {task})")

    def check_checkpoint(self) -> None:
        content = self.checkpoint.content
        if not isinstance(content.get("Downstream"), dict):
            raise BadInput(f"{self.checkpoint.path}: an S3PRL checkpoint without 'Downstream' (no head weights to convert)")
        named = getattr(content.get("Args"), "downstream", None)
        if named is not None and not isinstance(named, str):
            raise BadInput(f"{self.checkpoint.path}: Args.downstream is a {type(named).__name__}, not the name of an S3PRL "
                           f"downstream ({', '.join(DOWNSTREAMS)})")
        if self.task == "unknown":
            raise BadInput(f"{self.checkpoint.path}: cannot tell which SUPERB task this head is for "
                           f"(Args.downstream={getattr(content.get('Args'), 'downstream', None)!r})")

    def upstream(self) -> UpstreamRecipe | None:
        """The base model when it is an original upstream checkpoint (converted in the same run)."""
        if self._upstream is None and self.base_model is not None and Path(self.base_model).is_file():
            self._upstream = open_upstream(Path(self.base_model))
        return self._upstream

    def base(self) -> Checkpoint | None:
        """The base model's weights, from a transformers folder (opened once); None for an upstream file."""
        if self._base is None and self.base_model is not None and self.upstream() is None:
            self._base = open_base_model(self.base_model)
        return self._base

    def base_config(self) -> TargetConfig:
        """The base model's transformers config: the folder's, or the one its upstream file converts to."""
        if self._base_config is None:
            upstream = self.upstream()
            if upstream is not None:
                self._base_config = upstream.choose_config(upstream.original_names()).config
            else:
                self.base()  # refuse a folder that is no base model before transformers reads it
                folder = Path(self.base_model)
                data = read_config_json(folder, tuple(BASE_FAMILIES))
                prefix, _ = BASE_FAMILIES[data["model_type"]]
                self._base_config = self.build_config(ConfigSpec(
                    f"{prefix}Config", data, build="from_pretrained", folder=str(folder), with_model=False))
        return self._base_config

    def base_summary(self) -> dict | None:
        upstream = self.upstream()
        if upstream is None:
            return None
        return {"recipe": upstream.name, "layout": upstream.layout, "target_class": upstream.target_name,
                "evidence": upstream.detection.evidence}

    # -- is the base model the upstream the head was trained on? ----------------------------
    def base_identity(self) -> identity.Upstream:
        """The base model as the head would see it: its family and the hidden states it gives."""
        config = self.base_config()
        upstream = self.upstream()
        if upstream is None:
            return identity.base_folder(config.model_type, config.num_hidden_layers)
        family = upstream.file.family
        states = config.num_hidden_layers + 1
        if family == "distiller":  # S3PRL's DistilHuBERT adds one hidden state per prediction head
            heads = upstream.file.settings().get("n_tasks")
            states = states + heads if isinstance(heads, int) and not isinstance(heads, bool) else None
        return identity.base_file(family, states)

    def base_mismatch(self) -> str | None:
        """The sentence naming both, when the base model is known to be another upstream than the
        head's; None when they agree as far as either side tells."""
        head = identity.trained_on(self.checkpoint.content)
        base = self.base_identity()
        return identity.mismatch_sentence(head, base) if identity.differ(head, base) else None

    def check_base_model(self) -> None:
        """Refuse a base model other than the upstream the head records, unless the user accepts it."""
        sentence = self.base_mismatch()
        if sentence is not None and not self.mismatch_accepted:
            raise BadInput(f"{self.base_model}: {sentence}", hint="give the base model the head was trained on",
                           cli_hint="to use this base model anyway: --base-model-mismatch-ok")

    @property
    def accepted_base_model_mismatch(self) -> dict | None:
        """For the report: the upstream the head records and the base model used instead, when the
        user accepted the difference (None when there is none)."""
        if not self.mismatch_accepted or self.base_model is None:
            return None
        head, base = identity.trained_on(self.checkpoint.content), self.base_identity()
        if not identity.differ(head, base):
            return None
        sentence = identity.mismatch_sentence(head, base)
        return {"trained_on": head.to_dict(), "base_model": base.to_dict(), "accepted": True,
                "sentence": sentence, "note": identity.accepted_note(sentence)}

    # -- sources and rules ----------------------------------------------------------------
    def source_tensors(self) -> dict[str, SourceTensor]:
        content = self.checkpoint.content
        tensors = self._head_tensors()
        base, upstream = self.base(), self.upstream()
        if base is not None:
            for key, value in base.content.items():
                tensors[f"BaseModel.{key}"] = SourceTensor(value, base)
        elif upstream is not None:
            for key, value in upstream.source_tensors().items():
                tensors[f"BaseModel.{key}"] = value
        if "Upstream" in content:  # the checkpoint's fine-tuned upstream replaces the folder's weights
            tensors = {k: v for k, v in tensors.items() if not k.startswith("BaseModel.")}
        return tensors

    def _head_tensors(self) -> dict[str, SourceTensor]:
        tensors: dict[str, SourceTensor] = {}
        for section in ("Downstream", "Featurizer", "Upstream"):
            for key, value in (self.checkpoint.content.get(section) or {}).items():
                if isinstance(value, StoredTensor):
                    tensors[f"{section}.{key}"] = SourceTensor(value, self.checkpoint)
        return tensors

    def other_entries(self) -> dict[str, str]:
        entries = {}
        for key in self.checkpoint.content:
            if key in TRAINING_STATE:
                entries[key] = f"training state: {key}"
            elif key == "Args":
                entries[key] = "run_downstream.py arguments (read for the config and the featurizer)"
            elif key == "Config":
                entries[key] = "the task's configuration (read for the config)"
            elif key not in ("Downstream", "Featurizer", "Upstream"):
                entries[str(key)] = "not part of the model"
        return entries

    def inexpressible(self, config=None) -> dict[str, str]:
        content = self.checkpoint.content
        layout = self.task
        args = content.get("Args")
        found = {}
        if getattr(args, "upstream_feature_normalize", False) and content.get("Featurizer"):
            found["Args.upstream_feature_normalize"] = (
                "S3PRL layer-norms every hidden state before the weighted sum; transformers' "
                "use_weighted_layer_sum cannot")
        selection = getattr(args, "upstream_layer_selection", None)
        last = getattr(config, "num_hidden_layers", None)
        if selection is not None and not content.get("Featurizer") and selection not in (last, -1):
            found["Args.upstream_layer_selection"] = (
                f"S3PRL feeds hidden state {selection} to the head; transformers' heads take the last one "
                "or a weighted sum of all")
        modelrc = read_modelrc(content)
        if layout == "cls":
            options = modelrc.get(modelrc.get("select", "UtteranceLevel")) or {}
            if modelrc.get("select", "UtteranceLevel") != "UtteranceLevel":
                found["Config.modelrc.select"] = f"S3PRL downstream model {modelrc.get('select')!r}: transformers' head is projector, mean, linear"
            elif options.get("pooling", "MeanPooling") != "MeanPooling":
                found["Config.modelrc.pooling"] = f"{options.get('pooling')}: transformers' head pools with a plain mean"
        if layout == "asv":
            layout_names = (modelrc.get("module"), modelrc.get("agg_module"), modelrc.get("utter_module"))
            if layout_names != ("XVector", "SP", "UtteranceExtractor"):
                found["Config.modelrc.module"] = f"{layout_names}: transformers' x-vector head is XVector, SP, UtteranceExtractor"
        upstream = self.upstream()
        if upstream is not None and content.get("Featurizer"):
            settings = upstream.file.settings()
            if upstream.file.family == "distiller":
                found["BaseModel.Config.distiller (hidden states)"] = (
                    "DistilHuBERT's hidden states in S3PRL start with the features before the positional conv and end "
                    "with its prediction heads' outputs; transformers' hidden_states have neither, so "
                    "use_weighted_layer_sum cannot weigh the same states")
            elif settings.get("layer_norm_first"):
                found["BaseModel.cfg.layer_norm_first (weighted layer sum)"] = (
                    "a pre-LN upstream: S3PRL's last hidden state is after the encoder's final LayerNorm, transformers' "
                    "hidden_states[-1] is before it, so use_weighted_layer_sum weighs another state (measured: logits "
                    "0.4 to 2.1 off)")
        return found

    def rules(self, config=None) -> RuleSet:
        head = HEAD_RULES.get(self.task, ())
        original = self.upstream()
        if original is not None:  # the upstream file's own rules, under BaseModel. and the head's base prefix
            base_config = self.base_config()
            base_prefix = BASE_FAMILIES[base_config.model_type][1]
            upstream = [_under_base_model(rule, base_prefix) for rule in original.rules(base_config).stages[0].rules]
            upstream.append(rename(r"^Upstream\.model\.(.*)$", rf"{base_prefix}.\1",
                                   "the upstream fine-tuned with the head (saved in the checkpoint)"))
        else:
            base_prefix = BASE_FAMILIES.get(getattr(config, "model_type", "wav2vec2"), BASE_FAMILIES["wav2vec2"])[1]
            upstream = [r if r.target is None or "{base}" not in r.target
                        else rename(r.pattern, r.target.format(base=base_prefix), r.note) for r in UPSTREAM_RULES]
        return RuleSet([Stage("S3PRL -> transformers", (*FEATURIZER_RULES, *upstream, *head))])

    # -- config ---------------------------------------------------------------------------
    def choose_config(self, names, *, config_path=None, labels=None) -> ConfigChoice:
        base_model, layout, checkpoint = self.base_model, self.task, self.checkpoint
        base_config = self.base_config()
        prefix, _ = BASE_FAMILIES[base_config.model_type]
        class_name = prefix + HEAD_CLASS_SUFFIX[layout]
        if class_name in MISSING_HEAD_CLASSES:
            raise BadInput(f"{base_model}: transformers has no {class_name}, so a {base_config.model_type} "
                           f"upstream cannot carry this {layout} head")
        self.check_base_model()
        facts = _head_facts(names, layout)
        notes = []
        accepted = self.accepted_base_model_mismatch
        if accepted is not None:
            notes.append(accepted["note"])
        content = checkpoint.content
        args = content.get("Args")
        selection = getattr(args, "upstream_layer_selection", None)
        if selection is not None and not content.get("Featurizer"):
            last = base_config.num_hidden_layers
            if selection in (last, -1):
                notes.append(f"S3PRL selects the last hidden state ({selection}): use_weighted_layer_sum=False")
        if config_path is None:
            values = base_config.to_dict()
            values.update({field: value for field, (value, _) in facts.items()})
            values["architectures"] = [class_name]
            num_labels = values.pop("num_labels", base_config.num_labels)
            named = task_labels(_downstream(content), num_labels)
            label_names = labels or named.names
            _check_label_count(label_names, num_labels, "the labels file")
            self.labels_origin = "the labels file" if labels else named.origin
            self.task_labels = None if labels else named
            if named.note and not labels:
                notes.append(named.note)
            values["id2label"] = dict(enumerate(label_names))
            values["label2id"] = {name: i for i, name in enumerate(label_names)}
            config = self.build_config(ConfigSpec(base_config.config_class, values, build="from_dict"))
            inferred = {field: f"{value!r}: {evidence}" for field, (value, evidence) in facts.items()}
            upstream = self.upstream()
            inferred["(upstream)"] = (f"{base_config.model_type} from {Path(base_model).name}" if upstream is None else
                                      f"{base_config.model_type}, converted from {Path(base_model).name} ({upstream.layout})")
            inferred["labels"] = f"{', '.join(label_names[:8])}{'...' if len(label_names) > 8 else ''}: " + (
                "from the labels file" if labels else named.origin.removeprefix("LABEL_n: "))
            conflicts = _base_conflicts(base_config, names, facts)
            return ConfigChoice(config, "inferred", inferred=inferred, conflicts=conflicts, notes=notes)

        data = read_config_json(config_path, tuple(BASE_FAMILIES))
        spec = ConfigSpec(base_config.config_class, data, build="from_dict", then={"architectures": [class_name]},
                          source=str(config_path))
        config = self.build_config(spec)
        self.labels_origin = "the labels file" if labels else f"the config file {config_path}"
        self.task_labels = None
        if labels:
            _check_label_count(labels, config.num_labels, "the labels file")
            config = self.build_config(replace(spec, then={**spec.then, "id2label": dict(enumerate(labels)),
                                                           "label2id": {name: i for i, name in enumerate(labels)}}))
        conflicts = [
            ConfigConflict(field, getattr(config, field, None), value, evidence)
            for field, (value, evidence) in facts.items()
            if getattr(config, field, None) != value
        ]
        for field in ("hidden_size", "num_hidden_layers", "model_type"):
            if getattr(config, field) != getattr(base_config, field):
                conflicts.append(ConfigConflict(field, getattr(config, field), getattr(base_config, field),
                                                f"the base model folder has {field}={getattr(base_config, field)!r}"))
        conflicts += _base_conflicts(base_config, names, facts)
        return ConfigChoice(config, "file", path=str(config_path), conflicts=conflicts, notes=notes)

    @classmethod
    def load_libraries(cls) -> None:
        import transformers  # noqa: F401

    def target_class(self, config):
        import transformers

        return getattr(transformers, config.architectures[0])

    def target_extras(self) -> dict[str, Any]:
        """The preprocessor config follows the upstream file's normalisation, or the base folder's own."""
        upstream = self.upstream()
        if upstream is not None:
            return {"upstream_normalize": upstream.file.normalize}
        found = Path(self.base_model) / PREPROCESSOR_FILE if self.base_model is not None else None
        return {"base_preprocessor": found.read_text(encoding="utf-8") if found is not None and found.is_file() else None}

    def preprocessor_config(self, config) -> dict[str, Any]:
        from transformers import Wav2Vec2FeatureExtractor

        # As transformers' S3PRL script writes it: S3PRL's HF upstreams pass an attention mask
        # and the SUPERB wav2vec2 recipes do not normalise the waveform.
        overrides = {"return_attention_mask": True, "do_normalize": False}
        base_model, upstream = self.base_model, self.upstream()
        if upstream is not None:  # what the upstream's S3PRL expert does: its own normalisation, a mask always
            return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=MODEL_RATE, padding_value=0.0,
                                            do_normalize=upstream.file.normalize, return_attention_mask=True).to_dict()
        if base_model is not None and (Path(base_model) / PREPROCESSOR_FILE).is_file():
            extractor = Wav2Vec2FeatureExtractor.from_pretrained(base_model, **overrides)
        else:
            extractor = Wav2Vec2FeatureExtractor(**overrides)
        return extractor.to_dict()

    def card_details(self, config) -> CardDetails:
        kind = self.rules_kind(config)
        downstream = _downstream(self.checkpoint.content) or "s3prl"
        _, task = DOWNSTREAMS.get(downstream, (kind, "a SUPERB task"))
        base_id = hub_model_id(getattr(config, "_name_or_path", "") or "")
        return CardDetails(
            pipeline_tag=PIPELINE_TAG[kind],
            base_model=base_id,
            tags=("s3prl", "superb", downstream, config.model_type, "audio", "speechport"),
            description=(
                f"An S3PRL SUPERB {task} head on a {config.model_type} upstream, converted to transformers' "
                f"`{config.architectures[0]}`."
            ),
        )

    @staticmethod
    def rules_kind(config) -> str:
        return head_kind(config.architectures[0])

    # -- verification ---------------------------------------------------------------------
    def explain(self, original: SideOutput, converted: SideOutput) -> tuple[list[str], dict]:
        kind = converted.extras.get("kind")
        if kind == "cls":
            from .sides import explain_classification

            return explain_classification(original.primary, converted.primary, converted.extras["labels"])
        if kind == "sd":
            return [f"frame logits compared on the {original.primary.shape[0]} frames S3PRL keeps "
                    "(round(samples / 320)); S3PRL's evaluation also stretches them to the label length"], {}
        if kind == "asv":
            ours = original.extras["s3prl_embedding"]
            theirs = converted.extras["transformers_embedding_as_s3prl"]
            import torch

            cosine = float(torch.nn.functional.cosine_similarity(ours, theirs, dim=0))
            head_class = converted.extras.get("class", "…ForXVector")  # the converted folder's own class
            notes = [
                f"transformers' {head_class} `embeddings` is linear1 without ReLU or normalisation, and its "
                "`logits` is linear2(linear1) without ReLUs, while S3PRL scores with l2norm(ReLU(linear1)): "
                "compared like with like, transformers' embeddings against S3PRL's linear1 before the ReLU",
                f"S3PRL's verification embedding vs the same transform of transformers' embeddings: cosine {cosine:.6f}",
            ]
            return notes, {"verification_embedding_cosine": cosine}
        return [], {}

    def clip_answers(self, original: SideOutput, converted: SideOutput) -> dict:
        kind = converted.extras.get("kind")
        if kind == "cls":  # SID, ER, KS: one class per clip
            labels = converted.extras["labels"]
            ours, theirs = int(original.primary.argmax()), int(converted.primary.argmax())
            return {"top1": {"original": labels[ours], "converted": labels[theirs], "original_index": ours,
                             "converted_index": theirs}}
        if kind == "asv":  # what S3PRL scores trials with: the cosine of l2norm(ReLU(linear1)) embeddings
            return {"embeddings": {"original": original.extras["s3prl_embedding"].tolist(),
                                   "converted": converted.extras["transformers_embedding_as_s3prl"].tolist()}}
        if kind == "sd":  # a speaker is active in a frame when sigmoid(logit) > 0.5, as S3PRL decides
            frames = original.primary.shape[0]
            ours, theirs = original.primary > 0, converted.primary[:frames] > 0
            differing = int((ours != theirs).any(dim=-1).sum()) if ours.shape == theirs.shape else frames
            return {"speaker_frame_disagreement": differing / frames if frames else 0.0,
                    "speaker_frames_differing": differing}
        return {}

    @classmethod
    def converted_architectures(cls) -> tuple[str, ...]:
        return tuple(prefix + suffix for prefix, _ in BASE_FAMILIES.values() for suffix in HEAD_CLASS_SUFFIX.values())

    def original_names(self) -> dict[str, StoredTensor]:
        """The head's tensors as S3PRL names them ("Downstream.projector.weight"); the base model
        folder's weights are the upstream's own and are read by the upstream itself."""
        return {key: source.tensor for key, source in self._head_tensors().items()}

    def original_stage(self, config=None) -> Stage:
        # The head's names only: the upstream's weights come from the base model, read by itself.
        return Stage("S3PRL head -> transformers", (*FEATURIZER_RULES, *HEAD_RULES.get(self.task, ())))

    def original_side(self, *, weights=None, backend="reference"):
        import torch

        self.check_backend(backend)
        self.check_base_model()  # `compare` runs the head on a base model without settling a config first
        # What the original model uses, read now and in float32 whatever the file stores. `weights`
        # (S3PRL names, "Section.key") may add tensors found through the user's fixes.
        weights = weights if weights is not None else self.original_names()
        content = {}
        for section, value in self.checkpoint.content.items():
            if section in MODEL_SECTIONS:  # the tensors come from `weights`, the rest as saved
                content[section] = ({k: v for k, v in value.items() if not isinstance(v, StoredTensor)}
                                    if isinstance(value, dict) else value)
        for name, tensor in weights.items():
            section, _, key = name.partition(".")
            if section in MODEL_SECTIONS and key:
                content.setdefault(section, {})[key] = tensor
        content = as_torch(content, torch.float32)
        upstream = self.base_upstream(content.get("Upstream"), backend)
        if backend == "s3prl":
            from .s3prl_backend import S3prlHeadSide

            return S3prlHeadSide(content, self.task, upstream)
        from .sides import S3prlReferenceSide

        return S3prlReferenceSide(content, self.task, upstream)

    def base_upstream(self, upstream_state, backend: str):
        """A callable `waveforms -> (hidden states, S3PRL frame counts)`: the upstream as S3PRL's
        Featurizer receives it, from the original upstream file (Speechport's reference or S3PRL's
        modules) or from the transformers base folder."""
        from .reference import original_upstream_hidden_states, upstream_hidden_states

        original = self.upstream()
        if original is None:
            folder = self.base_model
            return lambda waves: upstream_hidden_states(folder, waves, do_normalize=False, upstream_state=upstream_state)
        if upstream_state:
            raise BadInput(f"{self.checkpoint.path}: the head was trained with a fine-tuned upstream saved in the checkpoint; "
                           "give the upstream model it started from as a transformers folder")
        model = original.original_model(backend=backend)
        return lambda waves: original_upstream_hidden_states(model, waves)

    def converted_side(self, folder):
        from .sides import TransformersHeadSide

        upstream = self.upstream()
        side = TransformersHeadSide(folder, normalize=upstream.file.normalize if upstream is not None else False)
        accepted = self.accepted_base_model_mismatch
        if accepted is not None:  # said of every clip, in the report and the model card too
            side.notes += (accepted["note"],)
        return side

    def check_clip(self, clip: Clip, config=None) -> None:
        if config is not None:
            check_upstream_clip(clip, config.conv_kernel, config.conv_stride, self.rules_kind(config))




def open_upstream(path: Path) -> UpstreamRecipe:
    """An original upstream checkpoint given as the base model, opened with its own family's recipe."""
    from .. import detect

    checkpoint = load_checkpoint(path)
    try:
        detection = detect(checkpoint)
    except BadInput:
        detection = None
    if detection is None or not issubclass(detection.recipe, UpstreamRecipe):
        what = f"a {detection.recipe.name} checkpoint" if detection is not None else "no checkpoint Speechport knows"
        raise BadInput(f"{path}: {what}, not an upstream; the base model is a transformers folder or an upstream checkpoint "
                       "(wav2vec 2.0, HuBERT, data2vec-audio, WavLM, UniSpeech-SAT)")
    return detection.open(checkpoint)


def _under_base_model(rule: Rule, base_prefix: str) -> Rule:
    """An upstream file's rule for its keys as they appear under `BaseModel.`, renaming into the head's base prefix."""
    pattern = r"^BaseModel\." + rule.pattern.removeprefix("^")
    target = f"{base_prefix}.{rule.target}" if rule.target is not None else None
    return Rule(pattern, target, rule.note, rule.refused)


def open_base_model(folder: Path) -> Checkpoint:
    """The upstream's weights, from a local transformers folder (safetensors, single or sharded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: the base model must be a local transformers folder")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise BadInput(f"{folder}: not a transformers model folder (no config.json)")
    config = load_file(config_file, "config")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or model_type not in BASE_FAMILIES:
        raise BadInput(f"{folder}: a {model_type!r} model; S3PRL's transformers upstreams are "
                       f"{' and '.join(BASE_FAMILIES)} models")
    _check_base_architecture(folder, model_type, config.get("architectures"))
    shards = weight_files(folder)
    if len(shards) > 1:
        raise BadInput(f"{folder}: sharded base models are not supported yet; save it as one {WEIGHTS_NAME}")
    return load_checkpoint(folder / shards[0])


def _downstream(content: dict) -> str | None:
    """Args.downstream, the S3PRL downstream's name (None when absent or not a name: `check_checkpoint` refuses that)."""
    downstream = getattr(content.get("Args"), "downstream", None)
    return downstream if isinstance(downstream, str) else None


def _check_base_architecture(folder: Path, model_type: str, architectures) -> None:
    """A base folder's config may name no class, but one it names must be of its model_type's family
    (`Wav2Vec2Model`, `Wav2Vec2ForCTC`... for wav2vec2): another says the config was not written for these weights."""
    if architectures is None or architectures == []:
        return
    prefix = BASE_FAMILIES[model_type][0]
    first = architectures[0] if isinstance(architectures, list) else architectures
    if not isinstance(first, str) or not re.fullmatch(rf"{prefix}(?:Model|For\w+)", first):
        raise BadInput(f"{folder}: its config names {quoted(first)} as its model class, which is no {model_type} model "
                       f"(its model_type); a base model folder holds a {prefix}Model or one of its heads")


def _task(content: dict) -> tuple[str, str]:
    """The task kind from Args.downstream, else from the head's key names."""
    downstream = _downstream(content)
    if downstream in DOWNSTREAMS:
        return DOWNSTREAMS[downstream]
    keys = set(content.get("Downstream") or {})
    if any(k.startswith("model.post_net.") for k in keys):
        return "cls", "utterance classification"
    if any(k.startswith("model.framelevel_feature_extractor.") for k in keys):
        return "asv", "speaker verification"
    if "model.linear.weight" in keys:
        return "sd", "frame classification"
    return "unknown", "an unknown task"


def _check_label_count(labels: list[str], num_labels: int, what: str) -> None:
    if len(labels) != num_labels:
        raise BadInput(f"{what} has {len(labels)} labels, but the head has {num_labels} classes")


def _head_facts(names: dict[str, StoredTensor], layout: str) -> dict[str, tuple[Any, str]]:
    """Config values read off the head's shapes (S3PRL names, fixes included). A tensor the
    checkpoint does not hold under its S3PRL name gives no fact: the plan shows it unmapped."""
    facts: dict[str, tuple[Any, str]] = {}
    weights = names.get("Featurizer.weights")
    facts["use_weighted_layer_sum"] = (
        weights is not None,
        "the Featurizer holds layer weights" if weights is not None else "S3PRL selected one hidden layer",
    )

    def fact(field: str, key: str, axis: int) -> None:
        tensor = names.get(f"Downstream.{key}")
        if tensor is not None and tensor.dim() > axis:
            facts[field] = (int(tensor.shape[axis]), f"Downstream.{key} is {list(tensor.shape)}")

    if layout == "cls":
        fact("num_labels", "model.post_net.linear.weight", 0)
        fact("classifier_proj_size", "projector.weight", 0)
    elif layout == "sd":
        fact("num_labels", "model.linear.weight", 0)
    elif layout == "asv":
        kernels = [names.get(f"Downstream.model.framelevel_feature_extractor.module.{i}.kernel.weight")
                   for i in range(len(XVECTOR_CONTEXT))]
        if all(kernel is not None for kernel in kernels):
            facts["tdnn_dim"] = ([int(kernel.shape[0]) for kernel in kernels], "the XVector TDNN kernels' output sizes")
        facts["tdnn_kernel"] = (list(XVECTOR_CONTEXT), "S3PRL XVector context sizes (sv_voxceleb1/model.py)")
        facts["tdnn_dilation"] = (list(XVECTOR_DILATION), "S3PRL XVector dilations (sv_voxceleb1/model.py)")
        fact("xvector_output_dim", "model.utterancelevel_feature_extractor.linear1.weight", 0)
        fact("num_labels", "objective.W", 1)
    return facts


def _base_conflicts(base_config, names: dict[str, StoredTensor], facts) -> list[ConfigConflict]:
    """Does the base model fit the featurizer and the head it is paired with?"""
    conflicts = []
    weights = names.get("Featurizer.weights")
    if weights is not None and weights.numel() != base_config.num_hidden_layers + 1:
        conflicts.append(ConfigConflict(
            "num_hidden_layers", base_config.num_hidden_layers, weights.numel() - 1,
            f"the base model has {base_config.num_hidden_layers + 1} hidden states, the Featurizer weighs "
            f"{weights.numel()}: a different upstream than the head was trained on"))
    for key in ("Downstream.projector.weight", "Downstream.model.linear.weight", "Downstream.connector.weight"):
        head_input = names.get(key)
        if head_input is not None and head_input.shape[-1] != base_config.hidden_size:
            conflicts.append(ConfigConflict(
                "hidden_size", base_config.hidden_size, int(head_input.shape[-1]),
                f"{key} takes {head_input.shape[-1]} features, the base model gives {base_config.hidden_size}"))
    return conflicts


# -- which clips a head can be compared on ------------------------------------------------------


