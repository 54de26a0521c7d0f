"""S3PRL 0.4.18 downstream models (featurizer + SUPERB heads), re-implemented from their semantics.

This is the original side when an S3PRL ``run_downstream.py`` checkpoint is compared with its
transformers conversion. Behaviour follows (file paths inside s3prl 0.4.18):

- ``upstream/hf_wav2vec2/expert.py`` / ``upstream/hf_hubert/expert.py``: the HF upstream.
- ``upstream/interfaces.py`` ``Featurizer``: layer weighting and the per-utterance frame counts.
- ``downstream/model.py`` ``UtteranceLevel`` + ``MeanPooling`` + ``FrameLevel``, used by
  ``downstream/{voxceleb1,emotion,speech_commands}/expert.py`` (SID, ER, KS).
- ``downstream/diarization/{expert,model}.py`` (SD).
- ``downstream/sv_voxceleb1/{expert,model}.py`` (ASV: XVector, SP, UtteranceExtractor, AMSoftmax).

Task kinds (``build_s3prl_original``): ``"cls"`` = SID/ER/KS, ``"sd"`` = diarization,
``"asv"`` = speaker verification.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...reference.wav2vec2_blocks import transformers_masks_quiet

SAMPLE_RATE = 16000
# hf_wav2vec2/hf_hubert expert.py: get_downsample_rates() returns 320.
DOWNSAMPLE_RATE = 320
# interfaces.py: Featurizer.tolist asserts |T - round(max_len / rate)| < 5.
TOLERABLE_SEQLEN_DIFF = 5

TASK_KINDS = ("cls", "sd", "asv")
TASK_KIND_BY_DOWNSTREAM = {
    "voxceleb1": "cls",
    "emotion": "cls",
    "speech_commands": "cls",
    "diarization": "sd",
    "sv_voxceleb1": "asv",
}

# sv_voxceleb1/model.py XVector: (context_size, dilation) of its five TDNN layers.
XVECTOR_TDNN_LAYOUT = ((5, 1), (3, 2), (3, 3), (1, 1), (1, 1))
XVECTOR_FRAMES_LOST = sum(dilation * (context - 1) for context, dilation in XVECTOR_TDNN_LAYOUT)  # 14
BATCH_NORM_EPS = 1e-5  # nn.BatchNorm1d default, sv_voxceleb1/model.py TDNN


def load_s3prl_checkpoint(path: str | Path) -> dict:
    """Load a run_downstream.py checkpoint without unpickling anything but argparse.Namespace."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------
# Upstream
# ---------------------------------------------------------------------------------------------

# S3PRL's HF upstreams: hf_wav2vec2_custom loads Wav2Vec2Model, hf_hubert_custom loads HubertModel.
# A transformers folder of the other families stands in for its original upstream the same way.
_HF_UPSTREAM_CLASS_BY_MODEL_TYPE = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel",
                                    "unispeech-sat": "UniSpeechSatModel", "data2vec-audio": "Data2VecAudioModel"}


@functools.lru_cache(maxsize=4)
def _load_upstream_model(model_dir: str):
    import transformers

    model_type = transformers.AutoConfig.from_pretrained(model_dir).model_type
    class_name = _HF_UPSTREAM_CLASS_BY_MODEL_TYPE.get(model_type)
    if class_name is None:
        raise ValueError(
            f"S3PRL 0.4.18 has HF upstreams only for {sorted(_HF_UPSTREAM_CLASS_BY_MODEL_TYPE)}, "
            f"not for model_type {model_type!r}"
        )
    model = getattr(transformers, class_name).from_pretrained(model_dir)
    return model.eval()


def _fine_tuned_upstream(model, upstream_state: Mapping[str, Tensor]):
    """A copy of the folder's model carrying the expert's fine-tuned weights (``model.<name>``)."""
    import copy

    weights = {k.removeprefix("model."): v for k, v in upstream_state.items() if k.startswith("model.")}
    tuned = copy.deepcopy(model)
    tuned.load_state_dict(weights, strict=True)
    return tuned.eval()


@functools.lru_cache(maxsize=8)
def _load_feature_extractor(model_dir: str, do_normalize: bool | None):
    from transformers import Wav2Vec2FeatureExtractor

    overrides = {} if do_normalize is None else {"do_normalize": do_normalize}
    if (Path(model_dir) / "preprocessor_config.json").is_file():
        return Wav2Vec2FeatureExtractor.from_pretrained(model_dir, **overrides)
    if do_normalize is None:
        # S3PRL would fetch facebook/wav2vec2-base's extractor here; say it instead of guessing.
        raise ValueError(f"{model_dir} has no preprocessor_config.json; pass do_normalize explicitly")
    return Wav2Vec2FeatureExtractor(**overrides)


def s3prl_feature_lengths(
    num_samples: Sequence[int], num_frames: int, downsample_rate: int = DOWNSAMPLE_RATE
) -> list[int]:
    """Per-utterance frame counts of interfaces.py ``Featurizer.tolist``.

    ``f[:round(len(wav) / rate)]`` with Python's round (half to even) on the padded batch output,
    so a short utterance in a batch may keep one frame computed from padding, and a lone
    utterance is capped at the frames the upstream produced.
    """
    expected = round(max(num_samples) / downsample_rate)
    if abs(num_frames - expected) >= TOLERABLE_SEQLEN_DIFF:
        raise ValueError(
            f"upstream gave {num_frames} frames, S3PRL expects about {expected} "
            f"(Featurizer.tolist tolerates a difference below {TOLERABLE_SEQLEN_DIFF})"
        )
    return [min(round(n / downsample_rate), num_frames) for n in num_samples]


def upstream_hidden_states(
    base_model_dir: str | Path,
    waveforms: Sequence[np.ndarray | Tensor],
    *,
    do_normalize: bool | None = False,
    upstream_state: Mapping[str, Tensor] | None = None,
) -> tuple[list[Tensor], Tensor]:
    """Hidden states of the HF base model as S3PRL's hf_wav2vec2 upstream produces them.

    The waveforms (16 kHz mono) form one batch: the feature extractor zero-pads them on the right
    and always passes an attention mask (``padding=True, return_attention_mask=True``), so
    batched results differ from single-utterance ones exactly as in S3PRL. ``do_normalize``
    overrides the extractor's zero-mean/unit-variance step (False as in the SUPERB fairseq
    wav2vec2 recipes; None keeps the saved preprocessor's value, as a plain S3PRL run would).

    ``upstream_state`` is the checkpoint's ``Upstream`` entry when S3PRL fine-tuned the upstream
    (``-f``): the expert's ``model.*`` weights then replace the folder's.

    Returns ``num_hidden_layers + 1`` tensors (N, T, H) — state 0 is the transformer input —
    and the S3PRL frame count per utterance (``s3prl_feature_lengths``).
    """
    model_dir = str(Path(base_model_dir).resolve())
    extractor = _load_feature_extractor(model_dir, do_normalize)
    model = _load_upstream_model(model_dir)
    if upstream_state is not None:
        model = _fine_tuned_upstream(model, upstream_state)
    # expert.py hands numpy arrays of the float32 torch waveforms to the extractor.
    arrays = [
        np.asarray(w.detach().cpu().numpy() if isinstance(w, Tensor) else w, dtype=np.float32)
        for w in waveforms
    ]
    if any(a.ndim != 1 for a in arrays):
        raise ValueError("waveforms must be 1-D mono signals")
    with torch.inference_mode():
        inputs = extractor(
            arrays,
            return_tensors="pt",
            padding=True,
            return_attention_mask=True,
            sampling_rate=SAMPLE_RATE,
        )
        with transformers_masks_quiet():
            outputs = model(**inputs, output_hidden_states=True)
    hidden_states = list(outputs.hidden_states)
    lengths = s3prl_feature_lengths([len(a) for a in arrays], hidden_states[0].shape[1])
    return hidden_states, torch.tensor(lengths, dtype=torch.long)


def original_upstream_hidden_states(upstream, waveforms: Sequence[np.ndarray | Tensor]) -> tuple[list[Tensor], Tensor]:
    """Hidden states of an original upstream (Speechport's reference or S3PRL's modules,
    `waveforms -> UpstreamOutput`) as S3PRL's Featurizer receives them from its UpstreamExpert,
    with the Featurizer's frame count per utterance."""
    waves = [torch.as_tensor(np.asarray(w, dtype=np.float32)) if not isinstance(w, Tensor) else w for w in waveforms]
    output = upstream(waves)
    hidden_states = list(output.hidden_states)
    lengths = s3prl_feature_lengths([len(w) for w in waves], hidden_states[0].shape[1])
    return hidden_states, torch.tensor(lengths, dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# Featurizer
# ---------------------------------------------------------------------------------------------


class S3prlFeaturizer:
    """interfaces.py ``Featurizer.forward`` before ``tolist``: (N, T, H) over the padded batch.

    - weighted sum: ``softmax(weights)``-weighted sum of all hidden states;
      ``Args.upstream_feature_normalize`` first applies ``F.layer_norm`` without affine to each
      state (only here: the flag is ignored with a layer selection);
    - ``Args.upstream_layer_selection`` (``-l``): that one hidden state, Python indexing, and the
      checkpoint's ``Featurizer`` dict is empty.

    The HF upstreams return only ``hidden_states``, so S3PRL falls back to it whatever
    ``Args.upstream_feature_selection`` says.
    """

    def __init__(self, featurizer_state: Mapping[str, Tensor], args: argparse.Namespace | None = None):
        self.layer_selection = getattr(args, "upstream_layer_selection", None)
        self.normalize = bool(getattr(args, "upstream_feature_normalize", False))
        self.weights = featurizer_state.get("weights")
        if self.layer_selection is None and self.weights is None:
            raise ValueError("Featurizer state has no 'weights' and Args selects no layer")
        if self.layer_selection is not None and self.weights is not None:
            raise ValueError("Featurizer state has 'weights' although Args selects a single layer")

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping) -> S3prlFeaturizer:
        return cls(checkpoint.get("Featurizer") or {}, checkpoint.get("Args"))

    @torch.inference_mode()
    def __call__(self, hidden_states: Sequence[Tensor]) -> Tensor:
        if len(hidden_states) == 1:  # _select_feature unwraps a one-element list
            return hidden_states[0]
        if self.layer_selection is not None:
            return hidden_states[self.layer_selection]
        if len(hidden_states) != self.weights.numel():
            raise ValueError(
                f"{len(hidden_states)} hidden states but {self.weights.numel()} featurizer weights"
            )
        stacked = torch.stack(list(hidden_states), dim=0)
        if self.normalize:
            stacked = F.layer_norm(stacked, (stacked.shape[-1],))
        layer_weights = F.softmax(self.weights, dim=-1).view(-1, 1, 1, 1)
        return (layer_weights * stacked).sum(dim=0)


def _as_s3prl_padded_batch(features: Tensor, lengths: Tensor | Sequence[int]) -> tuple[Tensor, Tensor]:
    """Featurizer.tolist then the experts' ``pad_sequence``: each utterance keeps its first
    ``lengths[i]`` frames, later frames become zeros, the batch is cut to ``max(lengths)``."""
    lengths = torch.as_tensor(lengths, dtype=torch.long).clamp(max=features.shape[1])
    max_len = int(lengths.max())
    keep = torch.arange(max_len, device=features.device) < lengths.to(features.device)[:, None]
    return torch.where(keep[..., None], features[:, :max_len], 0.0), lengths


def _reject_unknown_keys(state: Mapping[str, Tensor], known: set[str], what: str) -> None:
    unknown = sorted(k for k in state if k not in known and k != "best_score")
    if unknown:
        raise NotImplementedError(f"{what}: unsupported Downstream parameters {unknown}")


def _modelrc(config: Mapping) -> Mapping:
    return config["downstream_expert"]["modelrc"]


# ---------------------------------------------------------------------------------------------
# SID / ER / KS
# ---------------------------------------------------------------------------------------------


class UtteranceClassifierHead:
    """``projector`` + ``UtteranceLevel(MeanPooling, post_net=FrameLevel)`` -> logits (N, C).

    The experts project the zero-padded batch, MeanPooling averages ``x[i, :lengths[i]]`` (the
    Featurizer.tolist counts), and post_net's linear maps the mean to the logits.
    """

    def __init__(self, downstream_state: Mapping[str, Tensor], config: Mapping | None = None):
        if config is not None:
            modelrc = _modelrc(config)
            select = modelrc.get("select")
            options = modelrc.get(select) or {}
            if select != "UtteranceLevel" or options.get("pooling", "MeanPooling") != "MeanPooling":
                raise NotImplementedError(f"modelrc select={select!r} {dict(options)} is not supported")
            if options.get("pre_net") is not None:
                raise NotImplementedError("UtteranceLevel pre_net is not supported")
        names = (
            "projector.weight",
            "projector.bias",
            "model.post_net.linear.weight",
            "model.post_net.linear.bias",
        )
        _reject_unknown_keys(downstream_state, set(names), "UtteranceClassifierHead")
        self.projector_weight, self.projector_bias, self.linear_weight, self.linear_bias = (
            downstream_state[name] for name in names
        )

    @torch.inference_mode()
    def __call__(self, features: Tensor, lengths: Tensor | Sequence[int]) -> Tensor:
        padded, lengths = _as_s3prl_padded_batch(features, lengths)
        projected = F.linear(padded, self.projector_weight, self.projector_bias)
        pooled = torch.stack([projected[i, :n].mean(dim=0) for i, n in enumerate(lengths.tolist())])
        return F.linear(pooled, self.linear_weight, self.linear_bias)


# ---------------------------------------------------------------------------------------------
# SD
# ---------------------------------------------------------------------------------------------


def _lstm_layer(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """One unidirectional torch.nn.LSTM layer (gate order i, f, g, o), zero initial state."""
    batch, steps, _ = x.shape
    hidden_size = w_hh.shape[1]
    input_gates = F.linear(x, w_ih, b_ih)
    h = x.new_zeros(batch, hidden_size)
    c = x.new_zeros(batch, hidden_size)
    outputs = []
    for t in range(steps):
        gates = input_gates[:, t] + F.linear(h, w_hh, b_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


class FrameClassifierHead:
    """diarization ``Model``: per-frame ``linear(x)``, or ``linear(LSTM(x))`` when rnn_layers > 0.

    Output (N, max(lengths), num_speakers) raw logits over the zero-padded batch; the LSTM runs
    unpacked over the padding too, which cannot reach earlier frames (unidirectional). S3PRL's
    training/eval loop additionally stretches or cuts the sequence to the label length
    (expert.py ``_match_length``), which needs labels and is not part of the model.
    """

    def __init__(self, downstream_state: Mapping[str, Tensor], config: Mapping | None = None):
        num_layers = 0
        while f"model.rnn.weight_ih_l{num_layers}" in downstream_state:
            num_layers += 1
        if config is not None:
            configured = int(_modelrc(config).get("rnn_layers", 0))
            if configured != num_layers:
                raise ValueError(f"Config rnn_layers={configured}, state has {num_layers} LSTM layers")
        lstm_names = [
            [f"model.rnn.{name}_l{k}" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            for k in range(num_layers)
        ]
        self.lstm_layers = [tuple(downstream_state[n] for n in names) for names in lstm_names]
        known = {n for names in lstm_names for n in names} | {"model.linear.weight", "model.linear.bias"}
        _reject_unknown_keys(downstream_state, known, "FrameClassifierHead")
        self.linear_weight = downstream_state["model.linear.weight"]
        self.linear_bias = downstream_state["model.linear.bias"]

    @property
    def uses_lstm(self) -> bool:
        return bool(self.lstm_layers)

    @torch.inference_mode()
    def __call__(self, features: Tensor, lengths: Tensor | Sequence[int]) -> Tensor:
        x, _ = _as_s3prl_padded_batch(features, lengths)
        for weights in self.lstm_layers:
            x = _lstm_layer(x, *weights)
        return F.linear(x, self.linear_weight, self.linear_bias)


# ---------------------------------------------------------------------------------------------
# ASV
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XVectorOutput:
    pooled_stats: Tensor  # (N, 2*agg_dim) SP output [mean || unbiased std]
    linear1_pre: Tensor  # (N, D) linear1(stats) before ReLU
    embedding: Tensor  # (N, D) verification embedding l2norm(ReLU(linear1))
    train_vector: Tensor  # (N, D) ReLU(linear2(ReLU(linear1))), the AMSoftmax input
    amsoftmax_cos_logits: Tensor | None  # (N, speakers) s * cos(train_vector, W_j), no margin
    pooled_frames: Tensor  # (N,) TDNN frames each utterance's statistics were taken over


def _tdnn_layer(
    x: Tensor, weight: Tensor, bias: Tensor, context: int, dilation: int, batch_norm: tuple | None
) -> Tensor:
    """sv_voxceleb1/model.py TDNN: no padding, the window [x_t, x_{t+d}, ..., x_{t+(c-1)d}]
    flattened frame after frame (its F.unfold layout), Linear, ReLU, then optional BatchNorm."""
    steps_out = x.shape[1] - dilation * (context - 1)
    if steps_out < 1:
        raise ValueError("utterance too short for the XVector TDNN stack")
    window = torch.cat([x[:, k * dilation : k * dilation + steps_out] for k in range(context)], dim=-1)
    y = F.relu(F.linear(window, weight, bias))
    if batch_norm is not None:
        mean, var, scale, shift = batch_norm
        y = F.batch_norm(y.transpose(1, 2), mean, var, scale, shift, training=False, eps=BATCH_NORM_EPS)
        y = y.transpose(1, 2)
    return y


class XVectorHead:
    """sv_voxceleb1 ``connector`` -> ``XVector`` -> ``SP`` -> ``UtteranceExtractor`` (+ AMSoftmax W).

    Length rule (expert.py forward + model.py SP/MP): the batch is zero-padded to max(lengths),
    the TDNNs drop 14 frames (``XVECTOR_FRAMES_LOST``), the mask holds ``lengths[i] - 14`` ones
    padded to ``max(lengths) - 14``, and pooling takes ``[:first masked index + 1]`` — one TDNN
    frame that touches the padding — or every frame when nothing is masked (the longest one).
    """

    def __init__(self, downstream_state: Mapping[str, Tensor], config: Mapping):
        modelrc = _modelrc(config)
        layout = (modelrc.get("module"), modelrc.get("agg_module"), modelrc.get("utter_module"))
        if layout != ("XVector", "SP", "UtteranceExtractor"):
            raise NotImplementedError(f"sv_voxceleb1 module/agg_module/utter_module {layout} unsupported")
        hparams = modelrc.get("module_config", {}).get("XVector", {})
        with_batch_norm = bool(hparams.get("batch_norm", False))

        prefix = "model.framelevel_feature_extractor.module"
        self.tdnn_layers = []
        known = {"connector.weight", "connector.bias"}
        for index, (context, dilation) in enumerate(XVECTOR_TDNN_LAYOUT):
            names = [f"{prefix}.{index}.kernel.weight", f"{prefix}.{index}.kernel.bias"]
            batch_norm = None
            if with_batch_norm:
                bn_names = [
                    f"{prefix}.{index}.bn.{p}" for p in ("running_mean", "running_var", "weight", "bias")
                ]
                batch_norm = tuple(downstream_state[n] for n in bn_names)
                names += bn_names + [f"{prefix}.{index}.bn.num_batches_tracked"]
            known |= set(names)
            self.tdnn_layers.append(
                (downstream_state[names[0]], downstream_state[names[1]], context, dilation, batch_norm)
            )

        utter = "model.utterancelevel_feature_extractor"
        linear_names = [f"{utter}.{layer}.{p}" for layer in ("linear1", "linear2") for p in ("weight", "bias")]
        known |= set(linear_names)
        self.linear1_weight, self.linear1_bias, self.linear2_weight, self.linear2_bias = (
            downstream_state[n] for n in linear_names
        )
        self.connector_weight = downstream_state["connector.weight"]
        self.connector_bias = downstream_state["connector.bias"]

        # AMSoftmaxLoss(W: (hidden, speakers), s): cosine logits for inspection; other losses ignored.
        self.amsoftmax_weight = None
        self.amsoftmax_scale = None
        if modelrc.get("ObjectiveLoss") == "AMSoftmaxLoss":
            self.amsoftmax_weight = downstream_state["objective.W"]
            loss_config = modelrc.get("LossConfig", {}).get("AMSoftmaxLoss", {})
            self.amsoftmax_scale = float(loss_config.get("s", 30.0))
        known |= {k for k in downstream_state if k.startswith("objective.")}
        _reject_unknown_keys(downstream_state, known, "XVectorHead")

    @torch.inference_mode()
    def __call__(self, features: Tensor, lengths: Tensor | Sequence[int]) -> XVectorOutput:
        padded, lengths = _as_s3prl_padded_batch(features, lengths)
        if int(lengths.min()) <= XVECTOR_FRAMES_LOST:
            raise ValueError(f"S3PRL's XVector needs more than {XVECTOR_FRAMES_LOST} frames")
        x = F.linear(padded, self.connector_weight, self.connector_bias)
        for weight, bias, context, dilation, batch_norm in self.tdnn_layers:
            x = _tdnn_layer(x, weight, bias, context, dilation, batch_norm)

        tdnn_lengths = lengths - XVECTOR_FRAMES_LOST
        steps = x.shape[1]
        pooled_frames = torch.where(tdnn_lengths < steps, tdnn_lengths + 1, steps)
        stats = []
        for i, n in enumerate(pooled_frames.tolist()):
            frames = x[i, :n]
            stats.append(torch.cat([frames.mean(dim=0), frames.std(dim=0)]))  # torch.std: unbiased
        pooled_stats = torch.stack(stats)

        linear1_pre = F.linear(pooled_stats, self.linear1_weight, self.linear1_bias)
        hidden = F.relu(linear1_pre)
        train_vector = F.relu(F.linear(hidden, self.linear2_weight, self.linear2_bias))
        cos_logits = None
        if self.amsoftmax_weight is not None:
            cosine = F.normalize(train_vector, dim=1) @ F.normalize(self.amsoftmax_weight, dim=0)
            cos_logits = self.amsoftmax_scale * cosine
        return XVectorOutput(
            pooled_stats=pooled_stats,
            linear1_pre=linear1_pre,
            embedding=F.normalize(hidden, dim=-1),
            train_vector=train_vector,
            amsoftmax_cos_logits=cos_logits,
            pooled_frames=pooled_frames,
        )


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

Head = UtteranceClassifierHead | FrameClassifierHead | XVectorHead


@dataclass(frozen=True)
class S3prlOriginal:
    """Featurizer + downstream head of one checkpoint.

    Call with ``upstream_hidden_states`` output: logits (N, C) for "cls", frame logits
    (N, max(lengths), speakers) for "sd", an ``XVectorOutput`` for "asv".
    """

    task_kind: str
    featurizer: S3prlFeaturizer
    head: Head

    def __call__(self, hidden_states: Sequence[Tensor], lengths: Tensor | Sequence[int]):
        return self.head(self.featurizer(hidden_states), lengths)

    def run(
        self,
        base_model_dir: str | Path,
        waveforms: Sequence[np.ndarray | Tensor],
        *,
        do_normalize: bool | None = False,
    ):
        hidden_states, lengths = upstream_hidden_states(base_model_dir, waveforms, do_normalize=do_normalize)
        return self(hidden_states, lengths)


def build_s3prl_original(checkpoint: Mapping, task_kind: str | None = None) -> S3prlOriginal:
    """Original model of a loaded run_downstream.py checkpoint dict.

    ``task_kind``: "cls" (voxceleb1 / emotion / speech_commands), "sd" (diarization) or "asv"
    (sv_voxceleb1); None derives it from ``Args.downstream``.
    """
    args = checkpoint.get("Args")
    if task_kind is None:
        downstream = getattr(args, "downstream", None)
        task_kind = TASK_KIND_BY_DOWNSTREAM.get(downstream)
        if task_kind is None:
            raise ValueError(f"no task kind known for S3PRL downstream {downstream!r}; pass task_kind")
    state, config = checkpoint["Downstream"], checkpoint.get("Config")
    if task_kind == "cls":
        head = UtteranceClassifierHead(state, config)
    elif task_kind == "sd":
        head = FrameClassifierHead(state, config)
    elif task_kind == "asv":
        head = XVectorHead(state, config)
    else:
        raise ValueError(f"task_kind must be one of {TASK_KINDS}, not {task_kind!r}")
    return S3prlOriginal(task_kind, S3prlFeaturizer.from_checkpoint(checkpoint), head)
