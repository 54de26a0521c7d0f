"""Building blocks of the wav2vec 2.0 family of encoders, written with torch.nn.functional on a
state dict under its original names.

WavLM, UniSpeech-SAT, wav2vec 2.0, HuBERT, data2vec-audio and DistilHuBERT share one skeleton: a
convolutional feature extractor on the raw waveform, a feature LayerNorm and projection, a
convolutional relative position embedding, and a stack of transformer layers. Each block below
is a frozen description (its sizes and where its tensors live) with ``keys()`` — the tensors it
reads, with their shapes — and ``__call__(weights, ...)`` — its forward pass in eval mode.
Everything is batch-first (B, T, C); the originals run their transformers time-first, which
changes nothing but the order of the loops.

Sources of the semantics (S3PRL 0.4.18, whose files are copies of the upstream code it names):

* fairseq models/wav2vec/wav2vec2.py (S3PRL upstream/wav2vec2/wav2vec2_model.py):
  ConvFeatureExtractionModel, make_conv_pos, TransformerEncoder (pos_conv_depth), SamePad,
  TransformerSentenceEncoderLayer, MultiheadAttention, get_activation_fn,
  Wav2Vec2Model._get_feat_extract_output_lengths and its padding mask.
* fairseq models/hubert/hubert.py (S3PRL upstream/hubert/hubert_model.py): forward_padding_mask.
* unilm wavlm/WavLM.py and wavlm/modules.py (S3PRL upstream/wavlm/WavLM.py, modules.py):
  forward_padding_mask, TransformerEncoder with relative_position_embedding, MultiheadAttention
  with the gated relative position bias (_relative_positions_bucket, compute_bias, grep_linear,
  grep_a).
* S3PRL upstream/distiller/model.py: DistillerModel.cal_pad_mask.
* S3PRL upstream/{wavlm,hubert,wav2vec2,data2vec}/expert.py: ``F.layer_norm(wav, wav.shape)``
  per waveform when the config says normalize, then ``pad_sequence`` and a sample mask.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import BadInput
from .upstream_settings import ConvLayer, parse_conv_feature_layers  # noqa: F401  (re-exported)

Weights = Mapping[str, Tensor]
Shapes = dict[str, tuple[int, ...]]

# torch.nn.LayerNorm / GroupNorm default eps, used by every norm of these models (fairseq's
# LayerNorm() helper, Fp32LayerNorm, Fp32GroupNorm, and F.layer_norm in the S3PRL experts).
NORM_EPS = 1e-5
# wavlm/modules.py MultiheadAttention: grep_linear = nn.Linear(head_dim, 8), summed in two groups of 4.
GATE_UNITS = 8


# -- waveforms and frame masks ----------------------------------------------------------------------


def as_waveform(wave: Tensor | np.ndarray) -> Tensor:
    """One mono waveform as a 1-D float32 tensor."""
    tensor = torch.as_tensor(np.asarray(wave) if not isinstance(wave, Tensor) else wave)
    if tensor.ndim != 1:
        raise BadInput(f"a waveform must be 1-D (mono samples), not of shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise BadInput("a waveform is empty")
    return tensor.to(torch.float32)


def normalize_waveform(wave: Tensor) -> Tensor:
    """What S3PRL's experts do when the config says normalize: ``F.layer_norm(wav, wav.shape)``.

    Per unpadded waveform, before padding; eps 1e-5 (transformers' feature extractor uses 1e-7,
    which shifts the result by about 5e-6 / variance).
    """
    return F.layer_norm(wave, wave.shape, eps=NORM_EPS)


# transformers' WavLM attention hands torch a boolean key padding mask (made from the attention mask)
# beside its float position bias as the attention mask; torch converts the boolean one to the
# float -inf it means, with the same result, but warns on every layer that mixing the two is
# deprecated. The masks are transformers' own: only that warning is silenced, around the call.
MISMATCHED_MASKS_WARNING = "Support for mismatched key_padding_mask and attn_mask is deprecated"


@contextlib.contextmanager
def transformers_masks_quiet() -> Iterator[None]:
    """Run a transformers model without torch's warning about transformers' mismatched masks."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(MISMATCHED_MASKS_WARNING), category=UserWarning)
        yield


def pad_waveforms(waves: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """``pad_sequence(batch_first=True)`` with zeros: (B, S) samples, (B,) lengths, and the
    sample padding mask (B, S) the experts build (True = padding)."""
    lengths = torch.tensor([w.numel() for w in waves], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(list(waves), batch_first=True)
    sample_padding_mask = torch.arange(padded.shape[1])[None, :] >= lengths[:, None]
    return padded, lengths, sample_padding_mask


def conv_output_lengths(lengths: Tensor, layers: Sequence[ConvLayer]) -> Tensor:
    """Frames the feature extractor makes of each length: ``floor((L - k) / s + 1)`` per layer
    (Wav2Vec2Model._get_feat_extract_output_lengths; DistillerModel.cal_pad_mask truncates
    instead, which differs only for inputs shorter than the receptive field)."""
    lengths = lengths.to(torch.float64)
    for _, kernel, stride in layers:
        lengths = torch.floor((lengths - kernel) / stride + 1)
    return lengths.clamp(min=0).to(torch.long)


def conv_length_padding_mask(lengths: Tensor, num_frames: int, layers: Sequence[ConvLayer]) -> Tensor:
    """The conv-length rule (wav2vec 2.0, data2vec-audio, DistilHuBERT): frame t of row b is
    padding iff t >= conv_output_lengths(len_b). (B, T), True = padding."""
    valid = conv_output_lengths(lengths, layers).clamp(max=num_frames)
    return torch.arange(num_frames)[None, :] >= valid[:, None]


def view_all_padding_mask(sample_padding_mask: Tensor, num_frames: int) -> Tensor:
    """fairseq's forward_padding_mask (HuBERT, WavLM, UniSpeech-SAT): the sample mask is cut to a
    multiple of the frame count, viewed as (B, T, -1), and a frame is padding only if ALL its
    samples are. With right padding a row that ends mid-frame keeps that frame — one more than
    the conv-length rule may give. (B, T), True = padding."""
    extra = sample_padding_mask.shape[1] % num_frames
    if extra > 0:
        sample_padding_mask = sample_padding_mask[:, :-extra]
    return sample_padding_mask.reshape(sample_padding_mask.shape[0], num_frames, -1).all(-1)


# -- small pieces -------------------------------------------------------------------------------------


def _gelu(x: Tensor) -> Tensor:
    return F.gelu(x.float()).type_as(x)


def _gelu_accurate(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


# fairseq get_activation_fn (wav2vec2_model.py) and wavlm/modules.py get_activation_fn. "glu"
# (WavLM's GLU_Linear fc1) and "swish" (which fairseq maps to the nn.SiLU class, not a function)
# are not here: a config naming them is refused.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "relu_squared": lambda x: F.relu(x).pow(2),
    "gelu": _gelu,
    "gelu_fast": _gelu_accurate,
    "gelu_accurate": _gelu_accurate,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise BadInput(f"activation_fn {name!r} is not supported (supported: {', '.join(ACTIVATIONS)})") from None


def same_pad(x: Tensor, kernel: int) -> Tensor:
    """SamePad (fairseq modules/same_pad.py): a conv padded by k // 2 on both sides makes one frame
    too many for an even kernel; the last one is removed. x: (B, C, T)."""
    return x[:, :, :-1] if kernel % 2 == 0 else x


def weight_norm(g: Tensor, v: Tensor, dim: int) -> Tensor:
    """The weight torch.nn.utils.weight_norm(module, dim=dim) computes from ``weight_g`` and
    ``weight_v``: v scaled so that its norm over every axis but ``dim`` is g."""
    axes = [a for a in range(v.ndim) if a != dim]
    return v * (g / torch.linalg.vector_norm(v, dim=axes, keepdim=True))


def _layer_norm(weights: Weights, prefix: str, x: Tensor) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], weights[prefix + "weight"], weights[prefix + "bias"], NORM_EPS)


def _linear(weights: Weights, prefix: str, x: Tensor) -> Tensor:
    return F.linear(x, weights[prefix + "weight"], weights.get(prefix + "bias"))


def _norm_shapes(prefix: str, dim: int) -> Shapes:
    return {prefix + "weight": (dim,), prefix + "bias": (dim,)}


def _linear_shapes(prefix: str, n_in: int, n_out: int, bias: bool = True) -> Shapes:
    shapes = {prefix + "weight": (n_out, n_in)}
    if bias:
        shapes[prefix + "bias"] = (n_out,)
    return shapes


# -- feature extractor and projection -----------------------------------------------------------------


@dataclass(frozen=True)
class ConvFeatureExtractor:
    """ConvFeatureExtractionModel (fairseq wav2vec2.py; unilm WavLM.py; S3PRL copies of both).

    Each layer is Conv1d(k, stride) -> [norm] -> GELU. ``mode="default"``: a GroupNorm with one
    group per channel (i.e. per channel over time, over the whole padded length) on the first
    layer only; ``mode="layer_norm"``: a LayerNorm over channels after every conv. Tensor names:
    ``conv_layers.i.0`` (conv), ``conv_layers.0.2`` (GroupNorm), ``conv_layers.i.2.1`` (the
    LayerNorm inside Sequential(TransposeLast, LayerNorm, TransposeLast)).
    """

    layers: tuple[ConvLayer, ...]
    mode: str = "default"
    conv_bias: bool = False
    prefix: str = "feature_extractor.conv_layers."

    def __post_init__(self):
        if self.mode not in ("default", "layer_norm"):
            raise BadInput(f"extractor_mode {self.mode!r} is not supported (expected 'default' or 'layer_norm')")

    @property
    def channels(self) -> int:
        return self.layers[-1][0]

    def keys(self) -> Shapes:
        shapes: Shapes = {}
        n_in = 1
        for i, (n_out, kernel, _) in enumerate(self.layers):
            p = f"{self.prefix}{i}."
            shapes[p + "0.weight"] = (n_out, n_in, kernel)
            if self.conv_bias:
                shapes[p + "0.bias"] = (n_out,)
            if self.mode == "layer_norm":
                shapes.update(_norm_shapes(p + "2.1.", n_out))
            elif i == 0:
                shapes.update(_norm_shapes(p + "2.", n_out))
            n_in = n_out
        return shapes

    def __call__(self, weights: Weights, waves: Tensor) -> Tensor:
        """(B, S) samples -> (B, C, T) features."""
        x = waves[:, None, :]
        for i, (n_out, _, stride) in enumerate(self.layers):
            p = f"{self.prefix}{i}."
            x = F.conv1d(x, weights[p + "0.weight"], weights.get(p + "0.bias"), stride=stride)
            if self.mode == "layer_norm":
                x = _layer_norm(weights, p + "2.1.", x.transpose(-2, -1)).transpose(-2, -1)
            elif i == 0:
                x = F.group_norm(x, n_out, weights[p + "2.weight"], weights[p + "2.bias"], NORM_EPS)
            x = F.gelu(x)
        return x


@dataclass(frozen=True)
class FeatureProjection:
    """The step between extractor and encoder: ``layer_norm`` over the extractor's channels (absent
    in DistilHuBERT) and ``post_extract_proj`` (present when its width differs from the encoder's,
    always in data2vec-audio). Dropouts are identities in eval mode."""

    channels: int
    embed_dim: int
    layer_norm: bool = True
    projection: bool = True

    def keys(self) -> Shapes:
        shapes: Shapes = {}
        if self.layer_norm:
            shapes.update(_norm_shapes("layer_norm.", self.channels))
        if self.projection:
            shapes.update(_linear_shapes("post_extract_proj.", self.channels, self.embed_dim))
        return shapes

    def normalize(self, weights: Weights, features: Tensor) -> Tensor:
        """(B, T, C) -> the feature LayerNorm (the frame mask is computed between the two steps)."""
        return _layer_norm(weights, "layer_norm.", features) if self.layer_norm else features

    def project(self, weights: Weights, features: Tensor) -> Tensor:
        return _linear(weights, "post_extract_proj.", features) if self.projection else features


# -- positional convolution ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvPositionalEmbedding:
    """make_conv_pos (fairseq wav2vec2.py; WavLM.py TransformerEncoder; distiller/module.py):
    a grouped Conv1d(D, D, k, padding=k // 2, groups) under weight_norm(dim=2) — stored as
    ``0.weight_g`` (1, 1, k) and ``0.weight_v`` (D, D / groups, k) — then SamePad and GELU."""

    embed_dim: int
    kernel: int
    groups: int
    prefix: str = "encoder.pos_conv."

    def keys(self) -> Shapes:
        p = self.prefix + "0."
        return {
            p + "weight_g": (1, 1, self.kernel),
            p + "weight_v": (self.embed_dim, self.embed_dim // self.groups, self.kernel),
            p + "bias": (self.embed_dim,),
        }

    def __call__(self, weights: Weights, x: Tensor) -> Tensor:
        """(B, T, D) -> the positional term added to x, (B, T, D)."""
        p = self.prefix + "0."
        weight = weight_norm(weights[p + "weight_g"], weights[p + "weight_v"], dim=2)
        y = F.conv1d(x.transpose(1, 2), weight, weights[p + "bias"], padding=self.kernel // 2, groups=self.groups)
        return F.gelu(same_pad(y, self.kernel)).transpose(1, 2)


@dataclass(frozen=True)
class StackedConvPositionalEmbedding:
    """TransformerEncoder with pos_conv_depth > 1 (fairseq wav2vec2.py, data2vec-audio): ``depth``
    blocks of Conv1d(D, D, k, padding=k // 2, groups) (no weight norm) -> SamePad -> LayerNorm over
    channels without affine -> GELU, with k = max(3, conv_pos // depth). Names ``i.0.weight/bias``."""

    embed_dim: int
    kernel: int
    groups: int
    depth: int
    prefix: str = "encoder.pos_conv."

    @classmethod
    def from_conv_pos(cls, embed_dim: int, conv_pos: int, groups: int, depth: int) -> StackedConvPositionalEmbedding:
        return cls(embed_dim, max(3, conv_pos // depth), groups, depth)

    def keys(self) -> Shapes:
        shapes: Shapes = {}
        for i in range(self.depth):
            p = f"{self.prefix}{i}.0."
            shapes[p + "weight"] = (self.embed_dim, self.embed_dim // self.groups, self.kernel)
            shapes[p + "bias"] = (self.embed_dim,)
        return shapes

    def __call__(self, weights: Weights, x: Tensor) -> Tensor:
        y = x.transpose(1, 2)
        for i in range(self.depth):
            p = f"{self.prefix}{i}.0."
            y = F.conv1d(y, weights[p + "weight"], weights[p + "bias"], padding=self.kernel // 2, groups=self.groups)
            y = same_pad(y, self.kernel)
            y = F.layer_norm(y.transpose(1, 2), (self.embed_dim,), eps=NORM_EPS).transpose(1, 2)
            y = F.gelu(y)
        return y.transpose(1, 2)


# -- attention ----------------------------------------------------------------------------------------


def relative_position_buckets(query_len: int, key_len: int, num_buckets: int, max_distance: int) -> Tensor:
    """wavlm/modules.py _relative_positions_bucket(bidirectional=True) of ``key - query``: half
    the buckets per direction, exact below num_buckets // 4, logarithmic up to max_distance.
    (query_len, key_len) long."""
    relative = torch.arange(key_len)[None, :] - torch.arange(query_len)[:, None]
    half = num_buckets // 2
    buckets = (relative > 0).to(torch.long) * half
    relative = relative.abs()
    max_exact = half // 2
    is_small = relative < max_exact
    # The original takes log(0) at distance 0 and masks it out with is_small; clamping gives the
    # same buckets without the infinity.
    large = max_exact + (
        torch.log(relative.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).to(torch.long)
    large = torch.minimum(large, torch.full_like(large, half - 1))
    return buckets + torch.where(is_small, relative, large)


@dataclass(frozen=True)
class RelativePositionBias:
    """WavLM's relative position bias: an Embedding(num_buckets, heads) held by layer 0 only
    (``has_relative_attention_bias = relative_position_embedding and i == 0``); layer 0
    computes the (heads, T, T) bias once and every layer receives that same ungated bias.
    num_buckets and max_distance come from the config (WavLMConfig defaults 320 / 1280)."""

    num_heads: int
    num_buckets: int
    max_distance: int
    name: str = "encoder.layers.0.self_attn.relative_attention_bias.weight"

    def keys(self) -> Shapes:
        return {self.name: (self.num_buckets, self.num_heads)}

    def __call__(self, weights: Weights, length: int) -> Tensor:
        buckets = relative_position_buckets(length, length, self.num_buckets, self.max_distance)
        return F.embedding(buckets, weights[self.name]).permute(2, 0, 1)


@dataclass(frozen=True)
class SelfAttention:
    """Multi-head self-attention (fairseq / WavLM MultiheadAttention in eval mode, which hand it to
    F.multi_head_attention_forward): q/k/v/out projections with biases, q scaled by
    head_dim ** -0.5, padded keys masked out, an optional additive bias per head.

    ``gated``: WavLM's gru_rel_pos gate. From the layer's attention INPUT (not the projected
    query) split into heads, ``sigmoid(grep_linear(x_h).view(..., 2, 4).sum(-1))`` gives gate_a,
    gate_b per query frame and head; the bias row of that query is multiplied by
    ``gate_a * (gate_b * grep_a - 1) + 2``.
    """

    embed_dim: int
    num_heads: int
    prefix: str
    gated: bool = False

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def keys(self) -> Shapes:
        shapes: Shapes = {}
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes.update(_linear_shapes(f"{self.prefix}{name}.", self.embed_dim, self.embed_dim))
        if self.gated:
            shapes.update(_linear_shapes(self.prefix + "grep_linear.", self.head_dim, GATE_UNITS))
            shapes[self.prefix + "grep_a"] = (1, self.num_heads, 1, 1)
        return shapes

    def gate(self, weights: Weights, x: Tensor) -> Tensor:
        """(B, T, D) attention input -> (B, H, T, 1) factor for each query's bias row."""
        batch, length, _ = x.shape
        heads = x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        units = _linear(weights, self.prefix + "grep_linear.", heads)
        gate_a, gate_b = torch.sigmoid(units.view(batch, self.num_heads, length, 2, GATE_UNITS // 2).sum(-1)).chunk(
            2, dim=-1
        )
        return gate_a * (gate_b * weights[self.prefix + "grep_a"] - 1.0) + 2.0

    def __call__(
        self, weights: Weights, x: Tensor, key_padding_mask: Tensor | None, position_bias: Tensor | None = None
    ) -> Tensor:
        batch, length, _ = x.shape
        p = self.prefix

        def heads(name: str) -> Tensor:
            y = _linear(weights, f"{p}{name}.", x)
            return y.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        q = heads("q_proj") * self.head_dim**-0.5
        logits = q @ heads("k_proj").transpose(-2, -1)  # (B, H, T, T)
        if position_bias is not None:
            logits = logits + (self.gate(weights, x) * position_bias if self.gated else position_bias)
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        context = torch.softmax(logits, dim=-1) @ heads("v_proj")
        return _linear(weights, p + "out_proj.", context.transpose(1, 2).reshape(batch, length, self.embed_dim))


# -- transformer ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderLayer:
    """TransformerSentenceEncoderLayer (fairseq wav2vec2.py, WavLM.py, distiller/module.py).

    post-LN: x = LN1(x + attn(x)); x = LN2(x + fc2(act(fc1(x)))).
    pre-LN (layer_norm_first): x = x + attn(LN1(x)); x = x + fc2(act(fc1(LN2(x)))).
    LN1 is ``self_attn_layer_norm``, LN2 ``final_layer_norm``.
    """

    attention: SelfAttention
    ffn_dim: int
    layer_norm_first: bool
    activation_fn: str
    prefix: str

    def keys(self) -> Shapes:
        dim, p = self.attention.embed_dim, self.prefix
        return {
            **self.attention.keys(),
            **_norm_shapes(p + "self_attn_layer_norm.", dim),
            **_linear_shapes(p + "fc1.", dim, self.ffn_dim),
            **_linear_shapes(p + "fc2.", self.ffn_dim, dim),
            **_norm_shapes(p + "final_layer_norm.", dim),
        }

    def __call__(
        self, weights: Weights, x: Tensor, key_padding_mask: Tensor | None, position_bias: Tensor | None = None
    ) -> Tensor:
        p, act = self.prefix, activation(self.activation_fn)

        def ffn(y: Tensor) -> Tensor:
            return _linear(weights, p + "fc2.", act(_linear(weights, p + "fc1.", y)))

        if self.layer_norm_first:
            x = x + self.attention(
                weights, _layer_norm(weights, p + "self_attn_layer_norm.", x), key_padding_mask, position_bias
            )
            return x + ffn(_layer_norm(weights, p + "final_layer_norm.", x))
        x = _layer_norm(
            weights, p + "self_attn_layer_norm.", x + self.attention(weights, x, key_padding_mask, position_bias)
        )
        return _layer_norm(weights, p + "final_layer_norm.", x + ffn(x))


@dataclass
class EncoderStates:
    """What a TransformerEncoder computes: the input of its first layer, every layer's output, and
    its output (the last layer's output, through ``encoder.layer_norm`` when pre-LN)."""

    first_layer_input: Tensor
    layer_outputs: list[Tensor]
    output: Tensor


@dataclass(frozen=True)
class TransformerEncoder:
    """TransformerEncoder (fairseq wav2vec2.py, WavLM.py, distiller/module.py) in eval mode.

    Padded frames of the input are set to 0, the positional convolution's output is added, then
    ``encoder.layer_norm`` is applied here for post-LN models — or after the last layer for pre-LN
    ones (layer_norm_first), never both. With a relative position bias (WavLM), layer 0's bias is
    computed once and handed to every layer.

    fairseq's encoder also right-pads the sequence to ``required_seq_len_multiple`` with masked
    frames and cuts them off again; masked keys take no part in attention, so that changes no
    real frame and is not reproduced (S3PRL's hooks cut the captured states back as well).
    """

    positional: ConvPositionalEmbedding | StackedConvPositionalEmbedding
    layers: tuple[EncoderLayer, ...]
    layer_norm_first: bool
    relative_bias: RelativePositionBias | None = None
    prefix: str = "encoder."

    def keys(self) -> Shapes:
        shapes = {**self.positional.keys(), **_norm_shapes(self.prefix + "layer_norm.", self.embed_dim)}
        if self.relative_bias is not None:
            shapes.update(self.relative_bias.keys())
        for layer in self.layers:
            shapes.update(layer.keys())
        return shapes

    @property
    def embed_dim(self) -> int:
        return self.positional.embed_dim

    def __call__(
        self, weights: Weights, x: Tensor, padding_mask: Tensor | None, on_step: Callable[[], None] | None = None
    ) -> EncoderStates:
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
        x = x + self.positional(weights, x)
        if not self.layer_norm_first:
            x = _layer_norm(weights, self.prefix + "layer_norm.", x)
        first_input = x
        bias = self.relative_bias(weights, x.shape[1])[None] if self.relative_bias is not None else None
        outputs = []
        for layer in self.layers:
            x = layer(weights, x, padding_mask, bias)
            outputs.append(x)
            if on_step is not None:
                on_step()
        output = _layer_norm(weights, self.prefix + "layer_norm.", x) if self.layer_norm_first else x
        return EncoderStates(first_input, outputs, output)


def check_state_dict(
    state_dict: Mapping[str, object],
    expected: Shapes,
    ignored: Callable[[str], bool],
    what: str,
) -> None:
    """Refuse a state dict that lacks a tensor the model reads, holds one of another shape, or
    holds one the model would not use (other than the pretraining-only ones ``ignored`` accepts)."""
    missing = sorted(k for k in expected if k not in state_dict)
    unknown = sorted(k for k in state_dict if k not in expected and not ignored(k))
    wrong = sorted(
        f"{k} {tuple(state_dict[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state_dict and tuple(getattr(state_dict[k], "shape", ())) != expected[k]
    )
    problems = []
    if missing:
        problems.append(f"it lacks {_listing(missing)}")
    if wrong:
        problems.append(f"these tensors have other shapes than its config says: {_listing(wrong)}")
    if unknown:
        problems.append(f"it holds tensors the model would not use: {_listing(unknown)}")
    if problems:
        raise BadInput(f"{what}: the state dict does not match its config: " + "; ".join(problems))


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
