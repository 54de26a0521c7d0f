"""The conformer_shaw (w2v-BERT 2.0) encoder of fairseq2 0.2.1 / seamless_communication,
written with torch.nn.functional on a fairseq2-named state dict.

Sources of the semantics (fairseq2 tag v0.2.1, seamless_communication 90e2b57):

* fairseq2 models/wav2vec2/feature_extractor.py  Wav2Vec2FbankFeatureExtractor (stride 2)
* fairseq2 models/wav2vec2/frontend.py           Wav2Vec2Frontend
* fairseq2 models/conformer/block.py             ConformerBlock
* fairseq2 models/conformer/convolution.py       ConformerConvolution
* fairseq2 nn/transformer/shaw_attention.py      ShawRelativePositionSDPA
* fairseq2 nn/transformer/attention.py           TorchSDPA / naive SDPA
* seamless models/conformer_shaw/builder.py      causal depthwise conv, layer_norm, Shaw SDPA
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...proof.fbank import fairseq2_fbank

FBANK_STRIDE = 2  # Wav2Vec2EncoderConfig.fbank_stride of the conformer_shaw archs
# Collater(pad_value=1) of the conversion pipeline; fairseq2n data/collater.cc pads at the end.
FBANK_PAD_VALUE = 1.0
DEFAULT_MAX_RIGHT_REL_POS = 8  # seamless conformer_shaw_600m

_LAYER_KEY = re.compile(r"^encoder\.layers\.(\d+)\.")


@dataclass(frozen=True)
class ConformerShawDims:
    model_dim: int
    num_layers: int
    num_heads: int
    ffn_dim: int
    kernel_size: int
    feature_dim: int = 160
    max_left_rel_pos: int = 64
    max_right_rel_pos: int = 8
    layer_norm_eps: float = 1e-5  # fairseq2 LayerNorm default, used by every norm here

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads


def dims_from_state_dict(state_dict: Mapping[str, Tensor]) -> ConformerShawDims:
    """Read the architecture off a fairseq2-named conformer_shaw state dict."""
    feature_dim = state_dict["encoder_frontend.post_extract_layer_norm.weight"].shape[0]
    proj = state_dict.get("encoder_frontend.model_dim_proj.weight")
    # Wav2Vec2Frontend has no model_dim_proj when feature_dim == model_dim.
    model_dim = proj.shape[0] if proj is not None else feature_dim

    layer_ids = {int(m.group(1)) for key in state_dict if (m := _LAYER_KEY.match(key))}
    if not layer_ids:
        raise ValueError("The state dict has no `encoder.layers.N.` keys.")
    num_layers = max(layer_ids) + 1

    first = "encoder.layers.0."
    rel_rows, head_dim = state_dict[first + "self_attn.sdpa.rel_k_embed.weight"].shape
    max_right = DEFAULT_MAX_RIGHT_REL_POS
    max_left = rel_rows - 1 - max_right

    return ConformerShawDims(
        model_dim=model_dim,
        num_layers=num_layers,
        num_heads=model_dim // head_dim,
        ffn_dim=state_dict[first + "ffn1.inner_proj.weight"].shape[0],
        kernel_size=state_dict[first + "conv.depthwise_conv.weight"].shape[-1],
        feature_dim=feature_dim,
        max_left_rel_pos=max_left,
        max_right_rel_pos=max_right,
    )


@dataclass
class ReferenceOutput:
    frontend_output: Tensor  # (N, S, d)
    layer_outputs: list[Tensor]  # one (N, S, d) per conformer layer
    last_hidden_state: Tensor  # (N, S, d)
    output_seq_lens: Tensor  # (N,) int64


def collate_fbanks(fbanks: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Stack (T_i, C) fbanks into (N, max T, C), padding with 1.0."""
    seq_lens = torch.tensor([f.shape[0] for f in fbanks], dtype=torch.int64)
    batch = fbanks[0].new_full((len(fbanks), int(seq_lens.max()), fbanks[0].shape[1]), FBANK_PAD_VALUE)
    for i, fbank in enumerate(fbanks):
        batch[i, : fbank.shape[0]] = fbank
    return batch, seq_lens


class ConformerShawReference:
    """Forward pass of the original conformer_shaw encoder (frontend + Conformer blocks)."""

    def __init__(self, state_dict: Mapping[str, Tensor], dims: ConformerShawDims | None = None):
        self.dims = dims if dims is not None else dims_from_state_dict(state_dict)
        self._weights = state_dict
        self._rel_index_cache: dict[tuple[int, str], Tensor] = {}

    def _w(self, name: str) -> Tensor:
        return self._weights[name]

    # ----------------------------------------------------------------- inputs

    def fbank_batch(self, waveforms: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Per-clip fairseq2 fbank, then collated: (N, T, 80) and seq_lens (N,)."""
        return collate_fbanks([fairseq2_fbank(w) for w in waveforms])

    def __call__(self, waveforms: list[Tensor]) -> ReferenceOutput:
        fbank, seq_lens = self.fbank_batch(waveforms)
        return self.forward(fbank, seq_lens)

    # ---------------------------------------------------------------- forward

    @torch.inference_mode()
    def forward(self, fbank: Tensor, seq_lens: Tensor | None = None, on_step=None) -> ReferenceOutput:
        """`on_step` (optional) is called after the frontend and after each layer: progress, and a
        place to stop a long run between layers."""
        anchor = self._w("encoder_frontend.post_extract_layer_norm.weight")
        seqs, seq_lens = self._stack_frames(fbank.to(anchor.device, anchor.dtype), seq_lens)
        batch_size, seq_len, _ = seqs.shape

        # A single clip (or equal lengths) is collated without a padding mask.
        key_mask = None
        if seq_lens is not None and bool((seq_lens < seq_len).any()):
            key_mask = torch.arange(seq_len, device=seqs.device) < seq_lens.to(seqs.device)[:, None]

        seqs = self._frontend(seqs)
        frontend_output = seqs
        if on_step is not None:
            on_step()

        attn_bias_mask = None
        if key_mask is not None:
            # (N, 1, 1, S): -inf on padded keys, added to the attention logits.
            attn_bias_mask = torch.zeros(key_mask.shape, dtype=seqs.dtype, device=seqs.device)
            attn_bias_mask.masked_fill_(~key_mask, float("-inf"))
            attn_bias_mask = attn_bias_mask[:, None, None, :]

        layer_outputs = []
        for index in range(self.dims.num_layers):
            seqs = self._conformer_block(f"encoder.layers.{index}.", seqs, key_mask, attn_bias_mask)
            layer_outputs.append(seqs)
            if on_step is not None:
                on_step()

        if seq_lens is None:
            output_seq_lens = torch.full((batch_size,), seq_len, dtype=torch.int64)
        else:
            output_seq_lens = seq_lens.to(torch.int64).cpu()

        # norm_order POST: StandardTransformerEncoder has no final layer norm.
        return ReferenceOutput(
            frontend_output=frontend_output,
            layer_outputs=layer_outputs,
            last_hidden_state=seqs,
            output_seq_lens=output_seq_lens,
        )

    def _stack_frames(self, fbank: Tensor, seq_lens: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Wav2Vec2FbankFeatureExtractor: drop the last frame of an odd batch,
        then (N, T, C) -> (N, T // 2, 2 C)."""
        batch_size, num_frames, num_channels = fbank.shape
        num_frames -= num_frames % FBANK_STRIDE
        fbank = fbank[:, :num_frames]
        if seq_lens is not None:
            seq_lens = seq_lens.clamp_max(num_frames) // FBANK_STRIDE
        stacked = fbank.reshape(batch_size, num_frames // FBANK_STRIDE, num_channels * FBANK_STRIDE)
        return stacked, seq_lens

    def _frontend(self, seqs: Tensor) -> Tensor:
        seqs = self._layer_norm("encoder_frontend.post_extract_layer_norm", seqs)
        if "encoder_frontend.model_dim_proj.weight" in self._weights:
            seqs = self._linear("encoder_frontend.model_dim_proj", seqs)
        return seqs

    # ----------------------------------------------------------------- blocks

    def _conformer_block(
        self, prefix: str, seqs: Tensor, key_mask: Tensor | None, attn_bias_mask: Tensor | None
    ) -> Tensor:
        # ConformerBlock.forward: macaron FFN (half step), MHSA, conv, FFN (half step), LN.
        seqs = seqs + 0.5 * self._ffn(prefix + "ffn1", self._layer_norm(prefix + "ffn1_layer_norm", seqs))
        seqs = seqs + self._self_attention(
            prefix + "self_attn", self._layer_norm(prefix + "self_attn_layer_norm", seqs), attn_bias_mask
        )
        seqs = seqs + self._convolution(
            prefix + "conv", self._layer_norm(prefix + "conv_layer_norm", seqs), key_mask
        )
        seqs = seqs + 0.5 * self._ffn(prefix + "ffn2", self._layer_norm(prefix + "ffn2_layer_norm", seqs))
        return self._layer_norm(prefix + "layer_norm", seqs)

    def _ffn(self, prefix: str, seqs: Tensor) -> Tensor:
        # StandardFeedForwardNetwork with SiLU; no inner layer norm for norm_order POST.
        return self._linear(prefix + ".output_proj", F.silu(self._linear(prefix + ".inner_proj", seqs)))

    def _self_attention(self, prefix: str, seqs: Tensor, attn_bias_mask: Tensor | None) -> Tensor:
        batch_size, seq_len, _ = seqs.shape
        num_heads, head_dim = self.dims.num_heads, self.dims.head_dim

        def heads(x: Tensor) -> Tensor:  # (N, S, d) -> (N, H, S, d_h)
            return x.view(batch_size, seq_len, num_heads, head_dim).transpose(1, 2)

        q = heads(self._linear(prefix + ".q_proj", seqs))
        k = heads(self._linear(prefix + ".k_proj", seqs))
        v = heads(self._linear(prefix + ".v_proj", seqs))

        # Shaw term q_i . rel_k_embed[clamp(j - i) + left], scaled by d_h^-0.5 like
        # q . k (shaw_attention.py), computed per table row and gathered.
        rel_k_embed = self._w(prefix + ".sdpa.rel_k_embed.weight")
        rel_logits = torch.matmul(q, rel_k_embed.t()) * head_dim**-0.5  # (N, H, S, rows)
        rel_index = self._relative_indices(seq_len, q.device)
        bias = torch.gather(rel_logits, -1, rel_index.expand(batch_size, num_heads, seq_len, seq_len))
        if attn_bias_mask is not None:
            bias = bias + attn_bias_mask

        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        attn = attn.transpose(1, 2).reshape(batch_size, seq_len, num_heads * head_dim)
        return self._linear(prefix + ".output_proj", attn)

    def _relative_indices(self, seq_len: int, device: torch.device) -> Tensor:
        """(S, S) int64: clamp(j - i, -left, right) + left for query i, key j."""
        key = (seq_len, str(device))
        index = self._rel_index_cache.get(key)
        if index is None:
            positions = torch.arange(seq_len, device=device)
            offsets = positions[None, :] - positions[:, None]
            left, right = self.dims.max_left_rel_pos, self.dims.max_right_rel_pos
            index = (offsets.clamp(-left, right) + left)[None, None]
            self._rel_index_cache = {key: index}
        return index

    def _convolution(self, prefix: str, seqs: Tensor, key_mask: Tensor | None) -> Tensor:
        # ConformerConvolution with causal_depthwise_conv=True and norm_type="layer_norm".
        if key_mask is not None:
            seqs = seqs.masked_fill(~key_mask[:, :, None], 0.0)

        # Pointwise convs as linear maps over channels; GLU over the channel axis.
        seqs = F.linear(seqs, self._w(prefix + ".pointwise_conv1.weight").squeeze(-1))
        seqs = F.glu(seqs, dim=-1)

        depthwise = self._w(prefix + ".depthwise_conv.weight")
        seqs = F.pad(seqs.transpose(1, 2), (depthwise.shape[-1] - 1, 0))
        seqs = F.conv1d(seqs, depthwise, groups=depthwise.shape[0]).transpose(1, 2)

        seqs = F.silu(self._layer_norm(prefix + ".layer_norm", seqs))
        return F.linear(seqs, self._w(prefix + ".pointwise_conv2.weight").squeeze(-1))

    # ----------------------------------------------------------- primitives

    def _layer_norm(self, prefix: str, x: Tensor) -> Tensor:
        weight, bias = self._w(prefix + ".weight"), self._w(prefix + ".bias")
        return F.layer_norm(x, (x.shape[-1],), weight, bias, self.dims.layer_norm_eps)

    def _linear(self, prefix: str, x: Tensor) -> Tensor:
        return F.linear(x, self._w(prefix + ".weight"), self._weights.get(prefix + ".bias"))
