"""What a fairseq CTC fine-tuning run leaves, read as plain data (no model is built here).

`fairseq-hydra-train` on the `audio_finetuning` task saves a `wav2vec_ctc` or `hubert_ctc` model:
the pretrained encoder under `w2v_encoder.w2v_model.` (its pretraining-only modules removed) and
the output layer `w2v_encoder.proj` (one row per symbol of the target dictionary). The encoder's
own config is `cfg.model.w2v_args` (older checkpoints: `args.w2v_args`, an argparse.Namespace);
the fine-tuning task's `normalize` says whether each waveform is layer-normalised first.

Shared by the recipe and the reference (which must not import the recipe's rules).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import BadInput
from ...reference.upstream_settings import FAIRSEQ_FAMILIES, TASK_NORMALIZE_DEFAULT

CTC_MODELS = ("wav2vec_ctc", "hubert_ctc")  # fairseq's model `_name` (or `--arch`) of a CTC fine-tuned encoder
ENCODER_PREFIX = "w2v_encoder.w2v_model."
PROJECTION_PREFIX = "w2v_encoder.proj."
PROJECTION_WEIGHT = PROJECTION_PREFIX + "weight"
# The encoder family (as core/reference names it) -> transformers' class prefix and its heads' base_model_prefix.
TARGETS = {"wav2vec2": ("Wav2Vec2", "wav2vec2"), "hubert": ("Hubert", "hubert"),
           "data2vec": ("Data2VecAudio", "data2vec_audio")}
CTC_SUFFIX = "ForCTC"


@dataclass(frozen=True)
class FineTunedFile:
    """What a CTC fine-tuned checkpoint says of itself."""

    naming: str  # "fairseq_cfg" (omegaconf cfg) or "fairseq_args" (argparse args)
    model_name: str  # wav2vec_ctc or hubert_ctc
    family: str  # the encoder's family: wav2vec2, hubert or data2vec
    encoder_settings: Any  # the pretraining config: cfg-style {"model", "task"} or an argparse.Namespace
    normalize: bool  # the fine-tuning task's normalize: each waveform layer-normalised first
    labels: str | None  # the task's labels ("ltr"): its dictionary file is dict.<labels>.txt

    @property
    def where(self) -> str:
        return "cfg" if self.naming == "fairseq_cfg" else "args"

    def encoder_content(self, state: Mapping[str, Any]) -> dict:
        """The encoder as an upstream checkpoint of the same layout would hold it: its own config
        (with the fine-tuning task's normalize) and its weights under their own names."""
        if self.naming == "fairseq_cfg":
            settings = self.encoder_settings
            task = {**(settings.get("task") or {}), "normalize": self.normalize}
            return {"cfg": {"model": dict(settings["model"]), "task": task}, "model": dict(state)}
        arguments = argparse.Namespace(**{**vars(self.encoder_settings), "normalize": self.normalize})
        return {"args": arguments, "model": dict(state)}


def read_fine_tuned(content: Any) -> FineTunedFile | None:
    """The CTC fine-tuned checkpoint `content` holds, or None when it is none; `BadInput` when it is one
    whose encoder config cannot be used (said in one sentence naming the setting)."""
    if not isinstance(content, Mapping) or not isinstance(content.get("model"), Mapping):
        return None
    cfg, args = content.get("cfg"), content.get("args")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        model, task, naming = cfg["model"], cfg.get("task") or {}, "fairseq_cfg"
        name = model.get("_name")
        encoder = model.get("w2v_args")
    elif isinstance(args, argparse.Namespace):
        model = task = vars(args)
        naming, name, encoder = "fairseq_args", model.get("arch"), model.get("w2v_args")
    else:
        return None
    if name not in CTC_MODELS:
        return None
    where = "cfg.model" if naming == "fairseq_cfg" else "args"
    if naming == "fairseq_cfg":
        encoder_model = encoder.get("model") if isinstance(encoder, Mapping) else None
        encoder_name = encoder_model.get("_name") if isinstance(encoder_model, Mapping) else None
    else:
        encoder_name = vars(encoder).get("arch") if isinstance(encoder, argparse.Namespace) else None
    if encoder is None or encoder_name is None:
        raise BadInput(f"{where}.w2v_args is empty: the checkpoint does not carry its pretrained encoder's config "
                       "(fairseq would read it from w2v_path), so the encoder cannot be rebuilt from this file alone",
                       hint="fine-tune with a fairseq that saves w2v_args, or convert the pretrained encoder instead")
    family = FAIRSEQ_FAMILIES.get(str(encoder_name))
    if family not in TARGETS:
        raise BadInput(f"{where}.w2v_args names the encoder {encoder_name!r}; Speechport converts CTC fine-tuning "
                       f"of {', '.join(sorted(FAIRSEQ_FAMILIES))} encoders")
    normalize = task.get("normalize", TASK_NORMALIZE_DEFAULT) if isinstance(task, Mapping) else TASK_NORMALIZE_DEFAULT
    if not (isinstance(normalize, bool) or (type(normalize) is int and normalize in (0, 1))):
        raise BadInput(f"{'cfg.task' if naming == 'fairseq_cfg' else 'args'} normalize is {normalize!r}; it must be "
                       "true or false")
    labels = task.get("labels") if isinstance(task, Mapping) else None
    return FineTunedFile(naming, str(name), family, encoder, bool(normalize), labels if isinstance(labels, str) else None)


def encoder_state(state: Mapping[str, Any]) -> dict:
    """The encoder's entries of the fine-tuned state dict, under the pretrained model's own names."""
    return {key[len(ENCODER_PREFIX):]: value for key, value in state.items()
            if isinstance(key, str) and key.startswith(ENCODER_PREFIX)}
