"""The upstream encoders run by S3PRL 0.4.18's own module classes, for ``--original-backend s3prl``.

A second witness beside ``reference.upstreams``: the same state dict (read safely by
``load_checkpoint``) goes into S3PRL's genuine model classes — wavlm.WavLM.WavLM (WavLM and
UniSpeech-SAT), wav2vec2.wav2vec2_model.Wav2Vec2Model, hubert.hubert_model.HubertModel,
data2vec.data2vec_model.Data2VecAudioModel, distiller.model.DistillerModel — built and loaded
as each expert's loader does (WavLMConfig(cfg); ``merge_with_parent`` of the converted configs;
strict ``load_state_dict``), and the forward pass is the expert's: per-waveform
``F.layer_norm(wav, wav.shape)`` when normalize, ``pad_sequence``, a sample padding mask, and the
hidden states captured by forward hooks on ``encoder.layers[i]`` (input) and ``encoder``
(output), cut to the shortest as the wav2vec2/hubert/data2vec experts' postprocess does.

The experts themselves are not instantiated: their ``__init__`` unpickles the checkpoint file
with torch.load, and the wav2vec2/hubert/data2vec ones import S3PRL's download helpers, which
need packages S3PRL is installed without here (requests).

S3PRL is imported lazily; without it, building a backend raises ``BadInput``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import importlib.util
import io
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import BadInput
from ..reference.upstreams import (
    FAIRSEQ_FAMILIES,
    FAMILIES,
    UpstreamOutput,
    checkpoint_format,
    float32_state_dict,
)
from ..reference.wav2vec2_blocks import as_waveform, conv_output_lengths, parse_conv_feature_layers


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BadInput(
            f"--original-backend s3prl needs S3PRL 0.4.18 ({exc}); the default reference backend does not"
        ) from None


@contextlib.contextmanager
def _omegaconf_for_data2vec():
    """S3PRL 0.4.18's data2vec_model.py imports ``omegaconf.II`` and never uses it. Where omegaconf
    is not installed, a stand-in module answers that one import and is removed again."""
    if importlib.util.find_spec("omegaconf") is not None:
        yield
        return
    stand_in = types.ModuleType("omegaconf")
    stand_in.II = lambda interpolation: interpolation
    sys.modules["omegaconf"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("omegaconf") is stand_in:
            del sys.modules["omegaconf"]


def merge_with_parent(dataclass_type, cfg: Mapping):
    """s3prl/upstream/utils.py merge_with_parent (copied: that module imports S3PRL's download
    helpers): keys the dataclass lacks are dropped, missing ones take its defaults."""
    fields = {f.name for f in dataclasses.fields(dataclass_type)}
    return dataclass_type(**{k: copy.deepcopy(v) for k, v in cfg.items() if k in fields})


class S3prlUpstream:
    """An upstream run by S3PRL's own modules; ``__call__`` matches ``UpstreamReference``."""

    name = "s3prl"

    def __init__(
        self,
        family: str,
        model: torch.nn.Module,
        normalize: bool,
        conv_layers: Sequence[tuple[int, int, int]],
        *,
        unpad_hooks: bool,
    ):
        self.family = family
        self.model = model.eval()
        self.normalize = normalize
        self.conv_layers = tuple(conv_layers)
        self._unpad_hooks = unpad_hooks

    def __call__(
        self, waveforms: Sequence[Tensor | np.ndarray], on_step: Callable[[], None] | None = None
    ) -> UpstreamOutput:
        waves = [as_waveform(w) for w in waveforms]
        if not waves:
            raise BadInput("no waveforms given")
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        with torch.inference_mode(), _quiet():
            if self.family == "distiller":
                hidden_states, unmasked = self._distiller(waves)
            else:
                hidden_states, unmasked = self._hooked(waves, on_step)
        num_frames = hidden_states[0].shape[1]
        valid = conv_output_lengths(lengths, self.conv_layers).clamp(max=num_frames)
        return UpstreamOutput([h.float() for h in hidden_states], valid, unmasked)

    def _hooked(self, waves: list[Tensor], on_step) -> tuple[list[Tensor], Tensor]:
        # expert.py forward of wavlm / unispeech_sat / wav2vec2 / hubert / data2vec
        if self.normalize:
            waves = [F.layer_norm(wav, wav.shape) for wav in waves]
        wav_lengths = torch.LongTensor([len(wav) for wav in waves])
        wav_padding_mask = ~torch.lt(torch.arange(max(wav_lengths)).unsqueeze(0), wav_lengths.unsqueeze(1))
        padded_wav = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)

        captured: list[Tensor] = []
        encoder = self.model.encoder

        def layer_input(_module, inputs, _output):
            captured.append(inputs[0].transpose(0, 1))
            if on_step is not None:
                on_step()

        hooks = [layer.register_forward_hook(layer_input) for layer in encoder.layers]
        hooks.append(encoder.register_forward_hook(lambda _m, _i, output: captured.append(output[0])))
        try:
            if self.family in ("wav2vec2", "data2vec"):
                result = self.model.extract_features(padded_wav, wav_padding_mask)
                frame_mask = result["padding_mask"]
            else:  # WavLM.extract_features / HubertModel.extract_features
                _, frame_mask = self.model.extract_features(padded_wav, padding_mask=wav_padding_mask, mask=False)
        finally:
            for hook in hooks:
                hook.remove()
        if self._unpad_hooks:
            shortest = min(h.shape[1] for h in captured)
            captured = [h[:, :shortest] for h in captured]
        num_frames = captured[0].shape[1]
        if frame_mask is None:
            unmasked = torch.full((len(waves),), num_frames, dtype=torch.long)
        else:
            unmasked = (~frame_mask[:, :num_frames]).sum(1)
        return captured, unmasked

    def _distiller(self, waves: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        # distiller/builder.py PretrainedDistiller.forward + process_input_data, expert.py forward
        wave_len = [len(w) for w in waves]
        wave = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        pad_mask = torch.ones(wave.shape, dtype=torch.float32)
        for idx, length in enumerate(wave_len):
            pad_mask[idx, length:] = 0
        _, feat_final, pred, pad_mask, layer_hidden = self.model(wave, pad_mask, get_hidden=True)
        heads = [head.squeeze(0) for head in pred.transpose(0, 1).split(1, 0)]
        return [feat_final, *layer_hidden, *heads], pad_mask.sum(1).long()


@contextlib.contextmanager
def _quiet():
    """S3PRL's constructors print their settings, and torch warns about the deprecated
    nn.utils.weight_norm they use and the mask types they mix; none of it is for the user."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask and attn_mask.*")
        yield


def s3prl_upstream_from_checkpoint(content: Mapping, *, family: str | None = None) -> S3prlUpstream:
    """S3PRL's own module for a checkpoint's top-level object, in any format
    ``reference.upstreams.checkpoint_format`` knows."""
    with _quiet():
        return _build(content, family)


def _build(content: Mapping, family: str | None) -> S3prlUpstream:
    if family is not None and family not in FAMILIES:
        raise BadInput(f"unknown upstream family {family!r} (known: {', '.join(FAMILIES)})")
    kind = checkpoint_format(content)
    if kind == "microsoft":
        wavlm = _import("s3prl.upstream.wavlm.WavLM")
        cfg = wavlm.WavLMConfig(dict(content["cfg"]))
        model = wavlm.WavLM(cfg)
        _load(model, float32_state_dict(content["model"]))
        model.feature_grad_mult = 0.0
        resolved = "wavlm" if getattr(cfg, "relative_position_embedding", False) else "unispeech_sat"
        layers = parse_conv_feature_layers(cfg.conv_feature_layers)
        return S3prlUpstream(resolved, model, bool(cfg.normalize), layers, unpad_hooks=False)
    if kind == "s3prl_distiller":
        distiller = _import("s3prl.upstream.distiller.model")
        section = content["Config"]["distiller"]
        model = distiller.DistillerModel(distiller.DistillerConfig(dict(section)))
        _load(model, float32_state_dict(content["Distiller"]))
        layers = parse_conv_feature_layers(model.config.extractor_conv_feature_layers)
        return S3prlUpstream("distiller", model, False, layers, unpad_hooks=False)

    if kind == "s3prl":
        model_cfg, task_cfg, weights = content["model_cfg"], content["task_cfg"], content["model_weight"]
        name = model_cfg.get("_name")
    elif kind == "fairseq_cfg":
        model_cfg, task_cfg, weights = content["cfg"]["model"], content["cfg"]["task"], content["model"]
        name = model_cfg.get("_name")
    else:
        model_cfg = task_cfg = vars(content["args"])
        weights = content["model"]
        name = model_cfg.get("arch")
    resolved = family or FAIRSEQ_FAMILIES.get(str(name))
    state = float32_state_dict(weights)
    model_cfg, task_cfg = dict(model_cfg), dict(task_cfg or {})
    if resolved == "wav2vec2":
        module = _import("s3prl.upstream.wav2vec2.wav2vec2_model")
        task = merge_with_parent(module.AudioPretrainingConfig, task_cfg)
        cfg = merge_with_parent(module.Wav2Vec2Config, model_cfg)
        model = module.Wav2Vec2Model(cfg)
    elif resolved == "hubert":
        module = _import("s3prl.upstream.hubert.hubert_model")
        task = merge_with_parent(module.HubertPretrainingConfig, task_cfg)
        cfg = merge_with_parent(module.HubertConfig, model_cfg)
        model = module.HubertModel(cfg, task, _hubert_dictionaries(content, state))
    elif resolved == "data2vec":
        with _omegaconf_for_data2vec():
            module = _import("s3prl.upstream.data2vec.data2vec_model")
        wav2vec2 = _import("s3prl.upstream.wav2vec2.wav2vec2_model")
        task = merge_with_parent(wav2vec2.AudioPretrainingConfig, task_cfg)
        cfg = merge_with_parent(module.Data2VecAudioConfig, model_cfg)
        model = module.Data2VecAudioModel(cfg)
        # data2vec/convert.py load_converted_model: no pretraining modules, no EMA teacher (the
        # S3PRL converted file has no final_proj; a fairseq file's is dropped likewise).
        model.remove_pretraining_modules()
        state = {k: v for k, v in state.items() if k != "_ema" and not k.startswith("final_proj.")}
    else:
        raise BadInput(f"the checkpoint's model is {name!r}, which is no wav2vec 2.0, HuBERT or data2vec-audio model")
    _load(model, state)
    model.feature_grad_mult = 0.0
    layers = parse_conv_feature_layers(cfg.conv_feature_layers)
    return S3prlUpstream(resolved, model, bool(task.normalize), layers, unpad_hooks=True)


def _hubert_dictionaries(content: Mapping, state: Mapping[str, Tensor]) -> list:
    """HubertModel sizes label_embs_concat by its label dictionaries: the converted file's
    ``dictionaries_symbols``, or (fairseq files keep fairseq Dictionary objects) one dictionary
    as long as the saved tensor."""
    symbols = content.get("dictionaries_symbols")
    if symbols is not None:
        return list(symbols)
    if "label_embs_concat" in state:
        return [list(range(state["label_embs_concat"].shape[0]))]
    return [None]


def _load(model: torch.nn.Module, state: Mapping[str, Tensor]) -> None:
    """Strict, as every S3PRL loader; a mismatch is the user's file, said in one sentence."""
    try:
        model.load_state_dict(dict(state))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:400]
        raise BadInput(f"S3PRL's model does not accept the checkpoint's weights ({detail})") from None
    model.encoder.layerdrop = 0.0
