"""What the wav2vec 2.0 family of upstreams share: reading their original checkpoints, the rules
from fairseq / unilm names to transformers', the config from the checkpoint's own cfg, and the two
sides of a comparison.

The families (one folder each: wav2vec2, hubert, data2vec_audio, wavlm, unispeech_sat,
distilhubert) subclass `UpstreamRecipe` with their transformers class and their own rules. A
checkpoint is recognised by its layout (`naming`), and its family by what the file says of itself
— fairseq's model `_name` or `--arch`, the WavLM config's flags — never by its file name:
UniSpeech-SAT is a Microsoft WavLM-class checkpoint with `relative_position_embedding` off.

Layouts (the MANIFEST of the shared upstream fixtures describes each):
- `microsoft`: `{"cfg": WavLMConfig fields, "model": state dict}` (unilm WavLM, UniSpeech-SAT);
- `fairseq_cfg`: fairseq's checkpoint, `cfg` a pickled omegaconf DictConfig read as plain data;
- `fairseq_args`: an older fairseq checkpoint, `args` an argparse.Namespace;
- `s3prl`: S3PRL's converted upstream, `{"task_cfg", "model_cfg", "model_weight"}`;
- `s3prl_distiller`: S3PRL's DistilHuBERT checkpoint, `{"Distiller", "Config", ...}`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import BadInput
from ..planning.plan import ConfigConflict
from ..planning.recipe import (
    CardDetails,
    ConfigChoice,
    Detection,
    Recipe,
    SourceTensor,
    check_flag,
    check_layer_count,
    check_whole_number,
    hub_model_id,
    read_config_json,
    shown,
)
from ..planning.rules import Rule, RuleSet, Stage, drop, rename
from ..planning.target_cache import ConfigSpec
from ..proof.audio import MODEL_RATE
from ..reference.upstream_settings import (
    ACTIVATIONS,
    CHOICE_SETTINGS,
    CONV_SETTINGS,
    DISTILLER_DEFAULTS,
    EXTRACTOR_MODES,
    FAIRSEQ_FAMILIES,
    FLAG_SETTINGS,
    HUBERT_DEFAULTS,
    TASK_NORMALIZE_DEFAULT,
    WAV2VEC2_DEFAULTS,
    WAVLM_DEFAULTS,
    WHOLE_NUMBER_SETTINGS,
    checkpoint_format,
    parse_conv_feature_layers,
)
from ..storage.checkpoint import Checkpoint, StoredTensor, as_torch, iter_tensors
from ._clips import CNN_NEEDS, refuse_short_clip, upstream_frames

if TYPE_CHECKING:  # the models run (torch) only where a comparison does: see _upstream_sides.py
    from ..proof.audio import Clip

LAYOUT_TEXT = {
    "microsoft": "a Microsoft (cfg, model) checkpoint",
    "fairseq_cfg": "a fairseq checkpoint (omegaconf cfg)",
    "fairseq_args": "a fairseq checkpoint (argparse args)",
    "s3prl": "S3PRL's converted upstream file",
    "s3prl_distiller": "S3PRL's DistilHuBERT checkpoint",
}
CONTAINER = {"microsoft": "model", "fairseq_cfg": "model", "fairseq_args": "model", "s3prl": "model_weight",
             "s3prl_distiller": "Distiller"}
DEFAULTS = {"wavlm": WAVLM_DEFAULTS, "unispeech_sat": WAVLM_DEFAULTS, "wav2vec2": WAV2VEC2_DEFAULTS,
            "hubert": HUBERT_DEFAULTS, "data2vec": WAV2VEC2_DEFAULTS, "distiller": DISTILLER_DEFAULTS}


@dataclass(frozen=True)
class UpstreamFile:
    """What an upstream checkpoint says of itself."""

    naming: str  # the layout (see the module docstring)
    family: str  # wavlm, unispeech_sat, wav2vec2, hubert, data2vec or distiller
    model_cfg: Mapping
    task_cfg: Mapping

    @property
    def container(self) -> str:
        return CONTAINER[self.naming]

    @property
    def where(self) -> str:
        """Where in the file its settings are, as a message names them: "cfg", "args"..."""
        return {"microsoft": "cfg", "fairseq_cfg": "cfg", "fairseq_args": "args", "s3prl": "model_cfg",
                "s3prl_distiller": "Config.distiller"}[self.naming]

    @property
    def conv_layers(self) -> str:
        """The setting that lists the conv feature extractor's layers (the distiller's has its own name)."""
        return "extractor_conv_feature_layers" if self.family == "distiller" else "conv_feature_layers"

    def settings(self) -> dict:
        """The model's options: the file's, over the original code's defaults for those it omits
        (S3PRL's merge_with_parent)."""
        defaults = DEFAULTS[self.family]
        return {name: self.model_cfg.get(name, default) for name, default in defaults.items()}

    @property
    def normalize(self) -> bool:
        """Whether the original normalises each waveform (F.layer_norm) before the model."""
        if self.family in ("wavlm", "unispeech_sat"):
            return bool(self.model_cfg.get("normalize", WAVLM_DEFAULTS["normalize"]))
        if self.family == "distiller":
            return False
        return bool(self.task_cfg.get("normalize", TASK_NORMALIZE_DEFAULT))

    def check(self, path: Path, tensors: int) -> None:
        """Refuse (BadInput, naming the setting and its value) settings no model can be built from:
        the wrong kind of value ("twelve", NaN, None, 2.7 layers), an unknown activation, zero
        heads, or more layers than the checkpoint has tensors (`tensors`: a layer without weights
        cannot exist). Checked before anything is built from them, the target model or the original."""
        settings = self.settings()
        where = f"{path}: {self.where}"
        for name, value in settings.items():
            if name in WHOLE_NUMBER_SETTINGS:
                check_whole_number(value, f"{where} {name}", WHOLE_NUMBER_SETTINGS[name])
            elif name in FLAG_SETTINGS:
                check_flag(value, f"{where} {name}")
            elif name in CHOICE_SETTINGS and value not in CHOICE_SETTINGS[name]:
                raise BadInput(f"{where} {name} is {shown(value)}; the original code knows "
                               f"{', '.join(CHOICE_SETTINGS[name])}")
            elif name in CONV_SETTINGS:
                try:
                    conv = parse_conv_feature_layers(value, name)
                except BadInput as refusal:
                    raise BadInput(f"{where} {refusal}") from None
                check_layer_count(len(conv), f"{where} {name}", tensors, listed=True)
        if self.family not in ("wavlm", "unispeech_sat", "distiller"):
            check_flag(self.task_cfg.get("normalize", TASK_NORMALIZE_DEFAULT), f"{path}: task normalize")
        embed, heads = settings["encoder_embed_dim"], settings["encoder_attention_heads"]
        if embed % heads:
            raise BadInput(f"{where} encoder_embed_dim {embed} is not divisible by encoder_attention_heads {heads}")
        for name in ("encoder_layers", "pos_conv_depth"):
            if name in settings:
                check_layer_count(settings[name], f"{where} {name}", tensors)


def read_upstream(content: Any) -> UpstreamFile | None:
    """The upstream a checkpoint holds, or None when it is no upstream checkpoint Speechport knows."""
    try:
        naming = checkpoint_format(content)
    except BadInput:
        return None
    if naming == "microsoft":
        cfg = dict(content["cfg"])
        relative = cfg.get("relative_position_embedding", WAVLM_DEFAULTS["relative_position_embedding"])
        return UpstreamFile(naming, "wavlm" if relative else "unispeech_sat", cfg, cfg)
    if naming == "s3prl_distiller":
        config = content["Config"]
        section = config.get("distiller") if isinstance(config, Mapping) else None
        if not isinstance(section, Mapping):
            return None
        return UpstreamFile(naming, "distiller", dict(section), dict(config.get("audio") or {}))
    if naming == "s3prl":
        model_cfg, task_cfg = content["model_cfg"], content["task_cfg"]
        name = model_cfg.get("_name") if isinstance(model_cfg, Mapping) else None
    elif naming == "fairseq_cfg":
        model_cfg, task_cfg = content["cfg"]["model"], content["cfg"].get("task") or {}
        name = model_cfg.get("_name")
    else:
        model_cfg = task_cfg = vars(content["args"])
        name = model_cfg.get("arch")
    family = FAIRSEQ_FAMILIES.get(str(name))
    if family is None or not isinstance(model_cfg, Mapping):
        return None
    return UpstreamFile(naming, family, dict(model_cfg), dict(task_cfg or {}))


# -- rules: original (fairseq / unilm) names -> transformers names ------------------------------------
# As transformers' convert_{wav2vec2,hubert,wavlm,unispeech_sat,data2vec_audio}_original_* scripts map
# them (their MAPPING tables and load_conv_layer), written as whole-key patterns; the positional conv's
# weight norm is stored by transformers as parametrizations (original0 = g, original1 = v).

_LAYER = r"^encoder\.layers\.(\d+)\."
_WB = r"(weight|bias)$"
FEATURE_RULES = (
    rename(r"^feature_extractor\.conv_layers\.(\d+)\.0\." + _WB, r"feature_extractor.conv_layers.\1.conv.\2",
           "conv layer -> conv_layers.N.conv"),
    rename(r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\." + _WB, r"feature_extractor.conv_layers.\1.layer_norm.\2",
           "conv LayerNorm (layer_norm mode) -> conv_layers.N.layer_norm"),
    rename(r"^feature_extractor\.conv_layers\.(\d+)\.2\." + _WB, r"feature_extractor.conv_layers.\1.layer_norm.\2",
           "conv GroupNorm (default mode, first layer) -> conv_layers.0.layer_norm"),
    rename(r"^layer_norm\." + _WB, r"feature_projection.layer_norm.\1", "feature LayerNorm -> feature_projection.layer_norm"),
    rename(r"^post_extract_proj\." + _WB, r"feature_projection.projection.\1", "post_extract_proj -> feature_projection.projection"),
)
POSITIONAL_RULES = (
    rename(r"^encoder\.pos_conv\.0\.bias$", r"encoder.pos_conv_embed.conv.bias", "pos_conv -> pos_conv_embed.conv"),
    rename(r"^encoder\.pos_conv\.0\.weight_g$", r"encoder.pos_conv_embed.conv.parametrizations.weight.original0",
           "pos_conv weight_g -> weight-norm original0"),
    rename(r"^encoder\.pos_conv\.0\.weight_v$", r"encoder.pos_conv_embed.conv.parametrizations.weight.original1",
           "pos_conv weight_v -> weight-norm original1"),
)
STACKED_POSITIONAL_RULES = (  # data2vec-audio: pos_conv.N = (conv, SamePad, LayerNorm without affine, GELU)
    rename(r"^encoder\.pos_conv\.(\d+)\.0\." + _WB, r"encoder.pos_conv_embed.layers.\1.conv.\2",
           "stacked pos_conv.N -> pos_conv_embed.layers.N.conv"),
)
LAYER_RULES = (
    rename(_LAYER + r"self_attn\.(q|k|v|out)_proj\." + _WB, r"encoder.layers.\1.attention.\2_proj.\3",
           "self_attn -> attention"),
    rename(_LAYER + r"self_attn_layer_norm\." + _WB, r"encoder.layers.\1.layer_norm.\2", "self_attn_layer_norm -> layer_norm"),
    rename(_LAYER + r"fc1\." + _WB, r"encoder.layers.\1.feed_forward.intermediate_dense.\2", "fc1 -> feed_forward.intermediate_dense"),
    rename(_LAYER + r"fc2\." + _WB, r"encoder.layers.\1.feed_forward.output_dense.\2", "fc2 -> feed_forward.output_dense"),
    rename(_LAYER + r"final_layer_norm\." + _WB, r"encoder.layers.\1.final_layer_norm.\2", "final_layer_norm (same name)"),
    rename(r"^encoder\.layer_norm\." + _WB, r"encoder.layer_norm.\1", "encoder.layer_norm (same name)"),
)
GATED_ATTENTION_RULES = (  # WavLM: the gated relative position bias
    rename(_LAYER + r"self_attn\.relative_attention_bias\.weight$", r"encoder.layers.\1.attention.rel_attn_embed.weight",
           "relative_attention_bias -> attention.rel_attn_embed"),
    rename(_LAYER + r"self_attn\.grep_linear\." + _WB, r"encoder.layers.\1.attention.gru_rel_pos_linear.\2",
           "grep_linear -> attention.gru_rel_pos_linear"),
    rename(_LAYER + r"self_attn\.grep_a$", r"encoder.layers.\1.attention.gru_rel_pos_const", "grep_a -> attention.gru_rel_pos_const"),
)
MASK_EMBEDDING = rename(r"^mask_emb$", "masked_spec_embed", "mask_emb -> masked_spec_embed")
MASK_EMBEDDING_DROPPED = drop(r"^mask_emb$", "pretraining only: the mask embedding (the target config has no "
                                             "masked_spec_embed: its mask_time_prob and mask_feature_prob are 0)")
PRETRAINING_DROPS = (
    drop(r"^quantizer\.", "pretraining only: quantizer"),
    drop(r"^project_q\.", "pretraining only: quantized target projection (project_q)"),
    drop(r"^final_proj\.", "pretraining only: final projection (final_proj)"),
    drop(r"^target_glu\.", "pretraining only: target GLU"),
    drop(r"^label_embs_concat$", "pretraining only: HuBERT's cluster label embeddings"),
    drop(r"^_ema\.", "pretraining only: data2vec's EMA teacher (not the student's weights)"),
    drop(r"^output_layer\.", "DistilHuBERT's prediction heads (transformers' HubertModel has none)"),
)


class UpstreamRecipe(Recipe):
    """One wav2vec 2.0-family upstream checkpoint -> its transformers base model."""

    family: ClassVar[str]  # as `read_upstream` names it
    target_name: ClassVar[str]  # the transformers class, e.g. "WavLMModel"
    config_name: ClassVar[str]  # its config class, e.g. "WavLMConfig"
    model_type: ClassVar[str]
    family_rules: ClassVar[tuple[Rule, ...]] = ()  # beyond the shared ones
    positional_rules: ClassVar[tuple[Rule, ...]] = POSITIONAL_RULES
    original_backends = ("reference", "s3prl")

    def __init__(self, checkpoint: Checkpoint, detection: Detection, base_model: Path | None = None):
        super().__init__(checkpoint, detection, base_model)
        found = read_upstream(checkpoint.content)
        if found is None:
            raise BadInput(f"{checkpoint.path}: not an upstream checkpoint of a known layout")
        self.file = found
        found.check(checkpoint.path, sum(1 for _ in iter_tensors(self.state())))

    # -- recognising ------------------------------------------------------------------------
    @classmethod
    def detect(cls, checkpoint: Checkpoint) -> Detection | None:
        found = read_upstream(checkpoint.content)
        if found is None or found.family != cls.family:
            return None
        return Detection(cls, found.naming, "encoder", 20.0,
                         f"{LAYOUT_TEXT[found.naming]} holding a {cls.title.split(' upstream')[0]} upstream")

    @classmethod
    def load_libraries(cls) -> None:
        import transformers

        getattr(transformers, cls.target_name)

    def state(self) -> Mapping:
        return self.checkpoint.content[self.file.container]

    def source_tensors(self) -> dict[str, SourceTensor]:
        return {name: SourceTensor(tensor, self.checkpoint) for name, tensor in iter_tensors(self.state())}

    def other_entries(self) -> dict[str, str]:
        reasons = {"cfg": "the training config (read for the config)", "args": "the training arguments (read for the config)",
                   "model_cfg": "the model's config (read for the config)", "task_cfg": "the task's config (read for the config)",
                   "Config": "the distiller's config (read for the config)"}
        return {str(key): reasons.get(key, "training state, not the model") for key in self.checkpoint.content
                if key != self.file.container}

    def inexpressible(self, config=None) -> dict[str, str]:
        return {}

    def rules(self, config=None) -> RuleSet:
        masked = config is None or getattr(config, "mask_time_prob", 0) > 0 or getattr(config, "mask_feature_prob", 0) > 0
        stage = (*FEATURE_RULES, *self.positional_rules, *LAYER_RULES, *self.family_rules,
                 MASK_EMBEDDING if masked else MASK_EMBEDDING_DROPPED, *PRETRAINING_DROPS)
        return RuleSet([Stage(f"{self.name} -> transformers", stage)])

    # -- config -------------------------------------------------------------------------------
    def config_values(self, names: Mapping[str, StoredTensor]) -> dict[str, tuple[Any, str]]:
        """transformers config fields from the checkpoint's own options, each with its evidence."""
        s = self.file.settings()  # checked when the recipe opened the file (`UpstreamFile.check`)
        where = self.file.where
        conv = parse_conv_feature_layers(s[self.file.conv_layers], self.file.conv_layers)
        activation = s["activation_fn"]
        values: dict[str, tuple[Any, str]] = {
            "hidden_size": (s["encoder_embed_dim"], f"{where} encoder_embed_dim"),
            "num_hidden_layers": (s["encoder_layers"], f"{where} encoder_layers"),
            "num_attention_heads": (s["encoder_attention_heads"], f"{where} encoder_attention_heads"),
            "intermediate_size": (s["encoder_ffn_embed_dim"], f"{where} encoder_ffn_embed_dim"),
            "hidden_act": (ACTIVATIONS[activation], f"{where} activation_fn {activation!r}"),
            "conv_dim": ([c for c, _, _ in conv], f"{where} {self.file.conv_layers}"),
            "conv_kernel": ([k for _, k, _ in conv], f"{where} {self.file.conv_layers}"),
            "conv_stride": ([t for _, _, t in conv], f"{where} {self.file.conv_layers}"),
            "num_feat_extract_layers": (len(conv), f"{where} {self.file.conv_layers}"),
            "conv_bias": (bool(s.get("conv_bias", False)), f"{where} conv_bias"),
            "feat_extract_norm": (EXTRACTOR_MODES[s["extractor_mode"]], f"{where} extractor_mode {s['extractor_mode']!r}"),
            "do_stable_layer_norm": (bool(s["layer_norm_first"]), f"{where} layer_norm_first (pre-LN layers)"),
            "num_conv_pos_embeddings": (s["conv_pos"], f"{where} conv_pos"),
            "num_conv_pos_embedding_groups": (s["conv_pos_groups"], f"{where} conv_pos_groups"),
            "layer_norm_eps": (1e-5, "every LayerNorm of the original uses eps 1e-5"),
        }
        for field in ("hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "layerdrop",
                      "final_dropout"):
            values[field] = (0.0, "no dropout at inference")
        if "mask_emb" not in self.state():
            values["mask_time_prob"] = (0.0, "no mask_emb in the checkpoint")
        values.update(self.family_config_values(s, names))
        return {field: fact for field, fact in values.items() if fact is not None}  # None: no such field

    def family_config_values(self, settings: Mapping, names: Mapping[str, StoredTensor]) -> dict[str, tuple[Any, str] | None]:
        """The family's own fields, or None for a shared one its config class does not have."""
        return {}

    def choose_config(self, names, *, config_path=None, labels=None) -> ConfigChoice:
        if labels:
            raise BadInput(f"labels apply to classification heads; a {self.name} upstream has none")
        facts = self.config_values(names)
        if config_path is None:
            values = {field: value for field, (value, _) in facts.items()}
            config = self.build_config(ConfigSpec(self.config_name, {**values, "architectures": [self.target_name]},
                                                  then={"dtype": _dominant_dtype(names)}), tensors=len(names))
            inferred = {field: f"{value!r}: {evidence}" for field, (value, evidence) in facts.items()}
            return ConfigChoice(config, "inferred", inferred=inferred, notes=self.config_notes())
        data = read_config_json(config_path, (self.model_type,))
        spec = ConfigSpec(self.config_name, data, build="from_dict", then={"architectures": [self.target_name]},
                          source=str(config_path))
        config = self.build_config(spec, tensors=len(names))
        notes = self.config_notes()
        if "mask_emb" not in self.state() and (config.mask_time_prob > 0 or getattr(config, "mask_feature_prob", 0) > 0):
            # The config asks for masked_spec_embed (SpecAugment during training), which nothing in the
            # checkpoint fills; an unfilled parameter would be initialised at random on loading.
            config = self.build_config(replace(spec, then={**spec.then, "mask_time_prob": 0.0, "mask_feature_prob": 0.0}),
                                       tensors=len(names))
            notes.append(f"{config_path}: mask_time_prob and mask_feature_prob set to 0 in the converted config: the "
                         "checkpoint has no mask embedding to fill the model's masked_spec_embed (used only to train)")
        ignored = {"hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "layerdrop",
                   "final_dropout", "mask_time_prob", "layer_norm_eps"}
        conflicts = [
            ConfigConflict(field, getattr(config, field, None), value, evidence)
            for field, (value, evidence) in facts.items()
            if field not in ignored and _differs(getattr(config, field, None), value)
        ]
        return ConfigChoice(config, "file", path=str(config_path), conflicts=conflicts, notes=notes)

    def target_extras(self) -> dict[str, Any]:
        return {"normalize": self.file.normalize}  # the feature extractor's do_normalize

    def config_notes(self) -> list[str]:
        if self.file.normalize:
            return ["the original normalises each waveform with F.layer_norm (eps 1e-5); transformers' feature "
                    "extractor uses eps 1e-7, a difference of about 5e-6 / variance in its input"]
        return []

    def target_class(self, config):
        import transformers

        return getattr(transformers, self.target_name)

    def preprocessor_config(self, config) -> dict[str, Any]:
        from transformers import Wav2Vec2FeatureExtractor

        # transformers' convention for these models: an attention mask for layer-norm feature
        # extractors only (group norm runs over the padded length, so a mask would not help).
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=MODEL_RATE, padding_value=0.0, do_normalize=self.file.normalize,
            return_attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer",  # data2vec: always layer
        )
        return extractor.to_dict()

    def card_details(self, config) -> CardDetails:
        return CardDetails(
            pipeline_tag="feature-extraction",
            base_model=hub_model_id(getattr(config, "_name_or_path", "") or ""),
            tags=(self.model_type, self.name, "audio", "speechport"),
            description=(f"A {self.title.split(' upstream')[0]} upstream converted from "
                         f"{LAYOUT_TEXT[self.file.naming]} to transformers' `{self.target_name}`. It outputs "
                         "frame-level speech representations (one frame per 20 ms)."),
        )

    # -- proving --------------------------------------------------------------------------------
    @classmethod
    def converted_architectures(cls) -> tuple[str, ...]:
        return (cls.target_name,)

    def original_names(self) -> dict[str, StoredTensor]:
        return dict(iter_tensors(self.state()))

    def original_stage(self, config=None) -> Stage:
        return self.rules(config).stages[0]

    def original_side(self, *, weights=None, backend="reference"):
        from ._upstream_sides import UpstreamOriginalSide

        model = self.original_model(weights=weights, backend=backend)
        return UpstreamOriginalSide(model, backend, self.file.normalize, int(self.file.settings()["encoder_layers"]),
                                    skip_first=self.file.family == "distiller")

    def original_model(self, *, weights=None, backend="reference"):
        """The original upstream, `waveforms -> UpstreamOutput`: Speechport's reference, or S3PRL's
        own modules (`backend="s3prl"`), on `weights` (original names; default `original_names()`)."""
        import torch

        self.check_backend(backend)
        weights = weights if weights is not None else self.original_names()
        state = _nested(as_torch(weights, torch.float32))
        content = {**{k: v for k, v in self.checkpoint.content.items() if k != self.file.container},
                   self.file.container: state}
        if backend == "s3prl":
            from ._upstream_s3prl import s3prl_upstream_from_checkpoint

            return s3prl_upstream_from_checkpoint(content, family=self.file.family)
        from ..reference.upstreams import reference_from_checkpoint

        return reference_from_checkpoint(content, family=self.file.family, prediction_heads=True)

    def converted_side(self, folder):
        from ._upstream_sides import TransformersUpstreamSide

        return TransformersUpstreamSide(folder, normalize=self.file.normalize,
                                        skip_first=self.file.family == "distiller")

    def check_clip(self, clip: Clip, config=None) -> None:
        conv = parse_conv_feature_layers(self.file.settings()[self.file.conv_layers], self.file.conv_layers)
        kernels, strides = [k for _, k, _ in conv], [s for _, _, s in conv]
        refuse_short_clip(clip, lambda samples: upstream_frames(samples, kernels, strides), 1, CNN_NEEDS)


def _differs(config_value, value) -> bool:
    if isinstance(value, float) and isinstance(config_value, (int, float)):
        return not math.isclose(config_value, value, rel_tol=1e-9)
    if isinstance(value, list):
        return list(config_value or []) != value
    return config_value != value


def _dominant_dtype(state: Mapping[str, StoredTensor]) -> str:
    sizes: dict[str, int] = {}
    for tensor in state.values():
        if isinstance(tensor, StoredTensor) and tensor.is_floating_point():
            sizes[tensor.dtype.name] = sizes.get(tensor.dtype.name, 0) + tensor.numel()
    return max(sizes, key=sizes.get) if sizes else "float32"


def _nested(flat: Mapping[str, Any]) -> dict:
    """Names like "_ema.encoder.x" back into the nested dicts the checkpoint held them in."""
    nested: dict = {}
    for name, value in flat.items():
        if name.startswith("_ema."):
            nested.setdefault("_ema", {})[name.removeprefix("_ema.")] = value
        else:
            nested[name] = value
    return nested

