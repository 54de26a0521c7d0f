"""Shared test utilities: running the CLI in-process, hashing files, building checkpoint variants."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch

from conftest import CONFORMER_SHAW

MODELS = ("cs_s64", "cs_s48")


def checkpoint_path(model: str) -> Path:
    return CONFORMER_SHAW / "models" / model / "conformer_shaw_fs2.pt"


def config_path(model: str) -> Path:
    return CONFORMER_SHAW / "models" / model / "config.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_fs2(model: str) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint_path(model), weights_only=True)["model"]


def fairseq1_names() -> dict[str, str]:
    """fairseq2 -> fairseq1 key patterns, read off the real model's key list (layer index as {}).

    The fixture derives fairseq1 names by inverting seamless_communication's key map, so this is
    "seamless's renaming in reverse", independent of Speechport's own rules.
    """
    keys = json.loads((CONFORMER_SHAW / "real_600m_keys.json").read_text())
    layer = re.compile(r"\.layers\.\d+\.")
    return {layer.sub(".layers.{}.", e["fs2_key"]): layer.sub(".layers.{}.", e["key"]) for e in keys["fs1_keys_derived"]}


def to_fairseq1(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A fairseq2 state dict under fairseq1 names, plus the fairseq1-only keys seamless deletes."""
    patterns = fairseq1_names()
    layer = re.compile(r"\.layers\.(\d+)\.")
    renamed = {}
    for key, tensor in state.items():
        match = layer.search(key)
        pattern = layer.sub(".layers.{}.", key)
        if pattern not in patterns:
            assert key == "quantizer.num_updates", key  # added by seamless, absent in fairseq1 files
            continue
        renamed[patterns[pattern].format(match.group(1)) if match else patterns[pattern]] = tensor
    width = state["encoder_frontend.model_dim_proj.weight"].shape[0]
    renamed["encoder.layer_norm.weight"] = torch.ones(width)
    renamed["encoder.layer_norm.bias"] = torch.zeros(width)
    return renamed


def folder_files(folder: Path) -> set[str]:
    return {p.name for p in Path(folder).iterdir()}


def leftovers(parent: Path) -> list[str]:
    """Temporary folders a conversion might have left behind next to its output."""
    return [p.name for p in Path(parent).iterdir() if ".partial-" in p.name or ".replaced-" in p.name]
