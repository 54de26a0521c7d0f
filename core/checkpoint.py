"""Opening checkpoint files safely, reading no tensor data until it is needed.

Torch zip checkpoints and `.safetensors` files are read by Speechport's own readers
(`torch_zip`, `safetensors_file`): they run no code from the file, need no torch, validate every
tensor against the bytes that hold it, and describe each tensor as a `StoredTensor` (dtype,
shape, where its bytes are). What they cannot read faithfully goes to `torch.load`:
legacy (non-zip) pickles, big-endian files and unusual tensor kinds with `weights_only=True`,
and — only with the user's explicit consent — pickles that need other globals.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadInput, UnsafePickle
from .files import regular_file, unreadable
from .library_guard import need_libraries
from .safe_pickle import PLAIN_GLOBALS
from .safetensors_file import looks_like_safetensors, read_safetensors
from .stored_tensor import FileSpan, MemoryTensor, StoredTensor, iter_tensors
from .torch_zip import read_torch_zip

if TYPE_CHECKING:
    import torch

__all__ = ["Checkpoint", "FileSpan", "StoredTensor", "as_torch", "iter_tensors", "load_checkpoint"]

# Harmless globals that real speech checkpoints pickle besides tensors. S3PRL's run_downstream.py
# saves its command-line arguments as `Args` (an argparse.Namespace); everything else is refused.
ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

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


@dataclass
class Checkpoint:
    """An opened checkpoint: its top-level object, tensors as `StoredTensor`s."""

    path: Path
    container: str  # "torch" (zip), "torch-legacy" (old tar/pickle format) or "safetensors"
    content: Any  # the unpickled top-level object; a dict of tensors for safetensors
    size: int
    trusted: bool = False  # loaded beyond the allow-list, with the user's consent
    reader: str = "speechport"  # "speechport" (own reader) or "torch.load" (see the module docstring)
    metadata: dict[str, str] = field(default_factory=dict)

    def top_level_keys(self) -> list[str]:
        return [str(k) for k in self.content] if isinstance(self.content, dict) else []

    def stored_dtypes(self) -> dict[str, int]:
        """How many tensors of each stored dtype the checkpoint holds."""
        counts: dict[str, int] = {}
        for _, tensor in iter_tensors(self.content):
            counts[tensor.dtype.name] = counts.get(tensor.dtype.name, 0) + 1
        return dict(sorted(counts.items()))


def load_checkpoint(path: str | os.PathLike, *, trust_pickle: bool = False) -> Checkpoint:
    """Open a checkpoint file safely; raise `BadInput` with one clear sentence when it cannot be."""
    path = Path(path)
    regular_file(path, "checkpoint file")  # a FIFO or a device would block the read below forever
    head = _read_head(path)
    size = path.stat().st_size
    if head.startswith(b"PK\x03\x04"):
        return _load_torch_zip(path, size, trust_pickle)
    if looks_like_safetensors(head, size):
        tensors, metadata = read_safetensors(path, size)
        return Checkpoint(path, "safetensors", tensors, size, metadata=metadata)
    if head[:1] == b"\x80":  # pickle protocol 2+: torch.save(_use_new_zipfile_serialization=False)
        return _load_torch_legacy(path, size, trust_pickle)
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise BadInput(f"{path}: this is {what}, not a checkpoint")
    if path.suffix == ".safetensors" and len(head) >= 8:
        raise BadInput(f"{path}: the file is truncated or corrupt (its safetensors header is incomplete)")
    raise BadInput(
        f"{path}: not a checkpoint Speechport can read",
        hint="expected a PyTorch .pt/.ckpt file or a .safetensors file",
    )


def as_torch(obj: Any, float_dtype: torch.dtype | None = None) -> Any:
    """`obj` with every stored tensor read into a torch tensor, floating ones cast to `float_dtype`.

    The original models run in float32 whatever a checkpoint stores (`float_dtype=torch.float32`),
    so that a half-precision file is compared on its values, not on the arithmetic of its dtype.
    """
    if isinstance(obj, StoredTensor):
        return obj.to_torch(float_dtype if obj.is_floating_point() else None)
    if isinstance(obj, dict):
        return {key: as_torch(value, float_dtype) for key, value in obj.items()}
    if isinstance(obj, list):
        return [as_torch(v, float_dtype) for v in obj]
    if isinstance(obj, tuple):
        return tuple(as_torch(v, float_dtype) for v in obj)
    return obj


# -- format sniffing ------------------------------------------------------------------------


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise unreadable(path, exc, "checkpoint file") from None
    if not head:
        raise BadInput(f"{path}: the file is empty (0 bytes), not a checkpoint")
    return head


# -- torch pickles --------------------------------------------------------------------------


def _load_torch_zip(path: Path, size: int, trust_pickle: bool) -> Checkpoint:
    read = read_torch_zip(path, size)
    if not read.unknown_globals and read.needs_torch is None:
        return Checkpoint(path, "torch", read.content, size)
    unsafe = sorted(read.unknown_globals - _globals_torch_allows())
    if unsafe and not trust_pickle:
        raise UnsafePickle(str(path), unsafe)
    # Globals torch allows but Speechport does not read itself, big-endian data, unusual tensors:
    # torch.load reads them (into memory, so that nothing is mapped from a file that may change).
    content = _torch_load(path, trust=bool(unsafe))
    return Checkpoint(path, "torch", _stored(content, path), size, trusted=bool(unsafe), reader="torch.load")


def _load_torch_legacy(path: Path, size: int, trust_pickle: bool) -> Checkpoint:
    # The legacy format is several pickles in a row; weights_only still refuses anything unsafe,
    # and names it in its message.
    try:
        content = _torch_load(path, trust=False)
    except UnsafePickle:
        if not trust_pickle:
            raise
        content = _torch_load(path, trust=True)
        return Checkpoint(path, "torch-legacy", _stored(content, path), size, trusted=True, reader="torch.load")
    return Checkpoint(path, "torch-legacy", _stored(content, path), size, reader="torch.load")


def _globals_torch_allows() -> set[str]:
    """What `torch.load(weights_only=True)` accepts, plus Speechport's own allow-list."""
    need_libraries("telling which pickled globals torch allows")
    import torch

    allowed = {f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_GLOBALS} | set(PLAIN_GLOBALS)
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed |= set(_get_allowed_globals())
    except ImportError:  # a torch without that table: whatever Speechport does not read is refused
        pass
    allowed |= {f"{g.__module__}.{g.__qualname__}" for g in torch.serialization.get_safe_globals() if isinstance(g, type)}
    return allowed


def _torch_load(path: Path, *, trust: bool) -> Any:
    need_libraries(f"reading {path.name} (torch.load)")
    import torch

    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsupported_global(str(exc))
        if unsafe:
            raise UnsafePickle(str(path), [unsafe]) from None
        raise BadInput(f"{path}: the checkpoint's pickle is corrupt ({_first_line(exc)})") from None
    except ModuleNotFoundError as exc:
        raise BadInput(f"{path}: the checkpoint needs the Python module {exc.name!r}, which is not installed "
                       "(it pickles objects of that module)") from None
    except (ImportError, AttributeError) as exc:
        raise BadInput(f"{path}: the checkpoint needs code that is not available here ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error, TypeError, KeyError, IndexError) as exc:
        raise BadInput(f"{path}: the checkpoint cannot be read ({_first_line(exc)})") from None


def _stored(obj: Any, path: Path, where: str = "") -> Any:
    """What torch.load returned, with tensors as `MemoryTensor` (a pickled module as its state dict)."""
    import torch

    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, torch.Tensor):
        return MemoryTensor(obj, f"{path}: tensor {where!r}")
    if isinstance(obj, dict):
        for key, value in list(obj.items()):
            obj[key] = _stored(value, path, f"{where}.{key}" if where else str(key))
        return obj
    if isinstance(obj, list):
        return [_stored(v, path, f"{where}.{i}" if where else str(i)) for i, v in enumerate(obj)]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_stored(v, path, f"{where}.{i}" if where else str(i)) for i, v in enumerate(obj))
    return obj


def _unsupported_global(message: str) -> str | None:
    # torch words this two ways: "Unsupported global: GLOBAL x.y was not an allowed global" and
    # "Trying to load unsupported GLOBAL x.y whose module x is blocked".
    match = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", message)
    return match.group(1) if match else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
