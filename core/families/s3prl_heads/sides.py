"""Running an S3PRL head for a comparison: the original (the upstream's hidden states through
S3PRL's featurizer and head, in Speechport's reference) and the converted folder (transformers),
each a callable `clip -> SideOutput`. Imported only where a comparison runs: converting needs no torch.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ...errors import BadInput
from ...proof.audio import MODEL_RATE, Clip
from ...proof.comparison import SideOutput
from .layout import head_kind


class S3prlReferenceSide:
    """The original: the base model's hidden states through S3PRL's featurizer and head."""

    name = "reference"

    def __init__(self, content: dict, layout: str, upstream):
        from .reference import build_s3prl_original

        self.layout = layout
        self.upstream = upstream  # waveforms -> (hidden states, S3PRL frame counts)
        try:
            self.model = build_s3prl_original(content, layout)
        except (NotImplementedError, ValueError, KeyError) as exc:
            raise BadInput(f"the S3PRL head cannot be run: {exc}") from None

    def __call__(self, clip: Clip) -> SideOutput:
        started = time.perf_counter()
        hidden, lengths = self.upstream([clip.waveform])
        frames = int(lengths[0])
        features = self.model.featurizer(hidden)
        output = self.model.head(features, lengths)
        extras: dict = {}
        if self.layout == "asv":
            primary = output.linear1_pre[0]
            extras["s3prl_embedding"] = output.embedding[0]
        elif self.layout == "sd":
            primary = output[0, :frames]
        else:
            primary = output[0]
        stages = [*upstream_stages(hidden, frames), ("featurizer (weighted hidden states)", features[0, :frames]),
                  ("head", primary)]
        return SideOutput(primary, stages, time.perf_counter() - started, extras)


class TransformersHeadSide:
    """The converted folder: `from_pretrained` in float32 whatever dtype it stores (`notes` say
    which), its own feature extractor, its own forward."""

    name = "transformers"

    def __init__(self, folder: Path, normalize: bool = False):
        import transformers
        from transformers import AutoConfig, AutoFeatureExtractor

        from ...proof.verification import stored_dtype_notes

        config = AutoConfig.from_pretrained(folder)
        # The first class a config lists is the one loaded: verification.check_converted_folder made sure
        # it is one this recipe converts to.
        self.model = getattr(transformers, config.architectures[0]).from_pretrained(folder, dtype=torch.float32).eval()
        self.config = self.model.config
        self.extractor = AutoFeatureExtractor.from_pretrained(folder)
        self.kind = head_kind(self.model.config.architectures[0])
        self.notes = stored_dtype_notes(folder)
        # An upstream that normalises the waveform: S3PRL's F.layer_norm (eps 1e-5) differs from the
        # feature extractor's (eps 1e-7) by about 5e-6 / variance; the weights are proven on the same input.
        self.normalize = normalize
        if normalize:
            self.notes += ("the upstream normalises each waveform; the converted model was run on the waveform "
                           "S3PRL normalises (eps 1e-5), its feature extractor would use eps 1e-7",)

    def __call__(self, clip: Clip) -> SideOutput:
        from ...reference.wav2vec2_blocks import normalize_waveform, transformers_masks_quiet

        started = time.perf_counter()
        inputs = self.extractor(clip.waveform, sampling_rate=MODEL_RATE, return_tensors="pt")
        # One clip, nothing padded: its attention mask (all ones) changes nothing, and given to a WavLM
        # model it makes torch warn on every layer about the boolean key padding mask transformers
        # builds from it beside its float position bias. Without it no warning is raised at all, so
        # none can slip through while another thread's warnings.catch_warnings() restores the filters.
        if "attention_mask" in inputs and bool(inputs["attention_mask"].all()):
            del inputs["attention_mask"]
        if self.normalize:
            inputs["input_values"] = normalize_waveform(torch.from_numpy(clip.waveform))[None]
        captured = {}
        hook = None
        if getattr(self.model.config, "use_weighted_layer_sum", False):
            first = self.model.projector if self.kind in ("cls", "asv") else self.model.classifier
            hook = first.register_forward_pre_hook(lambda _m, args: captured.setdefault("weighted", args[0]))
        try:
            with torch.inference_mode(), transformers_masks_quiet():
                output = self.model(**inputs, output_hidden_states=True)
        finally:
            if hook is not None:
                hook.remove()
        stages = upstream_stages(output.hidden_states, None)
        if "weighted" in captured:
            stages.append(("featurizer (weighted hidden states)", captured["weighted"][0]))
        extras: dict = {"kind": self.kind, "class": self.model.config.architectures[0]}
        if self.kind == "asv":
            primary = output.embeddings[0]
            # S3PRL scores with l2norm(ReLU(linear1)); the same transform of transformers' output:
            extras["transformers_embedding_as_s3prl"] = torch.nn.functional.normalize(torch.relu(primary), dim=-1)
        else:
            primary = output.logits[0]
            extras["labels"] = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        stages.append(("head", primary))
        return SideOutput(primary, stages, time.perf_counter() - started, extras)


def upstream_stages(hidden_states, frames: int | None) -> list[tuple[str, torch.Tensor]]:
    """The upstream's hidden states as comparison stages (both models of a head carry them)."""
    return [(f"upstream hidden state {index}", state[0, :frames] if frames is not None else state[0])
            for index, state in enumerate(hidden_states)]


def explain_classification(original: torch.Tensor, converted: torch.Tensor, labels: list[str]) -> tuple[list[str], dict]:
    """Top-5 labels of both models side by side, and whether their best guesses agree."""
    ours = torch.softmax(original.double(), dim=-1)
    theirs = torch.softmax(converted.double(), dim=-1)
    top = torch.topk(ours, k=min(5, ours.numel())).indices.tolist()
    top5 = [{"label": labels[i], "original": float(ours[i]), "converted": float(theirs[i])} for i in top]
    agree = int(ours.argmax()) == int(theirs.argmax())
    overlap = len(set(top) & set(torch.topk(theirs, k=len(top)).indices.tolist()))
    note = (f"top-1 {'agrees' if agree else 'DIFFERS'}: original {labels[int(ours.argmax())]} "
            f"({float(ours.max()):.3f}), converted {labels[int(theirs.argmax())]} ({float(theirs.max()):.3f})")
    return [note], {"top5": top5, "top1_agrees": agree, "top5_overlap": overlap}
