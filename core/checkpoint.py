"""Reading checkpoint files safely, without copying their tensors into memory.

Torch pickles are loaded with `weights_only=True` and `mmap=True`: the unpickler refuses any global
outside a short allow-list, so opening a file never runs its code, and tensors stay backed by the
file's pages. `.safetensors` files are mapped the same way. Each tensor can tell where its bytes lie
in the file (`Checkpoint.span_of`), so a conversion can copy them file-to-file.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import BadInput, UnsafePickle

# Harmless globals that real speech checkpoints pickle besides tensors. S3PRL's run_downstream.py
# saves its command-line arguments as `Args` (an argparse.Namespace); everything else is refused.
ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}

# First bytes of files people rename by mistake, to say what a file is rather than "corrupt".
_FOREIGN_MAGIC = (
    (b"RIFF", "a WAV audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"OggS", "an Ogg audio file"),
    (b"ID3", "an MP3 audio file"),
    (b"\x89HDF", "an HDF5 file"),
    (b"GGUF", "a GGUF file"),
    (b"{", "a JSON or text file"),
)


@dataclass(frozen=True)
class FileSpan:
    """Where a tensor's bytes lie in its checkpoint file."""

    offset: int
    nbytes: int


@dataclass
class Checkpoint:
    """An opened checkpoint: its top-level object and where its tensors live in the file."""

    path: Path
    container: str  # "torch" (zip), "torch-legacy" (old tar/pickle format) or "safetensors"
    content: Any  # the unpickled top-level object; a dict of tensors for safetensors
    size: int
    trusted: bool = False  # loaded beyond the allow-list, with the user's consent
    mmapped: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    _base_ptr: int | None = None  # address at which the file's first byte is mapped

    def top_level_keys(self) -> list[str]:
        return [str(k) for k in self.content] if isinstance(self.content, dict) else []

    def span_of(self, tensor: torch.Tensor) -> FileSpan | None:
        """The tensor's bytes in the file, when it is a contiguous view of the mapped file."""
        if self._base_ptr is None or not tensor.is_contiguous() or tensor.device.type != "cpu":
            return None
        nbytes = tensor.numel() * tensor.element_size()
        offset = tensor.data_ptr() - self._base_ptr
        if nbytes == 0 or offset < 0 or offset + nbytes > self.size:
            return None
        return FileSpan(offset, nbytes)


def load_checkpoint(path: str | os.PathLike, *, trust_pickle: bool = False) -> Checkpoint:
    """Open a checkpoint file safely; raise `BadInput` with one clear sentence when it cannot be."""
    path = Path(path)
    head = _read_head(path)
    size = path.stat().st_size
    if head.startswith(b"PK\x03\x04"):
        return _load_torch_zip(path, size, trust_pickle)
    if _looks_like_safetensors(head, size):
        return _load_safetensors(path, size)
    if head[:1] == b"\x80":  # pickle protocol 2+: torch.save(_use_new_zipfile_serialization=False)
        return _load_torch_legacy(path, size, trust_pickle)
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise BadInput(f"{path}: this is {what}, not a checkpoint")
    raise BadInput(
        f"{path}: not a checkpoint Speechport can read",
        hint="expected a PyTorch .pt/.ckpt file or a .safetensors file",
    )


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts/lists, named by its dotted path."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from iter_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from iter_tensors(value, f"{prefix}.{index}" if prefix else str(index))


# -- format sniffing ------------------------------------------------------------------------


def _read_head(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise BadInput(f"{path}: is a folder; give the checkpoint file inside it")
        with path.open("rb") as handle:
            head = handle.read(64)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except PermissionError:
        raise BadInput(f"{path}: permission denied") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise BadInput(f"{path}: the file is empty (0 bytes), not a checkpoint")
    return head


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 0 < header_len <= size - 8 and head[8:9] == b"{"


# -- torch pickles --------------------------------------------------------------------------


def _global_name(obj: type) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _unsafe_globals_in_zip(path: Path) -> list[str]:
    """Globals the checkpoint's pickle would need beyond weights_only's defaults and our allow-list.

    `get_unsafe_globals_in_checkpoint` reads the pickle's opcodes without executing any of them.
    """
    allowed = {_global_name(g) for g in ALLOWED_GLOBALS}
    found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    return [name for name in found if name not in allowed]


def _load_torch_zip(path: Path, size: int, trust_pickle: bool) -> Checkpoint:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        raise BadInput(
            f"{path}: the file is truncated or corrupt (its zip archive is incomplete)",
            hint="an interrupted download or copy? fetch the file again",
        ) from None
    if not any(name.endswith("data.pkl") for name in names):
        raise BadInput(f"{path}: a zip archive, but not a PyTorch checkpoint (no data.pkl inside)")
    try:
        unsafe = _unsafe_globals_in_zip(path)
    except (RuntimeError, pickle.UnpicklingError, ValueError, EOFError) as exc:
        raise BadInput(f"{path}: the checkpoint's pickle is corrupt ({_first_line(exc)})") from None
    if unsafe and not trust_pickle:
        raise UnsafePickle(str(path), unsafe)
    content = _torch_load(path, trust=bool(unsafe), mmap=True)
    checkpoint = Checkpoint(path, "torch", content, size, trusted=bool(unsafe), mmapped=True)
    checkpoint._base_ptr = _zip_mapping_base(path, content)
    return checkpoint


def _load_torch_legacy(path: Path, size: int, trust_pickle: bool) -> Checkpoint:
    # The legacy format cannot be memory-mapped and its globals cannot be listed without
    # unpickling; weights_only still refuses anything unsafe, and names it in its message.
    try:
        content = _torch_load(path, trust=False, mmap=False)
    except UnsafePickle as refused:
        if not trust_pickle:
            raise
        del refused
        content = _torch_load(path, trust=True, mmap=False)
        return Checkpoint(path, "torch-legacy", content, size, trusted=True, mmapped=False)
    return Checkpoint(path, "torch-legacy", content, size, mmapped=False)


def _torch_load(path: Path, *, trust: bool, mmap: bool) -> Any:
    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        unsafe = _unsupported_global(str(exc))
        if unsafe:
            raise UnsafePickle(str(path), [unsafe]) from None
        raise BadInput(f"{path}: the checkpoint's pickle is corrupt ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error) as exc:
        raise BadInput(f"{path}: the checkpoint cannot be read ({_first_line(exc)})") from None


def _unsupported_global(message: str) -> str | None:
    # torch words this two ways: "Unsupported global: GLOBAL x.y was not an allowed global" and
    # "Trying to load unsupported GLOBAL x.y whose module x is blocked".
    match = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", message)
    return match.group(1) if match else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _zip_mapping_base(path: Path, content: Any) -> int | None:
    """The address of the file's first byte in torch's memory map, or None if it cannot be proven.

    torch maps the whole file once and gives every storage a slice of it, so each storage's address
    minus its record's offset in the zip is the same number. Storages and records both follow file
    order; when that constant holds for every pair, tensor addresses translate into file offsets.
    """
    storages: dict[int, int] = {}
    for _, tensor in iter_tensors(content):
        storage = tensor.untyped_storage()
        if storage.nbytes() > 0:
            storages[storage.data_ptr()] = storage.nbytes()
    with zipfile.ZipFile(path) as archive:
        records = [
            (info.header_offset, info)
            for info in archive.infolist()
            if "/data/" in info.filename and info.file_size > 0
        ]
        if any(info.compress_type != zipfile.ZIP_STORED for _, info in records):
            return None
        offsets = sorted(_data_offset(path, info) for _, info in records)
    pointers = sorted(storages)
    if not pointers or len(pointers) != len(offsets):
        return None
    bases = {pointer - offset for pointer, offset in zip(pointers, offsets)}
    return bases.pop() if len(bases) == 1 else None


def _data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    # A zip record's data follows its local header: 30 fixed bytes, the name and an extra field.
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len


# -- safetensors ----------------------------------------------------------------------------


def _load_safetensors(path: Path, size: int) -> Checkpoint:
    with path.open("rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadInput(f"{path}: corrupt safetensors header") from None
    data_start = 8 + header_len
    metadata = header.pop("__metadata__", None) or {}
    mapped = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size)
    tensors: dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        try:
            dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
            begin, end = (data_start + int(o) for o in entry["data_offsets"])
            shape = [int(d) for d in entry["shape"]]
        except (KeyError, TypeError, ValueError):
            raise BadInput(f"{path}: corrupt safetensors header entry for {name!r}") from None
        if end > size:
            raise BadInput(f"{path}: the file is truncated ({name!r} ends past the end of the file)")
        tensor = torch.empty(0, dtype=dtype)
        tensor.set_(mapped[begin:end], 0, shape)
        tensors[name] = tensor
    checkpoint = Checkpoint(path, "safetensors", tensors, size, metadata=metadata)
    checkpoint._base_ptr = mapped.data_ptr()
    return checkpoint
