"""Shared test utilities: running the CLI in-process, hashing files, building checkpoint variants."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch

from speechport.core.storage.stored_tensor import DTYPES, StoredTensor

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


class Described(StoredTensor):
    """A tensor known only by its dtype and shape (a real model's key list): planning needs no more."""

    def __init__(self, dtype: str, shape):
        self.dtype = DTYPES[dtype]
        self.shape = tuple(shape)

    def contiguous_bytes(self):
        raise AssertionError("a described tensor has no bytes")

    def to_torch(self, dtype=None):
        raise AssertionError("a described tensor has no values")


# -- hand-made torch zips: exactly what torch.save writes, with the parts a test wants changed ---------


class CraftedStorage:
    """A storage as `torch.save` references it: ("storage", class, key, location, numel)."""

    def __init__(self, key: str, numel: int, storage_class=torch.FloatStorage):
        self.key, self.numel, self.storage_class = key, numel, storage_class


class CraftedTensor:
    """Pickles as torch.save pickles a tensor: `_rebuild_tensor_v2(storage, offset, size, stride, ...)`."""

    def __init__(self, storage: CraftedStorage, offset: int, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, __import__("collections").OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def craft_torch_zip(path: Path, obj, records: dict[str, bytes], compression=None) -> Path:
    """A torch zip (`archive/data.pkl`, `archive/data/<key>`, byteorder, version) around `obj`."""
    import io
    import pickle
    import zipfile

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            if isinstance(value, CraftedStorage):
                return ("storage", value.storage_class, value.key, "cpu", value.numel)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", compression=compression or zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, data in records.items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return Path(path)


def recompress(source: Path, target: Path, compression) -> Path:
    """The same torch zip with every record written with another zip compression."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression=compression) as new:
        for info in old.infolist():
            new.writestr(info.filename, old.read(info), compress_type=compression)
    return Path(target)


def torch_tensors(obj):
    """Every torch tensor inside what torch.load returned, named by dotted path (as iter_tensors names them)."""
    from speechport.core.storage.stored_tensor import iter_tensors

    return iter_tensors(obj, kind=torch.Tensor)


def unity_checkpoint(path, m4t: bool):
    """The cs_s64 fixture's frontend and conformer layers as the inner encoder of a UnitY speech
    encoder, with the LayerNorms, feed-forward block and adaptor layer that follow it; `m4t`: as
    a whole M4T checkpoint holds it, beside a text model."""
    fs2 = load_fs2("cs_s64")
    width = fs2["encoder_frontend.model_dim_proj.weight"].shape[0]
    speech, frontend = ("speech_encoder", "speech_encoder_frontend") if m4t else ("encoder", "encoder_frontend")
    state = {}
    for key, tensor in fs2.items():
        if key.startswith("encoder_frontend."):
            state[key.replace("encoder_frontend.", f"{frontend}.", 1)] = tensor
        elif key.startswith("encoder.layers."):
            state[key.replace("encoder.layers.", f"{speech}.inner.layers.", 1)] = tensor
    generator = torch.Generator().manual_seed(3)
    extra = {
        "inner_layer_norm.weight": (width,), "inner_layer_norm.bias": (width,),
        "proj1.weight": (4 * width, width), "proj1.bias": (4 * width,), "proj2.weight": (width, 4 * width),
        "proj2.bias": (width,), "adaptor_layers.0.self_attn.q_proj.weight": (width, width),
        "adaptor_layers.0.residual_layer_norm.weight": (width,), "layer_norm.weight": (width,), "layer_norm.bias": (width,),
    }
    for key, shape in extra.items():
        state[f"{speech}.{key}"] = torch.randn(shape, generator=generator)
    if m4t:
        state["text_decoder.layers.0.self_attn.q_proj.weight"] = torch.randn(8, 8, generator=generator)
        state["text_decoder_frontend.embed.weight"] = torch.randn(10, 8, generator=generator)
    torch.save({"model": state}, path)
    return path


def levenshtein(a, b) -> int:
    """The textbook dynamic programme for the edit distance, over characters of two strings or items of two
    lists: what Speechport's error rates are checked against."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[:], i
        for j, y in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
    return row[-1]
