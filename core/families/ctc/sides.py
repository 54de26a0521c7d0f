"""Running a CTC model for a comparison: the original (Speechport's reference encoder and the
output layer, fairseq's way) and the converted folder (transformers' `*ForCTC` with the folder's
own tokenizer), each a callable `clip -> SideOutput` whose extras say what it hears. Imported only
where a comparison runs: converting needs no torch.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ...errors import BadInput
from ...proof.audio import MODEL_RATE, Clip
from ...proof.comparison import TRANSCRIPT, SideOutput
from ...proof.transcripts import greedy_runs, words
from ...reference.wav2vec2_blocks import normalize_waveform, transformers_masks_quiet
from .._upstream_sides import UpstreamOriginalSide, _stage_names, extractor_normalization_notes
from .dictionary import BLANK
from .reference import CtcReference

LOGITS = "logits (the output layer, one row per symbol)"
WORDS = "words"  # SideOutput.extras: each word heard, with its time on the compared audio


class CtcOriginalSide:
    """The original fine-tuned model on one clip: the encoder's stages, then its logits."""

    name = "reference"

    def __init__(self, reference: CtcReference, *, normalize: bool, layers: int, frame_seconds: float):
        self.reference = reference
        self.encoder = UpstreamOriginalSide(reference.encoder, "reference", normalize, layers)
        self.steps = self.encoder.steps
        self.frame_seconds = frame_seconds

    def __call__(self, clip: Clip, tick=lambda: None) -> SideOutput:
        started = time.perf_counter()
        encoded = self.encoder(clip, tick)
        logits = self.reference.project(encoded.primary)
        runs = self.reference.runs(logits)
        extras = {TRANSCRIPT: self.reference.transcribe(logits),
                  WORDS: words(runs, self.reference.symbols, self.frame_seconds)}
        return SideOutput(logits, [*encoded.stages, (LOGITS, logits)], time.perf_counter() - started, extras)


class TransformersCtcSide:
    """The converted folder as users load it (`from_pretrained` in float32, its tokenizer), run on
    the waveform the original receives: both sides then see identical input, which proves the
    weights; what transformers' own feature extractor would hand it instead is the input stage."""

    name = "transformers"

    def __init__(self, folder: Path, *, normalize: bool, frame_seconds: float):
        import transformers
        from transformers import AutoConfig, AutoFeatureExtractor, AutoTokenizer

        from ...proof.verification import stored_dtype_notes

        config = AutoConfig.from_pretrained(folder)
        self.model = getattr(transformers, config.architectures[0]).from_pretrained(folder, dtype=torch.float32).eval()
        self.config = self.model.config
        self.extractor = AutoFeatureExtractor.from_pretrained(folder)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError, TypeError) as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"{folder}: transformers cannot load the folder's tokenizer (vocab.json, "
                           f"tokenizer_config.json): {reason}") from None
        self.base = self.model.base_model
        self.normalize = normalize
        self.frame_seconds = frame_seconds
        self.steps = self.config.num_hidden_layers + 1
        self.names = self.tokenizer.convert_ids_to_tokens(list(range(self.config.vocab_size)))
        self.notes = stored_dtype_notes(folder)
        if normalize:
            self.notes += ("the original normalises each waveform with F.layer_norm (eps 1e-5); the converted model "
                           "was run on that waveform, so the weights are compared on identical input; its feature "
                           "extractor uses eps 1e-7 (the input stage shows that difference, which moves the logits "
                           "by up to a few thousandths)",)
        self.notes += extractor_normalization_notes(self.extractor, normalize)

    def __call__(self, clip: Clip, tick=lambda: None) -> SideOutput:
        started = time.perf_counter()
        waveform = torch.from_numpy(clip.waveform)
        own = self.extractor(clip.waveform, sampling_rate=MODEL_RATE, return_tensors="pt")["input_values"][0]
        model_input = normalize_waveform(waveform) if self.normalize else waveform
        captured = {}
        hooks = [module.register_forward_hook(lambda *_: tick())
                 for module in (self.base.feature_projection, *self.base.encoder.layers)]
        hooks.append(self.base.register_forward_hook(lambda _m, _i, output: captured.setdefault("base", output)))
        try:
            with torch.inference_mode(), transformers_masks_quiet():
                output = self.model(model_input[None], output_hidden_states=True)
        finally:
            for hook in hooks:
                hook.remove()
        last = captured["base"][0]  # the encoder's output, after a pre-LN encoder's final LayerNorm
        layers = [*output.hidden_states[:-1], last]
        frames = last.shape[1]
        stages = [("input (waveform the model receives)", own[:, None])]
        stages += [(name, state[0, :frames]) for name, state in zip(_stage_names(len(layers)), layers)]
        logits = output.logits[0]
        stages.append((LOGITS, logits))
        best = logits.argmax(dim=-1).tolist()
        runs = greedy_runs(best, self.config.pad_token_id if self.config.pad_token_id is not None else BLANK)
        delimiter = getattr(self.tokenizer, "word_delimiter_token", None) or "|"
        extras = {TRANSCRIPT: self.tokenizer.decode(best), WORDS: words(runs, self.names, self.frame_seconds, delimiter)}
        return SideOutput(logits, stages, time.perf_counter() - started, extras)
