"""Opening checkpoint files safely, reading no tensor data until it is needed.

Torch zip checkpoints and `.safetensors` files are read by Speechport's own readers
(`torch_zip`, `safetensors_file`): they run no code from the file, need no torch, validate every
tensor against the bytes that hold it, and describe each tensor as a `StoredTensor` (dtype,
shape, where its bytes are). What they cannot read faithfully goes to `torch.load`:
legacy (non-zip) pickles, big-endian files and unusual tensor kinds with `weights_only=True`,
and — only with the user's explicit consent — pickles that need other globals.

Whichever reads a pickle, what Speechport reads as plain data reads the same: torch.load is given
Speechport's stand-ins for omegaconf, fairseq and numpy values, so neither library need be
installed, and a consented pickle whose classes cannot be imported here (a training script's
`__main__.TrainState`) keeps their state in stand-ins (`safe_pickle.StandIn`).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import struct
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadInput, ConsentNeeded, UnsafePickle, quoted
from ..library_guard import need_libraries
from .files import regular_file, unreadable
from .safe_pickle import (
    LIBRARY_GLOBALS,
    NUMPY_GLOBALS,
    PLAIN_GLOBALS,
    RECORDED_GLOBALS,
    full_name,
    missing_class,
    settle,
)
from .safetensors_file import looks_like_safetensors, read_safetensors
from .stored_tensor import FileSpan, MemoryTensor, StoredTensor, iter_tensors
from .torch_zip import read_legacy_pickles, read_torch_zip

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
    # Globals torch allows but Speechport does not read itself, big-endian data, unusual tensors:
    # torch.load reads them (into memory, so that nothing is mapped from a file that may change).
    # Speechport's own reader has read the pickle first, bounding what it builds.
    return _through_torch(path, size, "torch", read.unknown_globals, trust_pickle, read.pickle_size or size)


def _load_torch_legacy(path: Path, size: int, trust_pickle: bool) -> Checkpoint:
    # The legacy format is several pickles in a row, read by Speechport's reader first as well (what
    # they build bounded by the whole file's size).
    return _through_torch(path, size, "torch-legacy", read_legacy_pickles(path, size), trust_pickle, size)


def _through_torch(path: Path, size: int, container: str, needed: set[str], trust_pickle: bool,
                   pickle_bytes: int) -> Checkpoint:
    """torch.load reads the file: with weights_only=True when every global it needs is allowed,
    else only with the user's consent. A refusal names exactly the globals that are not allowed."""
    unsafe = sorted(needed - _globals_torch_allows()) if needed else []
    if unsafe and not trust_pickle:
        raise UnsafePickle(str(path), unsafe)
    if not unsafe:
        try:
            content = _torch_load(path, trust=False, pickle_bytes=pickle_bytes)
            return Checkpoint(path, container, _stored(content, path), size, reader="torch.load")
        except (UnsafePickle, _SafeLoaderRefuses):
            if not trust_pickle:
                raise
    content = _torch_load(path, trust=True, pickle_bytes=pickle_bytes)
    return Checkpoint(path, container, _stored(content, path), size, trusted=True, reader="torch.load")


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


class _TrustedUnpickler(pickle.Unpickler):
    """The standard unpickler, for a pickle the user trusts, with two differences: omegaconf and
    fairseq objects read as the same plain data as without consent (neither library is imported),
    and a class that cannot be imported here becomes a stand-in that keeps the state the pickle
    gives it. A class of `__main__` is the training script's: it is never looked up in Speechport's
    own `__main__`, and nothing else is imported to find it."""

    def find_class(self, module, name):
        full = full_name(module, name)
        if full in RECORDED_GLOBALS:
            return RECORDED_GLOBALS[full]
        if full.startswith("__main__."):
            return missing_class(full)
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return missing_class(full)


# What torch.load is given as its pickle module for a trusted pickle (it uses Unpickler and load).
_TRUSTED_PICKLE = types.ModuleType("speechport_trusted_pickle")
_TRUSTED_PICKLE.Unpickler = _TrustedUnpickler
_TRUSTED_PICKLE.load = lambda file, **kwargs: _TrustedUnpickler(file, **kwargs).load()


class _SafeLoaderRefuses(ConsentNeeded):
    """torch.load(weights_only=True) refuses a pickle for a reason other than a global (it fills no
    dict subclass but OrderedDict and Counter, say): loaded only with consent, as an unsafe pickle is."""

    def __init__(self, path: Path, exc: Exception):
        super().__init__(f"{path}: torch's weights-only loader refuses its pickle ({_first_line(exc)})",
                         hint="load it only if you trust where this file came from",
                         cli_hint="to load it anyway: --trust-pickle")


def _plain_globals_for_torch() -> list:
    """Speechport's plain-data globals, as torch.serialization.safe_globals takes them (name, value)."""
    speechport = {**PLAIN_GLOBALS, **LIBRARY_GLOBALS, **NUMPY_GLOBALS}
    return [*ALLOWED_GLOBALS, *((value, name) for name, value in speechport.items())]


def _torch_load(path: Path, *, trust: bool, pickle_bytes: int) -> Any:
    need_libraries(f"reading {path.name} (torch.load)")
    import torch

    try:
        if trust:
            content = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_TRUSTED_PICKLE)
        else:
            with torch.serialization.safe_globals(_plain_globals_for_torch()):
                content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsupported_global(str(exc))
        if unsafe:
            raise UnsafePickle(str(path), [unsafe]) from None
        if not trust:  # Speechport's reader read this pickle: what torch's stricter loader refuses is not corruption
            raise _SafeLoaderRefuses(path, exc) from None
        raise BadInput(f"{path}: the checkpoint's pickle is corrupt ({_first_line(exc)})") from None
    except ModuleNotFoundError as exc:
        raise BadInput(f"{path}: the checkpoint needs the Python module {quoted(exc.name)}, which is not installed "
                       "(it pickles objects of that module)") from None
    except (ImportError, AttributeError) as exc:
        raise BadInput(f"{path}: the checkpoint needs code that is not available here ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error, TypeError, KeyError, IndexError) as exc:
        raise BadInput(f"{path}: the checkpoint cannot be read ({_first_line(exc)})") from None
    # Recorded objects to plain data, stand-ins to dicts; and no container inside itself, too deep or
    # too large as a tree for the code that walks it.
    return settle(content, pickle_bytes=pickle_bytes, where=f"{path}: the checkpoint's pickle")


def _stored(obj: Any, path: Path, where: str = "", _done: dict[int, Any] | None = None) -> Any:
    """What torch.load returned, with tensors as `MemoryTensor` (a pickled module as its state dict).
    Each object is converted once: one shared by two keys stays one."""
    import torch

    done = {} if _done is None else _done
    if id(obj) in done:
        return done[id(obj)][1]
    original = obj
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, torch.Tensor):
        obj = MemoryTensor(obj, f"{path}: tensor {quoted(where)}")
    elif isinstance(obj, torch.device):
        obj = str(obj)  # 'cuda:0', as Speechport's own reader reads a device
    elif isinstance(obj, dict):
        for key, value in list(obj.items()):
            obj[key] = _stored(value, path, f"{where}.{key}" if where else str(key), done)
    elif isinstance(obj, list):
        obj = [_stored(v, path, f"{where}.{i}" if where else str(i), done) for i, v in enumerate(obj)]
    elif isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        obj = tuple(_stored(v, path, f"{where}.{i}" if where else str(i), done) for i, v in enumerate(obj))
    done[id(original)] = (original, obj)  # the original is kept so that its id is not reused meanwhile
    return obj


def _unsupported_global(message: str) -> str | None:
    # torch words this two ways: "Unsupported global: GLOBAL x.y was not an allowed global" and
    # "Trying to load unsupported GLOBAL x.y whose module x is blocked".
    match = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", message)
    return match.group(1) if match else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
