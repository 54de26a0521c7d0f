"""The upstream encoders S3PRL 0.4.18 runs — WavLM, UniSpeech-SAT, wav2vec 2.0, HuBERT,
data2vec-audio and DistilHuBERT — built from the blocks of ``wav2vec2_blocks``.

Each reference takes a state dict under its ORIGINAL names (unilm / fairseq / S3PRL) and the
config it was saved with, and returns for a batch of waveforms what S3PRL's UpstreamExpert
returns as ``hidden_states``, plus the frame counts S3PRL works with. Sources (S3PRL 0.4.18):

* upstream/wavlm/expert.py + WavLM.py (unilm wavlm/WavLM.py): WavLM; UniSpeech-SAT is the same
  classes (upstream/unispeech_sat/expert.py imports ..wavlm.WavLM) with
  relative_position_embedding=False — the configuration flags decide, not the name.
* upstream/wav2vec2/expert.py + wav2vec2_model.py (fairseq models/wav2vec/wav2vec2.py).
* upstream/hubert/expert.py + hubert_model.py (fairseq models/hubert/hubert.py).
* upstream/data2vec/expert.py + data2vec_model.py (fairseq examples/data2vec data2vec_audio.py).
* upstream/distiller/expert.py + builder.py + model.py + module.py (DistilHuBERT).
* upstream/{wav2vec2,hubert,data2vec}/convert.py: the S3PRL converted format and
  ``merge_with_parent`` (a config key the model's dataclass lacks is dropped; a missing one takes
  the dataclass default — the ``*_DEFAULTS`` tables below are those defaults).

The experts hook ``encoder.layers[i]`` (its input) and ``encoder`` (its output), so hidden state
0 is the input of the first transformer layer — post-LN: LayerNorm(x + pos_conv(x)); pre-LN:
x + pos_conv(x) — state i the output of layer i, and the last state the encoder's output, which
for pre-LN models has gone through ``encoder.layer_norm``. DistilHuBERT differs (see
``DistillerReference``).

Batches are right-padded with zeros, each waveform first normalised on its own when the config
says normalize. Two frame counts come back per waveform: ``valid_frames`` by the conv-length
rule (what transformers uses) and ``unmasked_frames``, the frames the original model's padding
mask left visible: HuBERT, WavLM and UniSpeech-SAT use fairseq's forward_padding_mask, which
keeps a frame that holds any real sample and so may keep one more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import BadInput
from ..storage.checkpoint import as_torch, load_checkpoint
from ..storage.stored_tensor import StoredTensor
from .upstream_settings import (  # noqa: F401  (re-exported: the reference's own names for them)
    DISTILLER_DEFAULTS,
    FAIRSEQ_FAMILIES,
    FAMILIES,
    FORMATS,
    HUBERT_DEFAULTS,
    TASK_NORMALIZE_DEFAULT,
    WAV2VEC2_DEFAULTS,
    WAVLM_DEFAULTS,
    checkpoint_format,
)
from .wav2vec2_blocks import (
    ConvFeatureExtractor,
    ConvPositionalEmbedding,
    EncoderLayer,
    EncoderStates,
    FeatureProjection,
    RelativePositionBias,
    SelfAttention,
    Shapes,
    StackedConvPositionalEmbedding,
    TransformerEncoder,
    activation,
    as_waveform,
    check_state_dict,
    conv_length_padding_mask,
    conv_output_lengths,
    normalize_waveform,
    pad_waveforms,
    parse_conv_feature_layers,
    view_all_padding_mask,
)


@dataclass
class UpstreamOutput:
    """``hidden_states``: (B, T, D_i) each, as S3PRL's expert returns them for the padded batch
    (frames past a waveform's valid ones are padding garbage); ``valid_frames``: (B,) by the
    conv-length rule; ``unmasked_frames``: (B,) the frames the model's own padding mask kept."""

    hidden_states: list[Tensor]
    valid_frames: Tensor
    unmasked_frames: Tensor


def _settings(cfg: Mapping | None, defaults: Mapping) -> dict:
    cfg = cfg if cfg is not None else {}
    return {name: cfg.get(name, default) for name, default in defaults.items()}


def _prefix_ignored(exact: Sequence[str], prefixes: Sequence[str]) -> Callable[[str], bool]:
    return lambda key: key in exact or key.startswith(tuple(prefixes))


class UpstreamReference:
    """The shared pipeline: waveforms -> [normalise] -> pad -> conv extractor -> feature
    LayerNorm -> frame padding mask -> projection -> transformer encoder -> hidden states.

    Subclasses set the blocks in ``__init__`` and say which frame mask rule their original uses.
    """

    family = ""
    frame_mask_rule = "conv_length"  # or "view_all" (fairseq forward_padding_mask)
    # "always": the expert hands the model a sample mask for every batch; "when_padded": the model
    # drops it when no sample is padding (Wav2Vec2Model / Data2VecAudioModel: padding_mask.any()).
    frame_mask_when = "always"
    crop_seq_to_multiple = 1

    extractor: ConvFeatureExtractor
    projection: FeatureProjection
    encoder: TransformerEncoder
    normalize: bool

    def __init__(self, state_dict: Mapping[str, Tensor]):
        self.weights = {k: v for k, v in state_dict.items() if isinstance(v, Tensor)}

    # -- construction helpers

    def _check(self, state_dict: Mapping[str, object], ignored: Callable[[str], bool]) -> None:
        check_state_dict(state_dict, self.expected_keys(), ignored, f"{self.family} upstream")

    def expected_keys(self) -> Shapes:
        return {**self.extractor.keys(), **self.projection.keys(), **self.encoder.keys()}

    @staticmethod
    def _encoder(settings: Mapping, *, positional, gated: bool = False, relative_bias=None) -> TransformerEncoder:
        if settings.get("layer_type", "transformer") != "transformer":
            raise BadInput(
                f"layer_type {settings['layer_type']!r} (a conformer encoder) is not supported; "
                "only the transformer encoder is"
            )
        activation(settings["activation_fn"])  # refuse an unknown activation now, not mid-run
        embed_dim, heads = int(settings["encoder_embed_dim"]), int(settings["encoder_attention_heads"])
        if int(settings["encoder_layers"]) < 1:
            raise BadInput("an upstream without transformer layers is not supported")
        if embed_dim % heads:
            raise BadInput(f"encoder_embed_dim {embed_dim} is not divisible by {heads} attention heads")
        layers = tuple(
            EncoderLayer(
                attention=SelfAttention(embed_dim, heads, f"encoder.layers.{i}.self_attn.", gated=gated),
                ffn_dim=int(settings["encoder_ffn_embed_dim"]),
                layer_norm_first=bool(settings["layer_norm_first"]),
                activation_fn=settings["activation_fn"],
                prefix=f"encoder.layers.{i}.",
            )
            for i in range(int(settings["encoder_layers"]))
        )
        return TransformerEncoder(positional, layers, bool(settings["layer_norm_first"]), relative_bias)

    @staticmethod
    def _positional(settings: Mapping, depth: int = 1):
        embed_dim, kernel, groups = (int(settings[k]) for k in ("encoder_embed_dim", "conv_pos", "conv_pos_groups"))
        if depth > 1:
            return StackedConvPositionalEmbedding.from_conv_pos(embed_dim, kernel, groups, depth)
        return ConvPositionalEmbedding(embed_dim, kernel, groups)

    # -- forward

    def __call__(
        self, waveforms: Sequence[Tensor | np.ndarray], on_step: Callable[[], None] | None = None
    ) -> UpstreamOutput:
        """Hidden states of a batch of 1-D 16 kHz waveforms, as S3PRL's UpstreamExpert returns them.
        ``on_step`` (optional) is called after the feature extractor and after each layer."""
        if isinstance(waveforms, (Tensor, np.ndarray)) and np.ndim(waveforms) == 1:
            raise BadInput("give a list of waveforms (a batch), not one waveform")
        waves = [as_waveform(w) for w in waveforms]
        if not waves:
            raise BadInput("no waveforms given")
        if self.normalize:
            waves = [normalize_waveform(w) for w in waves]
        padded, lengths, sample_mask = pad_waveforms(waves)
        with torch.inference_mode():
            return self._forward(padded, lengths, sample_mask, on_step)

    def _forward(self, padded: Tensor, lengths: Tensor, sample_mask: Tensor, on_step) -> UpstreamOutput:
        w = self.weights
        features = self.extractor(w, padded).transpose(1, 2)
        num_frames = features.shape[1]
        features = self.projection.normalize(w, features)
        mask = self._frame_mask(lengths, sample_mask, num_frames)
        drop = num_frames % self.crop_seq_to_multiple  # Wav2Vec2Model.forward crop_seq_to_multiple
        if drop:
            num_frames -= drop
            features = features[:, :num_frames]
            mask = mask[:, :num_frames] if mask is not None else None
        x = self.projection.project(w, features)
        if on_step is not None:
            on_step()
        states = self.encoder(w, x, mask, on_step)
        valid = conv_output_lengths(lengths, self.extractor.layers).clamp(max=num_frames)
        unmasked = (~mask).sum(1) if mask is not None else torch.full_like(valid, num_frames)
        return UpstreamOutput(self._hidden_states(x, mask, states), valid, unmasked)

    def _frame_mask(self, lengths: Tensor, sample_mask: Tensor, num_frames: int) -> Tensor | None:
        if self.frame_mask_when == "when_padded" and not bool(sample_mask.any()):
            return None
        if self.frame_mask_rule == "view_all":
            return view_all_padding_mask(sample_mask, num_frames)
        return conv_length_padding_mask(lengths, num_frames, self.extractor.layers)

    def _hidden_states(self, projected: Tensor, mask: Tensor | None, states: EncoderStates) -> list[Tensor]:
        return [states.first_layer_input, *states.layer_outputs[:-1], states.output]


class WavLMReference(UpstreamReference):
    """WavLM and UniSpeech-SAT: unilm's WavLM classes as S3PRL's wavlm and unispeech_sat experts
    load them from a Microsoft checkpoint ``{"cfg": WavLMConfig fields, "model": state dict}``.

    ``relative_position_embedding`` adds layer 0's bucketed relative position bias (num_buckets /
    max_distance from the config) to every layer's attention; ``gru_rel_pos`` gates it per query.
    Without relative_position_embedding (UniSpeech-SAT) the attention is plain. ``normalize`` is
    the config's own flag. Frame mask: forward_padding_mask (view + all).
    Pretraining-only: ``mask_emb``.
    """

    frame_mask_rule = "view_all"

    def __init__(self, state_dict: Mapping[str, Tensor], cfg: Mapping):
        super().__init__(state_dict)
        s = _settings(cfg, WAVLM_DEFAULTS)
        relative = bool(s["relative_position_embedding"])
        self.family = "wavlm" if relative else "unispeech_sat"
        self.normalize = bool(s["normalize"])
        layers = parse_conv_feature_layers(s["conv_feature_layers"])
        self.extractor = ConvFeatureExtractor(layers, s["extractor_mode"], bool(s["conv_bias"]))
        embed_dim = int(s["encoder_embed_dim"])
        self.projection = FeatureProjection(layers[-1][0], embed_dim, projection=layers[-1][0] != embed_dim)
        bias = (
            RelativePositionBias(int(s["encoder_attention_heads"]), int(s["num_buckets"]), int(s["max_distance"]))
            if relative
            else None
        )
        # gru_rel_pos without a relative bias: the gate's tensors exist but the original never uses them.
        self.encoder = self._encoder(
            s, positional=self._positional(s), gated=bool(s["gru_rel_pos"]), relative_bias=bias
        )
        self._check(state_dict, _prefix_ignored(["mask_emb"], []))


class Wav2Vec2Reference(UpstreamReference):
    """wav2vec 2.0 (fairseq Wav2Vec2Model as S3PRL's wav2vec2 expert loads it).

    Frame mask by the conv-length rule, and only when some sample is padding;
    ``crop_seq_to_multiple`` crops the features; ``pos_conv_depth`` > 1 stacks positional convs.
    Pretraining-only: ``mask_emb``, ``quantizer.*``, ``project_q.*``, ``final_proj.*``,
    ``target_glu.*``.
    """

    family = "wav2vec2"
    frame_mask_when = "when_padded"
    _defaults = WAV2VEC2_DEFAULTS
    _pretraining_only = (("mask_emb",), ("quantizer.", "project_q.", "final_proj.", "target_glu."))

    def __init__(self, state_dict: Mapping[str, Tensor], model_cfg: Mapping, task_cfg: Mapping | None = None):
        super().__init__(state_dict)
        s = _settings(model_cfg, self._defaults)
        self.normalize = bool((task_cfg or {}).get("normalize", TASK_NORMALIZE_DEFAULT))
        if s.get("quantize_input"):
            raise BadInput("quantize_input=True (a quantised encoder input) is not supported")
        layers = parse_conv_feature_layers(s["conv_feature_layers"])
        self.extractor = ConvFeatureExtractor(layers, s["extractor_mode"], bool(s["conv_bias"]))
        embed_dim = int(s["encoder_embed_dim"])
        self.projection = FeatureProjection(layers[-1][0], embed_dim, projection=self._has_projection(layers, s))
        self.crop_seq_to_multiple = int(s.get("crop_seq_to_multiple", 1))
        self.encoder = self._encoder(s, positional=self._positional(s, int(s.get("pos_conv_depth", 1))))
        self._check(state_dict, _prefix_ignored(*self._pretraining_only))

    @staticmethod
    def _has_projection(layers, settings) -> bool:
        return layers[-1][0] != int(settings["encoder_embed_dim"])


class HubertReference(Wav2Vec2Reference):
    """HuBERT (fairseq HubertModel as S3PRL's hubert expert loads it): wav2vec 2.0's encoder with
    forward_padding_mask (view + all), a sample mask for every batch, no crop, one positional
    conv. Pretraining-only: ``mask_emb``, ``label_embs_concat``, ``final_proj.*``,
    ``target_glu.*``."""

    family = "hubert"
    frame_mask_rule = "view_all"
    frame_mask_when = "always"
    _defaults = HUBERT_DEFAULTS
    _pretraining_only = (("mask_emb", "label_embs_concat"), ("final_proj.", "target_glu."))


class Data2VecAudioReference(Wav2Vec2Reference):
    """data2vec-audio (Data2VecAudioModel as S3PRL's data2vec expert loads it): wav2vec 2.0's
    encoder, always a post_extract_proj, usually stacked positional convs (pos_conv_depth), no
    crop. Pretraining-only: ``mask_emb``, ``final_proj.*`` and ``_ema`` (the EMA teacher: a nested
    dict in the state dict, NOT the student weights)."""

    family = "data2vec"
    _pretraining_only = (("mask_emb", "_ema"), ("_ema.", "final_proj."))

    def __init__(self, state_dict: Mapping[str, Tensor], model_cfg: Mapping, task_cfg: Mapping | None = None):
        super().__init__(state_dict, model_cfg, task_cfg)
        self.crop_seq_to_multiple = 1  # Data2VecAudioModel.forward does not crop

    @staticmethod
    def _has_projection(layers, settings) -> bool:
        return True


class DistillerReference(UpstreamReference):
    """DistilHuBERT (S3PRL upstream/distiller): a ``Distiller`` state dict and the ``distiller``
    section of its ``Config``.

    The extractor's features are projected with NO feature LayerNorm, and that projection
    (``feat_final``) is hidden state 0 — taken BEFORE the positional conv and the encoder
    LayerNorm, with its padded frames set to 0 (the encoder zeroes them in place). Then come the
    outputs of the L encoder layers (raw layer outputs) and, with ``prediction_heads``, the
    n_tasks outputs of ``output_layer`` (Linear -> GELU -> SplitLinear, one per distilled teacher
    layer) computed from the encoder output: 1 + L + n_tasks states. Frame mask: the conv-length
    rule (cal_pad_mask). No waveform normalisation.

    transformers' HubertModel (feat_proj_layer_norm=False) can express the encoder layers
    (states 1..L); it cannot express state 0 (its hidden_states[0] is after pos_conv and the
    LayerNorm) nor the prediction heads (it has no such module). ``prediction_heads=False`` leaves
    the heads and their ``output_layer.*`` tensors out.
    """

    family = "distiller"
    normalize = False

    def __init__(self, state_dict: Mapping[str, Tensor], config: Mapping, *, prediction_heads: bool = True):
        super().__init__(state_dict)
        s = _settings(config, DISTILLER_DEFAULTS)
        if s["attention_type"] != "original":
            raise BadInput(f"attention_type {s['attention_type']!r} is not supported; only 'original' is")
        if s["task_emb_type"] != "expand-last" or s["out_layer_type"] != "expand-last":
            raise BadInput(
                f"task_emb_type {s['task_emb_type']!r} with out_layer_type {s['out_layer_type']!r} is not supported; "
                "only 'expand-last' (DistilHuBERT) is"
            )
        layers = parse_conv_feature_layers(s["extractor_conv_feature_layers"])
        self.extractor = ConvFeatureExtractor(layers, s["extractor_mode"], conv_bias=False)  # model.py: conv_bias=False
        embed_dim = int(s["encoder_embed_dim"])
        self.projection = FeatureProjection(
            layers[-1][0], embed_dim, layer_norm=False, projection=layers[-1][0] != embed_dim
        )
        self.encoder = self._encoder(s, positional=self._positional(s))
        self.prediction_heads = prediction_heads
        self.n_tasks = int(s["n_tasks"])
        self.final_dim = int(s["final_dim"])
        inter = int(s["out_layer_inter_dim"])
        self.inter_dim = inter if inter > 0 else embed_dim
        self._check(state_dict, _prefix_ignored([], [] if prediction_heads else ["output_layer."]))

    def expected_keys(self) -> Shapes:
        shapes = super().expected_keys()
        if self.prediction_heads:
            n, inter, out, dim = self.n_tasks, self.inter_dim, self.final_dim, self.encoder.embed_dim
            shapes["output_layer.0.weight"] = (inter * n, dim)
            shapes["output_layer.0.bias"] = (inter * n,)
            if n > 1:  # module.py SplitLinear: one (inter, out) matrix per task
                shapes["output_layer.2.weight"] = (n, inter, out)
                shapes["output_layer.2.bias"] = (1, 1, n, out)
            else:
                shapes["output_layer.2.layer.weight"] = (out, inter)
                shapes["output_layer.2.layer.bias"] = (out,)
        return shapes

    def _hidden_states(self, projected: Tensor, mask: Tensor | None, states: EncoderStates) -> list[Tensor]:
        feat_final = projected.masked_fill(mask[..., None], 0.0) if mask is not None else projected
        return [feat_final, *states.layer_outputs, *(self._heads(states.output) if self.prediction_heads else [])]

    def _heads(self, hidden: Tensor) -> list[Tensor]:
        w, n = self.weights, self.n_tasks
        batch, length, _ = hidden.shape
        x = torch.nn.functional.gelu(
            torch.nn.functional.linear(hidden, w["output_layer.0.weight"], w["output_layer.0.bias"])
        )
        if n > 1:
            x = x.reshape(batch, length, n, self.inter_dim)
            out = torch.einsum("btki,kio->btko", x, w["output_layer.2.weight"]) + w["output_layer.2.bias"]
        else:
            out = torch.nn.functional.linear(x, w["output_layer.2.layer.weight"], w["output_layer.2.layer.bias"])
            out = out.reshape(batch, length, 1, self.final_dim)
        return list(out.permute(2, 0, 1, 3).unbind(0))


# -- from checkpoint content ---------------------------------------------------------------------------

FAIRSEQ_CLASSES = {"wav2vec2": Wav2Vec2Reference, "hubert": HubertReference, "data2vec": Data2VecAudioReference}


def reference_from_checkpoint(
    content: Mapping, *, family: str | None = None, prediction_heads: bool = True
) -> UpstreamReference:
    """The reference for a checkpoint's top-level object (``load_checkpoint(...).content``),
    whatever its format; stored tensors are read as float32.

    ``family`` overrides the family the file names (fairseq's model ``_name`` / ``--arch``); the
    WavLM classes are chosen by the Microsoft format, and WavLM vs UniSpeech-SAT by their flags.
    """
    kind = checkpoint_format(content)
    if family is not None and family not in FAMILIES:
        raise BadInput(f"unknown upstream family {family!r} (known: {', '.join(FAMILIES)})")
    if kind == "microsoft":
        if family not in (None, "wavlm", "unispeech_sat"):
            raise BadInput(f"a Microsoft (cfg, model) checkpoint holds WavLM or UniSpeech-SAT, not {family}")
        return WavLMReference(float32_state_dict(content["model"]), dict(content["cfg"]))
    if kind == "s3prl_distiller":
        if family not in (None, "distiller"):
            raise BadInput(f"a distiller checkpoint holds DistilHuBERT, not {family}")
        config = content["Config"]
        section = config.get("distiller") if isinstance(config, Mapping) else None
        if not isinstance(section, Mapping):
            raise BadInput("the distiller checkpoint's Config has no 'distiller' section")
        return DistillerReference(float32_state_dict(content["Distiller"]), section, prediction_heads=prediction_heads)
    if kind == "s3prl":
        model_cfg, task_cfg, weights = content["model_cfg"], content["task_cfg"], content["model_weight"]
        name = model_cfg.get("_name") if isinstance(model_cfg, Mapping) else None
    elif kind == "fairseq_cfg":
        model_cfg, task_cfg, weights = content["cfg"]["model"], content["cfg"].get("task"), content["model"]
        name = model_cfg.get("_name")
    else:  # fairseq_args: the Namespace holds model and task options together
        model_cfg = task_cfg = vars(content["args"])
        weights = content["model"]
        name = model_cfg.get("arch")
    resolved = family or FAIRSEQ_FAMILIES.get(str(name))
    if resolved not in FAIRSEQ_CLASSES:
        raise BadInput(
            f"the checkpoint's model is {name!r}, which is no wav2vec 2.0, HuBERT or data2vec-audio model"
            if family is None
            else f"a {kind} checkpoint cannot hold a {family} upstream",
            hint="name the family if the file does not say it",
        )
    return FAIRSEQ_CLASSES[resolved](float32_state_dict(weights), model_cfg, task_cfg)


def float32_state_dict(weights: object) -> dict:
    """The state dict with its tensors in float32. Nested entries (data2vec's ``_ema``) are left
    unread: the reference ignores or refuses them by name."""
    if not isinstance(weights, Mapping):
        raise BadInput("the checkpoint's model weights are not a state dict")
    state = {}
    for key, value in weights.items():
        if isinstance(value, Tensor):
            value = value.float() if value.is_floating_point() else value
        elif isinstance(value, StoredTensor):
            value = as_torch(value, torch.float32)
        state[str(key)] = value
    return state


def load_upstream_reference(path, *, family: str | None = None, prediction_heads: bool = True) -> UpstreamReference:
    """Open an upstream checkpoint safely (``load_checkpoint``) and build its reference."""
    return reference_from_checkpoint(load_checkpoint(path).content, family=family, prediction_heads=prediction_heads)
