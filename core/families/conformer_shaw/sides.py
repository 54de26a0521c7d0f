"""Running conformer_shaw for a comparison: the original (Speechport's fairseq2-semantics reference)
and the converted folder (transformers), each a callable `clip -> SideOutput`; and which clips the
encoder can be compared on. Imported only where a comparison runs: converting needs no torch.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ...errors import BadInput
from ...proof.audio import MODEL_RATE, Clip
from ...proof.comparison import INPUT_FEATURES, IllConditionedInput, SideOutput
from .reference import FBANK_STRIDE


class ReferenceSide:
    """The original encoder as Speechport's own fairseq2-semantics implementation runs it."""

    name = "reference"

    def __init__(self, state: dict[str, torch.Tensor]):
        from .reference import ConformerShawReference

        try:
            self.model = ConformerShawReference(state)
        except KeyError as missing:
            raise BadInput(f"the original model needs {missing.args[0]!r}, which the checkpoint does not hold under "
                           "that name and no fix provides") from None
        self.steps = self.model.dims.num_layers + 1  # the frontend, then each layer

    def __call__(self, clip: Clip, tick=lambda: None) -> SideOutput:
        from ...proof.fbank import fairseq2_fbank

        started = time.perf_counter()
        fbank = fairseq2_fbank(torch.from_numpy(clip.waveform))
        try:
            output = self.model.forward(fbank[None], on_step=tick)
        except KeyError as missing:
            raise BadInput(f"the original model needs {missing.args[0]!r}, which the checkpoint does not hold under "
                           "that name and no fix provides") from None
        valid = int(output.output_seq_lens[0])
        stages = [(INPUT_FEATURES, stacked_fbank(fbank)[:valid]), ("feature_projection", output.frontend_output[0, :valid])]
        stages += [(f"encoder.layers.{i}", layer[0, :valid]) for i, layer in enumerate(output.layer_outputs)]
        return SideOutput(output.last_hidden_state[0, :valid], stages, time.perf_counter() - started)


class TransformersEncoderSide:
    """The converted folder: `from_pretrained` and its own saved feature extractor, in float32
    whatever dtype the folder stores (both sides compute alike; `notes` say what it stores)."""

    name = "transformers"

    def __init__(self, folder: Path):
        from transformers import AutoFeatureExtractor, Wav2Vec2BertModel

        from ...proof.verification import stored_dtype_notes

        self.extractor = AutoFeatureExtractor.from_pretrained(folder)
        self.model = Wav2Vec2BertModel.from_pretrained(folder, dtype=torch.float32).eval()
        self.config = self.model.config
        self.notes = stored_dtype_notes(folder)
        self.steps = self.config.num_hidden_layers + 1  # the feature projection, then each layer

    def __call__(self, clip: Clip, tick=lambda: None) -> SideOutput:
        started = time.perf_counter()
        inputs = self.extractor(clip.waveform, sampling_rate=MODEL_RATE, return_tensors="pt")
        mask = inputs.get("attention_mask")
        # For an odd fbank frame count the extractor pads one masked frame that fairseq2 drops.
        valid = int(mask[0].sum()) if mask is not None else inputs["input_features"].shape[1]
        modules = [self.model.feature_projection, *self.model.encoder.layers]
        hooks = [module.register_forward_hook(lambda *_: tick()) for module in modules]
        try:
            return self._run(inputs, valid, started)
        finally:
            for hook in hooks:
                hook.remove()

    def run_features(self, features: torch.Tensor) -> SideOutput:
        """The model on given input features (frames, 160) instead of its extractor's: the original's
        own, to tell the weights apart from the feature extraction."""
        features = features.detach().to(torch.float32)[None]
        inputs = {"input_features": features, "attention_mask": torch.ones(features.shape[:2], dtype=torch.long)}
        return self._run(inputs, features.shape[1], time.perf_counter())

    def _run(self, inputs, valid: int, started: float) -> SideOutput:
        with torch.inference_mode():
            output = self.model(**inputs, output_hidden_states=True)
        hidden = output.hidden_states  # (input to layer 0, output of each layer)
        stages = [(INPUT_FEATURES, inputs["input_features"][0, :valid]), ("feature_projection", hidden[0][0, :valid])]
        stages += [(f"encoder.layers.{i}", h[0, :valid]) for i, h in enumerate(hidden[1:])]
        return SideOutput(output.last_hidden_state[0, :valid], stages, time.perf_counter() - started)


# -- which clips the encoder can be compared on ---------------------------------------------

MIN_FBANK_FRAMES = 2  # fairseq2 standardizes each bin over time (unbiased std) and stacks frames in pairs


def stacked_fbank(fbank: torch.Tensor) -> torch.Tensor:
    """(T, 80) -> (T // 2, 160): Wav2Vec2FbankFeatureExtractor's stride 2, the last odd frame dropped."""
    frames = fbank.shape[0] - fbank.shape[0] % FBANK_STRIDE
    return fbank[:frames].reshape(frames // FBANK_STRIDE, fbank.shape[1] * FBANK_STRIDE)


def check_fbank_clip(clip: Clip) -> IllConditionedInput | None:
    """Refuse a clip the encoder cannot be compared on (BadInput); say which mel bins of its
    standardized fbank are ill-conditioned (see core.fbank's measurements), if any."""
    from ...proof.fbank import FRAME_LENGTH, FRAME_SHIFT, bin_conditioning, kaldi_fbank, num_frames

    samples = len(clip.waveform)
    frames = num_frames(samples)
    if frames < MIN_FBANK_FRAMES:
        needed = FRAME_LENGTH + (MIN_FBANK_FRAMES - 1) * FRAME_SHIFT
        raise BadInput(
            f"{clip.path}: the clip is too short for a conformer_shaw encoder: {samples} samples "
            f"({samples / MODEL_RATE * 1000:.1f} ms at 16 kHz) give {frames} fbank frame; it needs at least "
            f"{MIN_FBANK_FRAMES} ({needed} samples, {needed / MODEL_RATE * 1000:.0f} ms), because fairseq2 "
            "standardizes each mel bin over time and stacks the frames in pairs"
        )
    fbank = kaldi_fbank(torch.from_numpy(clip.waveform))
    conditioning = bin_conditioning(fbank)
    constant = conditioning.constant_bins
    if constant:
        raise BadInput(
            f"{clip.path}: {_bins_text(constant, fbank.shape[1])} of the filterbank "
            f"{'is' if len(constant) == 1 else 'are'} exactly constant over the clip (zero variance: silence, "
            "a constant or strictly periodic signal), so fairseq2's per-bin standardization divides zero by "
            "zero and the original model itself outputs NaN",
            hint="compare on a clip with varied sound, such as speech",
        )
    bins = conditioning.ill_conditioned_bins
    if not bins:
        return None
    flat = conditioning.nearly_constant(bins)
    floor = [b for b in bins if b not in flat]
    total = fbank.shape[1]
    parts = []
    if flat:
        lowest = min(flat, key=lambda b: conditioning.std[b])
        parts.append(f"{_bins_text(flat, total)} {'are' if len(flat) > 1 else 'is'} nearly constant over the clip "
                     f"(std down to {conditioning.std[lowest]:.2g} around a mean of {conditioning.mean[lowest]:.3g}, "
                     f"in bin {lowest})")
    if floor:
        parts.append(f"{_bins_text(floor, total)} {'are' if len(floor) > 1 else 'is'} near float32's rounding floor "
                     f"in places (up to {max(conditioning.floor_gap_db[b] for b in floor):.0f} dB below the loudest "
                     "bin of the same frame)")
    columns = tuple(c for stride in range(FBANK_STRIDE) for c in (b + stride * total for b in bins))
    return IllConditionedInput(
        stage=INPUT_FEATURES,
        columns=tuple(sorted(columns)),
        summary="the clip's " + " and ".join(parts),
        consequence="so fairseq2's per-bin standardization magnifies rounding differences between two correct "
                    "fbank implementations there",
        name_columns=lambda found: _bins_text(sorted({c % total for c in found}), total),
        details={
            "mel_bins": bins,
            "nearly_constant_bins": flat,
            "rounding_floor_bins": floor,
            "std": [float(conditioning.std[b]) for b in bins],
            "mean": [float(conditioning.mean[b]) for b in bins],
            "magnification": [float(conditioning.magnification[b]) for b in bins],
        },
    )


def _bins_text(bins: list[int], total: int) -> str:
    """"mel bin 14 (of 80)", "mel bins 10-15, 70 (of 80)"."""
    runs: list[list[int]] = []
    for b in sorted(bins):
        if runs and b == runs[-1][-1] + 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"mel bin{'s' if len(bins) > 1 else ''} {text} (of {total})"
