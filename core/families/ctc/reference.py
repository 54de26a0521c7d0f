"""The original CTC model, fairseq's way: the pretrained encoder (Speechport's reference upstream,
core/reference/upstreams.py) and the output layer `w2v_encoder.proj` on its last hidden state.

fairseq's Wav2VecEncoder / HubertEncoder in eval mode: each waveform layer-normalised when the
fine-tuning task says normalize (the reference upstream does that itself), no masking, the
padding mask of a right-padded batch given to the encoder, then `proj(x)`: pre-softmax logits in
the dictionary's order, row 0 the CTC blank. Greedy decoding as fairseq's W2lViterbiDecoder-style
decoding does it: argmax, repeats merged, the blank dropped, `|` a space.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...errors import BadInput
from ...proof.transcripts import Run, greedy_runs, transcript
from .dictionary import BLANK


@dataclass
class CtcOutput:
    """``logits``: (B, T, V) for the padded batch (frames past a waveform's valid ones are padding
    garbage); ``hidden_states``: the encoder's, as the upstream reference returns them;
    ``valid_frames``: (B,) by the conv-length rule."""

    logits: Tensor
    hidden_states: list[Tensor]
    valid_frames: Tensor


class CtcReference:
    """`waveforms -> CtcOutput`: the encoder (an upstream reference) and the projection."""

    def __init__(self, encoder, projection: Mapping[str, Tensor], symbols: Sequence[str]):
        self.encoder = encoder
        weight, bias = projection.get("weight"), projection.get("bias")
        if weight is None or weight.dim() != 2:
            raise BadInput("the fine-tuned checkpoint has no output layer w2v_encoder.proj.weight of two dimensions")
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise BadInput(f"w2v_encoder.proj.bias is {list(bias.shape)}; the output layer has {weight.shape[0]} rows")
        if weight.shape[0] != len(symbols):
            raise BadInput(f"the output layer has {weight.shape[0]} rows, the dictionary {len(symbols)} symbols")
        self.weight, self.bias = weight.float(), None if bias is None else bias.float()
        self.symbols = tuple(symbols)

    def __call__(self, waveforms: Sequence[Tensor | np.ndarray], on_step: Callable[[], None] | None = None) -> CtcOutput:
        output = self.encoder(waveforms, on_step=on_step)
        return CtcOutput(self.project(output.hidden_states[-1]), output.hidden_states, output.valid_frames)

    def project(self, hidden: Tensor) -> Tensor:
        """The encoder's output through `w2v_encoder.proj`."""
        if hidden.shape[-1] != self.weight.shape[1]:
            raise BadInput(f"the output layer takes {self.weight.shape[1]} features, the encoder gives {hidden.shape[-1]}")
        with torch.inference_mode():
            return torch.nn.functional.linear(hidden.float(), self.weight, self.bias)

    def runs(self, logits: Tensor) -> list[Run]:
        """The greedy path of one clip's (frames, symbols) logits."""
        return greedy_runs(logits.argmax(dim=-1).tolist(), BLANK)

    def transcribe(self, logits: Tensor) -> str:
        """What the model hears in one clip's (frames, symbols) logits."""
        return transcript(self.runs(logits), self.symbols)
