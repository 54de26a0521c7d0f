"""What the wav2vec 2.0 family's original code assumes when a checkpoint does not say: each
family's config defaults, the saved layouts, and the conv feature extractor's layer list. Plain
data, shared by the recipes (which read a checkpoint's settings without running anything) and the
reference implementations (which run it).
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Mapping

from ..errors import BadInput, quoted

ConvLayer = tuple[int, int, int]  # (channels, kernel, stride), as in conv_feature_layers
MAX_CONV_LAYERS = 64  # far more than any real extractor (7); a bound on what a config may ask to build
# Each layer is written as one tuple, in at most one list, after at most one `+` and one `*`: a
# longer spec lists more layers than the bound allows. It is refused before it is parsed, since
# Python's parser recurses once per operator (60,000 `+` would exhaust the stack).
MAX_CONV_SPEC_SYMBOLS = 4 * MAX_CONV_LAYERS

FAMILIES = ("wavlm", "unispeech_sat", "wav2vec2", "hubert", "data2vec", "distiller")

# WavLMConfig (S3PRL upstream/wavlm/WavLM.py = unilm wavlm/WavLM.py); cfg.update() overrides.
WAVLM_DEFAULTS = {
    "extractor_mode": "default",
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False,
    "normalize": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": False,
    "num_buckets": 320,
    "max_distance": 1280,
    "gru_rel_pos": False,
}

# Wav2Vec2Config (S3PRL upstream/wav2vec2/wav2vec2_model.py); Data2VecAudioConfig inherits it.
WAV2VEC2_DEFAULTS = {
    "extractor_mode": "default",
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_type": "transformer",
    "layer_norm_first": False,
    "conv_feature_layers": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
    "conv_bias": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "pos_conv_depth": 1,
    "crop_seq_to_multiple": 1,
    "quantize_input": False,
}

# HubertConfig (S3PRL upstream/hubert/hubert_model.py). It has no pos_conv_depth field, so
# merge_with_parent drops one from the config and TransformerEncoder takes depth 1.
HUBERT_DEFAULTS = {
    "extractor_mode": "default",
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_type": "transformer",
    "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
}

# DistillerConfig (S3PRL upstream/distiller/model.py), read with config.get(name, default).
DISTILLER_DEFAULTS = {
    "extractor_mode": "default",
    "extractor_conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "encoder_layers": 1,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "attention_type": "original",
    "final_dim": 768,
    "out_layer_type": "expand-last",
    "out_layer_inter_dim": -1,
    "n_tasks": 12,
    "task_emb_type": "expand-last",
}

# The task config's normalize (AudioPretrainingConfig / HubertPretrainingConfig default).
TASK_NORMALIZE_DEFAULT = False

# What each setting the conversion or the original model reads must be, as the original code's
# config dataclasses type them: a whole number of at least this much...
WHOLE_NUMBER_SETTINGS = {
    "encoder_layers": 1, "encoder_embed_dim": 1, "encoder_ffn_embed_dim": 1, "encoder_attention_heads": 1,
    "conv_pos": 1, "conv_pos_groups": 1, "pos_conv_depth": 1, "crop_seq_to_multiple": 1,
    "num_buckets": 1, "max_distance": 1, "final_dim": 1, "n_tasks": 1,
    "out_layer_inter_dim": -1,  # -1: the distiller's heads have no inner layer of their own size
}
# ... a flag ...
FLAG_SETTINGS = frozenset({"layer_norm_first", "conv_bias", "normalize", "relative_position_embedding", "gru_rel_pos",
                           "quantize_input"})
# ... or one of a few words: the feature extractor's mode (-> transformers' feat_extract_norm) ...
EXTRACTOR_MODES = {"default": "group", "layer_norm": "layer"}
# ... and the activation (fairseq's get_activation_fn and unilm's, as Speechport's reference computes
# them) -> transformers' hidden_act of the same function. "swish" and "glu" are not among them:
# fairseq hands the nn.SiLU class itself to the layer, and "glu" is WavLM's GLU_Linear fc1.
ACTIVATIONS = {
    "relu": "relu",
    "relu_squared": "relu2",
    "gelu": "gelu",
    "gelu_fast": "gelu_fast",  # the tanh approximation, as gelu_accurate
    "gelu_accurate": "gelu_accurate",
    "tanh": "tanh",
    "linear": "linear",
}
CHOICE_SETTINGS = {"extractor_mode": tuple(EXTRACTOR_MODES), "activation_fn": tuple(ACTIVATIONS)}
CONV_SETTINGS = ("conv_feature_layers", "extractor_conv_feature_layers")

FORMATS = ("microsoft", "s3prl", "fairseq_cfg", "fairseq_args", "s3prl_distiller")

# fairseq model `_name` / `--arch` -> family
FAIRSEQ_FAMILIES = {"wav2vec2": "wav2vec2", "hubert": "hubert", "data2vec_audio": "data2vec"}


def checkpoint_format(content: object) -> str:
    """Which saved layout a checkpoint's top-level object has (one of FORMATS)."""
    if not isinstance(content, Mapping):
        raise BadInput("the checkpoint is not a dict of saved objects, so it is no upstream checkpoint")
    if "Distiller" in content and "Config" in content:
        return "s3prl_distiller"
    if all(k in content for k in ("task_cfg", "model_cfg", "model_weight")):
        return "s3prl"
    cfg = content.get("cfg")
    if "model" in content and isinstance(cfg, Mapping):
        return "fairseq_cfg" if isinstance(cfg.get("model"), Mapping) else "microsoft"
    if "model" in content and isinstance(content.get("args"), argparse.Namespace):
        return "fairseq_args"
    raise BadInput(
        "the checkpoint is in no upstream layout Speechport knows",
        hint="expected a Microsoft WavLM/UniSpeech-SAT file (cfg, model), an S3PRL converted file "
        "(task_cfg, model_cfg, model_weight), a fairseq file (cfg or args, model) or a distiller "
        "checkpoint (Config, Distiller)",
    )


def parse_conv_feature_layers(spec: str, name: str = "conv_feature_layers") -> tuple[ConvLayer, ...]:
    """The fairseq ``conv_feature_layers`` string, e.g. ``"[(512,10,5)] + [(512,3,2)] * 4"``.

    The originals ``eval()`` it; here only list/tuple literals of integers, ``+`` and ``*`` are
    accepted, so a config cannot run code, and at most MAX_CONV_LAYERS layers. `name` is the
    setting's name in the config, for the message.
    """
    text = str(spec)
    if sum(text.count(symbol) for symbol in "+*[(") > MAX_CONV_SPEC_SYMBOLS:
        raise BadInput(f"{name} {quoted(text)} has more brackets and operators than a list of {MAX_CONV_LAYERS} "
                       "layers needs")
    too_many = BadInput(f"{name} {quoted(text)} lists more than {MAX_CONV_LAYERS} layers, more than any feature "
                        "extractor has")

    def value(node: ast.AST):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.List):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(value(e) for e in node.elts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Mult) and not (isinstance(left, list) and type(right) is int and right > 0):
                raise ValueError("only a list may be repeated, a whole number of times")
            if isinstance(node.op, ast.Mult) and right * len(left) > MAX_CONV_LAYERS:
                raise too_many  # `[...] * 10**9` would exhaust memory
            result = left + right if isinstance(node.op, ast.Add) else left * right
            if isinstance(result, list) and len(result) > MAX_CONV_LAYERS:
                raise too_many
            return result
        raise ValueError(ast.dump(node))

    not_layers = BadInput(f"{name} {quoted(text)} is not a list of (channels, kernel, stride)")
    try:
        layers = value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, TypeError):
        raise not_layers from None
    if (
        not isinstance(layers, list)
        or not layers
        or not all(
            isinstance(layer, tuple) and len(layer) == 3 and all(isinstance(n, int) and n > 0 for n in layer)
            for layer in layers
        )
    ):
        raise not_layers
    return tuple(layers)
