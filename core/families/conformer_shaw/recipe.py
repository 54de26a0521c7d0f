"""seamless_communication "conformer_shaw" (w2v-BERT 2.0) -> transformers `Wav2Vec2BertModel`.

Two source layouts are recognised: fairseq2 names (what fairseq2 / seamless_communication save,
`{"model": state_dict}`) and fairseq1 names (the published `conformer_shaw.pt`), which are first
renamed exactly as seamless_communication's `convert_conformer_shaw_checkpoint` does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ...errors import BadInput
from ...planning.plan import ConfigConflict
from ...planning.recipe import CardDetails, ConfigChoice, Detection, Recipe, SourceTensor, read_config_json
from ...planning.rules import RuleSet, Stage, drop, rename
from ...planning.target_cache import ConfigSpec
from ...planning.wrapper_prefix import unwrapped
from ...storage.checkpoint import Checkpoint, StoredTensor, as_torch

if TYPE_CHECKING:  # the models run (torch) only where a comparison does: see sides.py
    from ...proof.audio import Clip
    from ...proof.comparison import IllConditionedInput

# -- rules ----------------------------------------------------------------------------------

# seamless_communication models/conformer_shaw/loader.py, convert_conformer_shaw_checkpoint
# (commit 90e2b57): deletes these keys, then applies this key map with fairseq2 0.2's
# convert_fairseq_checkpoint (first matching regex rewrites the key; unmatched keys keep their name;
# `*.version` and `*.embed_positions._float_tensor` are deleted).
FAIRSEQ1_TO_FAIRSEQ2 = (
    drop(r"^mlm_proj\.", "deleted by seamless convert_conformer_shaw_checkpoint: not part of the fairseq2 model"),
    drop(r"^encoder\.layer_norm\.", "deleted by seamless convert_conformer_shaw_checkpoint: unused final encoder norm"),
    drop(r"^(encoder|decoder)\.version$", "deleted by fairseq2 convert_fairseq_checkpoint: fairseq1 bookkeeping"),
    drop(r"^(encoder|decoder)\.embed_positions\._float_tensor$", "deleted by fairseq2 convert_fairseq_checkpoint"),
    rename(r"^encoder\.layers\.([0-9]+)\.self_attn\.out_proj\.", r"encoder.layers.\1.self_attn.output_proj.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.self_attn\.rel_k_embedding\.", r"encoder.layers.\1.self_attn.sdpa.rel_k_embed.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.conv_module\.depthwise_conv\.", r"encoder.layers.\1.conv.depthwise_conv.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.conv_module\.layer_norm\.", r"encoder.layers.\1.conv_layer_norm.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.conv_module\.layer_norm2\.", r"encoder.layers.\1.conv.layer_norm.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.conv_module\.pointwise_conv1\.", r"encoder.layers.\1.conv.pointwise_conv1.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.conv_module\.pointwise_conv2\.", r"encoder.layers.\1.conv.pointwise_conv2.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.fc1\.", r"encoder.layers.\1.ffn.inner_proj.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.fc2\.", r"encoder.layers.\1.ffn.output_proj.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.ffn(1|2)\.layer_norm\.", r"encoder.layers.\1.ffn\2_layer_norm.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.ffn(1|2)\.w_1\.", r"encoder.layers.\1.ffn\2.inner_proj.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.ffn(1|2)\.w_2\.", r"encoder.layers.\1.ffn\2.output_proj.", "seamless key map"),
    rename(r"^encoder\.layers\.([0-9]+)\.final_layer_norm\.", r"encoder.layers.\1.layer_norm.", "seamless key map"),
    rename(r"^encoder\.embed_tokens\.", r"encoder_frontend.embed.", "seamless key map"),
    rename(r"^encoder\.pos_conv\.0\.", r"encoder_frontend.pos_encoder.conv.", "seamless key map"),
    rename(r"^feature_extractor\.conv_layers\.([0-9]+)\.0\.", r"encoder_frontend.feature_extractor.layers.\1.conv.", "seamless key map"),
    rename(r"^feature_extractor\.conv_layers\.([0-9]+)\.2\.1\.", r"encoder_frontend.feature_extractor.layers.\1.layer_norm.", "seamless key map"),
    rename(r"^feature_extractor\.conv_layers\.0\.2\.", r"encoder_frontend.feature_extractor.layers.0.group_norm.", "seamless key map"),
    rename(r"^layer_norm\.", r"encoder_frontend.post_extract_layer_norm.", "seamless key map"),
    rename(r"^post_extract_proj\.", r"encoder_frontend.model_dim_proj.", "seamless key map"),
    rename(r"^mask_emb", r"masker.temporal_mask_embed", "seamless key map"),
    rename(r"^quantizer\.vars", r"quantizer.entries", "seamless key map"),
    rename(r"^quantizer\.weight_proj\.", r"quantizer.entry_proj.", "seamless key map"),
    rename(r"^project_q\.", r"final_target_proj.", "seamless key map"),
)

_LAYER = r"^encoder\.layers\.(\d+)\."
_WB = r"(weight|bias)$"

# fairseq2 names -> transformers Wav2Vec2BertModel names. Each rename is one entry of
# `wav2vec_convert_list` in transformers' convert_wav2vec2_seamless_checkpoint.py (plus its by-hand
# `layer_norm` -> `final_layer_norm` case), written as whole-key patterns so that nothing is
# renamed by accident; the drops are its `keys_to_remove`.
FAIRSEQ2_TO_TRANSFORMERS = (
    rename(r"^encoder_frontend\.post_extract_layer_norm\." + _WB, r"feature_projection.layer_norm.\1", "post_extract_layer_norm -> feature_projection.layer_norm"),
    rename(r"^encoder_frontend\.model_dim_proj\." + _WB, r"feature_projection.projection.\1", "model_dim_proj -> feature_projection.projection"),
    rename(r"^masker\.temporal_mask_embed$", r"masked_spec_embed", "masker.temporal_mask_embed -> masked_spec_embed"),
    rename(_LAYER + r"ffn([12])_layer_norm\." + _WB, r"encoder.layers.\1.ffn\2_layer_norm.\3", "ffn{1,2}_layer_norm (same name)"),
    rename(_LAYER + r"ffn([12])\.inner_proj\." + _WB, r"encoder.layers.\1.ffn\2.intermediate_dense.\3", "inner_proj -> intermediate_dense"),
    rename(_LAYER + r"ffn([12])\.output_proj\." + _WB, r"encoder.layers.\1.ffn\2.output_dense.\3", "output_proj -> output_dense"),
    rename(_LAYER + r"self_attn_layer_norm\." + _WB, r"encoder.layers.\1.self_attn_layer_norm.\2", "self_attn_layer_norm (same name)"),
    rename(_LAYER + r"self_attn\.q_proj\." + _WB, r"encoder.layers.\1.self_attn.linear_q.\2", "self_attn.q_proj -> self_attn.linear_q"),
    rename(_LAYER + r"self_attn\.k_proj\." + _WB, r"encoder.layers.\1.self_attn.linear_k.\2", "self_attn.k_proj -> self_attn.linear_k"),
    rename(_LAYER + r"self_attn\.v_proj\." + _WB, r"encoder.layers.\1.self_attn.linear_v.\2", "self_attn.v_proj -> self_attn.linear_v"),
    rename(_LAYER + r"self_attn\.output_proj\." + _WB, r"encoder.layers.\1.self_attn.linear_out.\2", "self_attn.output_proj -> self_attn.linear_out"),
    rename(_LAYER + r"self_attn\.sdpa\.rel_k_embed\.weight$", r"encoder.layers.\1.self_attn.distance_embedding.weight", "self_attn.sdpa.rel_k_embed -> self_attn.distance_embedding"),
    rename(_LAYER + r"conv_layer_norm\." + _WB, r"encoder.layers.\1.conv_module.layer_norm.\2", "conv_layer_norm -> conv_module.layer_norm"),
    rename(_LAYER + r"conv\.pointwise_conv1\.weight$", r"encoder.layers.\1.conv_module.pointwise_conv1.weight", "conv.pointwise_conv1 -> conv_module.pointwise_conv1"),
    rename(_LAYER + r"conv\.depthwise_conv\.weight$", r"encoder.layers.\1.conv_module.depthwise_conv.weight", "conv.depthwise_conv -> conv_module.depthwise_conv"),
    rename(_LAYER + r"conv\.layer_norm\." + _WB, r"encoder.layers.\1.conv_module.depthwise_layer_norm.\2", "conv.layer_norm -> conv_module.depthwise_layer_norm"),
    rename(_LAYER + r"conv\.pointwise_conv2\.weight$", r"encoder.layers.\1.conv_module.pointwise_conv2.weight", "conv.pointwise_conv2 -> conv_module.pointwise_conv2"),
    rename(_LAYER + r"layer_norm\." + _WB, r"encoder.layers.\1.final_layer_norm.\2", "block layer_norm -> final_layer_norm"),
    drop(r"^quantizer\.", "pretraining only: quantizer"),
    drop(r"^final_proj\.", "pretraining only: contrastive projection (final_proj)"),
    drop(r"^final_target_proj\.", "pretraining only: target projection (final_target_proj)"),
)

_STAGE_FS1 = Stage("fairseq1 -> fairseq2", FAIRSEQ1_TO_FAIRSEQ2, keep_unmatched=True)
_STAGE_FS2 = Stage("fairseq2 -> transformers", FAIRSEQ2_TO_TRANSFORMERS)

# Facts of the architecture that no tensor shape shows (fairseq2 0.2.1 / seamless builder):
# SiLU ("swish") activations, LayerNorm eps 1e-5, Shaw relative keys clamped to [-64, 8].
_ARCHITECTURE_FACTS = {
    "hidden_act": ("swish", "conformer_shaw uses SiLU (swish) in its FFNs and conv module"),
    "layer_norm_eps": (1e-5, "every fairseq2 LayerNorm uses eps 1e-5"),
    "position_embeddings_type": ("relative_key", "conformer_shaw uses Shaw relative-position keys"),
    "apply_spec_augment": (False, "no SpecAugment at inference"),
    "add_adapter": (False, "conformer_shaw has no adapter"),
    "use_intermediate_ffn_before_adapter": (False, "conformer_shaw has no adapter"),
    "hidden_dropout": (0.0, "fairseq2 dropout_p is 0"),
    "activation_dropout": (0.0, "fairseq2 dropout_p is 0"),
    "attention_dropout": (0.0, "fairseq2 attn_dropout_p is 0"),
    "feat_proj_dropout": (0.0, "fairseq2 dropout_p is 0"),
    "layerdrop": (0.0, "fairseq2 layer_drop_p is 0"),
}
_DEFAULT_RIGHT_REL_POS = 8  # seamless conformer_shaw builder: max_right_rel_pos=8, max_left_rel_pos=64
_FS2_REL_KEY = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.sdpa\.rel_k_embed\.weight$")


class ConformerShawRecipe(Recipe):
    name = "conformer_shaw"
    title = "seamless conformer_shaw / w2v-BERT 2.0 (fairseq2 or fairseq1 names) -> Wav2Vec2BertModel"
    original_backends = ("reference", "fairseq2")

    # -- detection ------------------------------------------------------------------------
    @classmethod
    def detect(cls, checkpoint: Checkpoint) -> Detection | None:
        state = unwrapped(_state_dict(checkpoint))
        if not state:
            return None
        keys = set(state)
        fingerprints = {
            "fairseq2": ("encoder_frontend.model_dim_proj.weight", ".self_attn.sdpa.rel_k_embed.weight", ".conv.depthwise_conv.weight", ".ffn1.inner_proj.weight"),
            "fairseq1": ("post_extract_proj.weight", ".self_attn.rel_k_embedding.weight", ".conv_module.depthwise_conv.weight", ".ffn1.w_1.weight"),
        }
        best = None
        for naming, (frontend, shaw, conv, ffn) in fingerprints.items():
            checks = [frontend in keys, *(any(k.endswith(s) for k in keys) for s in (shaw, conv, ffn))]
            score = sum(checks)
            # The Shaw relative-key table and the conv module are what make it conformer_shaw.
            if checks[1] and checks[2] and (best is None or score > best.score):
                best = Detection(cls, naming, "encoder", float(score),
                                 f"{naming} conformer_shaw keys (Shaw relative keys, conformer conv module)")
        return best

    # -- sources and rules ----------------------------------------------------------------
    def source_tensors(self) -> dict[str, SourceTensor]:
        return {key: SourceTensor(tensor, self.checkpoint) for key, tensor in _state_dict(self.checkpoint).items()}

    def other_entries(self) -> dict[str, str]:
        container = _container(self.checkpoint)
        if container is not None:
            return {str(k): "checkpoint metadata, not model weights" for k in self.checkpoint.content if k != container}
        return {}

    def naming_stages(self) -> list[Stage]:
        """The stages that bring the checkpoint's names to fairseq2's (none for fairseq2 names)."""
        return [_STAGE_FS1] if self.naming == "fairseq1" else []

    def rules(self, config=None) -> RuleSet:
        return RuleSet([*self.naming_stages(), _STAGE_FS2])

    def fairseq2_state_dict(self) -> dict[str, StoredTensor]:
        """The weights under fairseq2 names, as the original model consumes them (nothing read yet):
        a training wrapper's prefix stripped, other names renamed (fairseq1's as seamless does)."""
        state = unwrapped(_state_dict(self.checkpoint))
        for stage in self.naming_stages():
            state = stage.rename_all(state)
        return state

    def original_names(self) -> dict[str, StoredTensor]:
        return self.fairseq2_state_dict()

    def original_stage(self, config=None) -> Stage:
        return _STAGE_FS2

    # -- config ---------------------------------------------------------------------------
    def choose_config(self, names, *, config_path=None, labels=None) -> ConfigChoice:
        if labels:
            raise BadInput("labels apply to classification heads; a conformer_shaw encoder has none")
        state = names
        in_file = {id(source.tensor): key for key, source in self.source_tensors().items()}
        facts = _shape_facts(state, lambda key: f"{self.checkpoint.path}: {in_file.get(id(state[key]), key)}")
        inferred_values = {field: value for field, (value, _) in facts.items()}
        if config_path is None:
            values = {**{f: v for f, (v, _) in _ARCHITECTURE_FACTS.items()}, **inferred_values}
            config = self.build_config(ConfigSpec(
                "Wav2Vec2BertConfig", {**values, "architectures": ["Wav2Vec2BertModel"]},
                then={"dtype": _dominant_dtype(state)}), tensors=len(state))
            inferred = {f: f"{v!r}: {e}" for f, (v, e) in {**_ARCHITECTURE_FACTS, **facts}.items()}
            return ConfigChoice(config, "inferred", inferred=inferred)
        data = read_config_json(config_path, ("wav2vec2-bert",))
        config = self.build_config(ConfigSpec("Wav2Vec2BertConfig", data, build="from_dict",
                                              then={"architectures": ["Wav2Vec2BertModel"]}, source=str(config_path)),
                                   tensors=len(state))
        conflicts = [
            ConfigConflict(field, getattr(config, field, None), value, evidence)
            for field, (value, evidence) in facts.items()
            if getattr(config, field, None) != value
        ]
        conflicts += _semantic_conflicts(config)
        return ConfigChoice(config, "file", path=str(config_path), conflicts=conflicts)

    @classmethod
    def load_libraries(cls) -> None:
        from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel  # noqa: F401

    def target_class(self, config):
        from transformers import Wav2Vec2BertModel

        return Wav2Vec2BertModel

    def preprocessor_config(self, config) -> dict[str, Any]:
        from transformers import SeamlessM4TFeatureExtractor

        # What transformers' conversion script saves: padding with 1 matches fairseq2's
        # Collater(pad_value=1); the processor pairs it with a tokenizer for CTC fine-tuning.
        extractor = SeamlessM4TFeatureExtractor(padding_value=1)
        data = extractor.to_dict()
        data["processor_class"] = "Wav2Vec2BertProcessor"
        return data

    def card_details(self, config) -> CardDetails:
        published = config.hidden_size == 1024 and config.num_hidden_layers == 24
        return CardDetails(
            pipeline_tag="feature-extraction",
            # facebook/conformer-shaw hosts the published 600M conformer_shaw.pt; another size has
            # no Hub id to name (the card's text names its file).
            base_model="facebook/conformer-shaw" if published else None,
            tags=("wav2vec2-bert", "w2v-bert-2.0", "conformer_shaw", "audio", "speechport"),
            description=(
                "A w2v-BERT 2.0 (seamless `conformer_shaw`) speech encoder converted to transformers' "
                "`Wav2Vec2BertModel`. It outputs frame-level speech representations (one frame per 20 ms)."
            ),
        )

    # -- verification ---------------------------------------------------------------------
    @classmethod
    def converted_architectures(cls) -> tuple[str, ...]:
        return ("Wav2Vec2BertModel",)

    def original_side(self, *, weights=None, backend="reference"):
        import torch

        self.check_backend(backend)
        if backend == "fairseq2":  # the genuine library reads the file itself, in its witness interpreter
            from .fairseq2_backend import Fairseq2WitnessSide

            return Fairseq2WitnessSide(self.checkpoint.path)
        # The original runs in float32 whatever the file stores: the comparison is about the values.
        state = as_torch(weights if weights is not None else self.fairseq2_state_dict(), torch.float32)
        from .sides import ReferenceSide

        return ReferenceSide(state)

    def converted_side(self, folder):
        from .sides import TransformersEncoderSide

        return TransformersEncoderSide(folder)

    def check_clip(self, clip: Clip, config=None) -> IllConditionedInput | None:
        from .sides import check_fbank_clip

        return check_fbank_clip(clip)


# -- helpers --------------------------------------------------------------------------------


# Where trainers nest the state dict: fairseq/fairseq2 under "model", PyTorch Lightning under "state_dict".
_CONTAINERS = ("model", "state_dict")


def _container(checkpoint: Checkpoint) -> str | None:
    content = checkpoint.content
    if not isinstance(content, dict):
        return None
    return next((key for key in _CONTAINERS if isinstance(content.get(key), dict)), None)


def _state_dict(checkpoint: Checkpoint) -> dict[str, StoredTensor]:
    """fairseq/fairseq2 save `{"model": state_dict, ...}`, Lightning `{"state_dict": ...}`; bare state
    dicts and safetensors are flat."""
    content = checkpoint.content
    container = _container(checkpoint)
    if container is not None:
        content = content[container]
    if not isinstance(content, dict):
        return {}
    return {str(k): v for k, v in content.items() if isinstance(v, StoredTensor)}


def _dominant_dtype(state: dict[str, StoredTensor]) -> str:
    sizes: dict[str, int] = {}
    for tensor in state.values():
        if tensor.is_floating_point():
            sizes[tensor.dtype.name] = sizes.get(tensor.dtype.name, 0) + tensor.numel()
    return max(sizes, key=sizes.get) if sizes else "float32"


# The tensors the config is read from, by what they are (fairseq2 names), and how many dimensions each has.
_CONFIG_TENSOR_DIMS = {"model_dim_proj": 2, "ffn1.inner_proj": 2, "depthwise_conv": 3, "rel_k_embed": 2}


def _shape_facts(state: dict[str, StoredTensor], in_file=lambda key: key) -> dict[str, tuple[Any, str]]:
    """Config values read off tensor shapes (fairseq2 names), each with the evidence. A tensor the
    config is read from that has another number of dimensions than the model's is refused
    (BadInput, naming it as `in_file` says: the file and the tensor's name there): no config can be
    read off it."""

    def shaped(key: str, what: str) -> StoredTensor:
        tensor = state[key]
        if tensor.dim() != _CONFIG_TENSOR_DIMS[what]:
            raise BadInput(f"{in_file(key)} has shape {list(tensor.shape)}; a conformer_shaw checkpoint holds a "
                           f"{_CONFIG_TENSOR_DIMS[what]}-dimensional tensor there")
        return tensor

    facts: dict[str, tuple[Any, str]] = {}
    if "encoder_frontend.model_dim_proj.weight" in state:
        proj = shaped("encoder_frontend.model_dim_proj.weight", "model_dim_proj")
        facts["hidden_size"] = (int(proj.shape[0]), f"encoder_frontend.model_dim_proj.weight is {list(proj.shape)}")
        facts["feature_projection_input_dim"] = (int(proj.shape[1]), f"encoder_frontend.model_dim_proj.weight is {list(proj.shape)}")
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"^encoder\.layers\.(\d+)\.", k))})
    if layers:
        facts["num_hidden_layers"] = (len(layers), f"encoder.layers.{{0...{layers[-1]}}} in the checkpoint")
    # Any layer tells, so one whose keys are saved under other names does not hide the shape.
    ffn_key = next((k for i in layers if (k := f"encoder.layers.{i}.ffn1.inner_proj.weight") in state), None)
    if ffn_key is not None:
        ffn = shaped(ffn_key, "ffn1.inner_proj")
        facts["intermediate_size"] = (int(ffn.shape[0]), f"{ffn_key} is {list(ffn.shape)}")
    conv_key = next((k for i in layers if (k := f"encoder.layers.{i}.conv.depthwise_conv.weight") in state), None)
    if conv_key is not None:
        conv = shaped(conv_key, "depthwise_conv")
        facts["conv_depthwise_kernel_size"] = (int(conv.shape[2]), f"{conv_key} is {list(conv.shape)}")
    rel_key = next((k for k in state if _FS2_REL_KEY.match(k)), None)
    if rel_key is not None and "hidden_size" in facts:
        rows, head_dim = (int(d) for d in shaped(rel_key, "rel_k_embed").shape)
        hidden = facts["hidden_size"][0]
        if head_dim and hidden % head_dim == 0:
            facts["num_attention_heads"] = (hidden // head_dim, f"{rel_key} is {[rows, head_dim]}: head width {head_dim} of {hidden}")
        right = _DEFAULT_RIGHT_REL_POS
        facts["left_max_position_embeddings"] = (rows - 1 - right, f"{rel_key} has {rows} rows = left + right + 1 with right = {right}")
        facts["right_max_position_embeddings"] = (right, "seamless conformer_shaw uses max_right_rel_pos = 8")
    if "masker.temporal_mask_embed" not in state:
        # transformers creates masked_spec_embed only when a mask probability is set.
        facts["mask_time_prob"] = (0.0, "no masker.temporal_mask_embed in the checkpoint")
    return facts


def _semantic_conflicts(config) -> list[ConfigConflict]:
    conflicts = []
    if config.hidden_act not in ("swish", "silu"):
        conflicts.append(ConfigConflict("hidden_act", config.hidden_act, "swish", _ARCHITECTURE_FACTS["hidden_act"][1]))
    if abs(float(config.layer_norm_eps) - 1e-5) > 1e-12:
        conflicts.append(ConfigConflict("layer_norm_eps", config.layer_norm_eps, 1e-5, _ARCHITECTURE_FACTS["layer_norm_eps"][1]))
    if config.position_embeddings_type != "relative_key":
        conflicts.append(ConfigConflict("position_embeddings_type", config.position_embeddings_type, "relative_key", _ARCHITECTURE_FACTS["position_embeddings_type"][1]))
    if config.add_adapter:
        conflicts.append(ConfigConflict("add_adapter", config.add_adapter, False, _ARCHITECTURE_FACTS["add_adapter"][1]))
    return conflicts
