"""Running an upstream for a comparison: the original (Speechport's reference or S3PRL's modules)
and the converted folder (transformers), each a callable `clip -> SideOutput`. Imported only where
a comparison runs: converting needs no torch.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..proof.audio import MODEL_RATE, Clip
from ..proof.comparison import SideOutput
from ..reference.wav2vec2_blocks import normalize_waveform


def _stage_names(count: int) -> list[str]:
    """Hidden state i of S3PRL's list: the encoder's input, then each layer's output (the last one
    after the encoder's final LayerNorm in pre-LN models)."""
    return ["encoder input (hidden state 0)", *(f"encoder.layers.{i}" for i in range(count - 1))]


def extractor_normalization_notes(extractor, normalize: bool) -> tuple[str, ...]:
    """What a converted folder's feature extractor does to the waveform, when it is not what the original
    does (the comparison runs the converted model on the original's input all the same)."""
    if normalize == bool(getattr(extractor, "do_normalize", False)):
        return ()
    return (f"the folder's feature extractor has do_normalize={extractor.do_normalize}, but the original "
            f"{'normalises' if normalize else 'does not normalise'} the waveform",)


class UpstreamOriginalSide:
    """The original upstream (Speechport's reference, or S3PRL's own modules) on one clip."""

    def __init__(self, model, name: str, normalize: bool, layers: int, skip_first: bool = False):
        self.model = model
        self.name = name
        self.normalize = normalize
        self.states = layers + 1  # the encoder's input and each layer's output; DistilHuBERT's heads come after
        self.skip_first = skip_first  # DistilHuBERT's state 0 precedes its positional conv: transformers has no such state
        if hasattr(model, "encoder"):  # Speechport's reference reports each layer; S3PRL's modules do not
            self.steps = layers + 1

    def __call__(self, clip: Clip, tick=lambda: None) -> SideOutput:
        started = time.perf_counter()
        waveform = torch.from_numpy(clip.waveform)
        output = self.model([waveform], on_step=tick) if hasattr(self, "steps") else self.model([waveform])
        frames = int(output.valid_frames[0])
        layers = output.hidden_states[: self.states]
        stages = []
        model_input = normalize_waveform(waveform) if self.normalize else waveform
        stages.append(("input (waveform the model receives)", model_input[:, None]))
        names = _stage_names(len(layers))
        for index, (name, state) in enumerate(zip(names, layers)):
            if not (self.skip_first and index == 0):
                stages.append((name, state[0, :frames]))
        return SideOutput(layers[-1][0, :frames], stages, time.perf_counter() - started)


class TransformersUpstreamSide:
    """The converted folder as users load it (`from_pretrained`, float32), run on the waveform the
    original receives: both sides then see identical input, which proves the weights; what
    transformers' own feature extractor would hand it instead is compared as the input stage."""

    name = "transformers"

    def __init__(self, folder: Path, *, normalize: bool, skip_first: bool = False):
        import transformers
        from transformers import AutoConfig, AutoFeatureExtractor

        from ..proof.verification import stored_dtype_notes

        config = AutoConfig.from_pretrained(folder)
        self.model = getattr(transformers, config.architectures[0]).from_pretrained(folder, dtype=torch.float32).eval()
        self.config = self.model.config
        self.extractor = AutoFeatureExtractor.from_pretrained(folder)
        self.normalize = normalize
        self.skip_first = skip_first
        self.steps = self.config.num_hidden_layers + 1
        self.notes = stored_dtype_notes(folder)
        self.notes += extractor_normalization_notes(self.extractor, normalize)

    def __call__(self, clip: Clip, tick=lambda: None) -> SideOutput:
        started = time.perf_counter()
        waveform = torch.from_numpy(clip.waveform)
        own = self.extractor(clip.waveform, sampling_rate=MODEL_RATE, return_tensors="pt")["input_values"][0]
        model_input = normalize_waveform(waveform) if self.normalize else waveform
        modules = [self.model.feature_projection, *self.model.encoder.layers]
        hooks = [module.register_forward_hook(lambda *_: tick()) for module in modules]
        try:
            with torch.inference_mode():
                output = self.model(model_input[None], output_hidden_states=True)
        finally:
            for hook in hooks:
                hook.remove()
        frames = output.last_hidden_state.shape[1]
        # transformers' hidden_states[-1] of a pre-LN model is the last layer BEFORE the encoder's
        # final LayerNorm; the original's last state is after it, which is last_hidden_state.
        layers = [*output.hidden_states[:-1], output.last_hidden_state]
        stages = [("input (waveform the model receives)", own[:, None])]
        for index, (name, state) in enumerate(zip(_stage_names(len(layers)), layers)):
            if not (self.skip_first and index == 0):
                stages.append((name, state[0, :frames]))
        return SideOutput(output.last_hidden_state[0, :frames], stages, time.perf_counter() - started)
