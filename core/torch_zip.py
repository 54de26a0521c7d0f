"""Reading `torch.save` zip checkpoints without torch.

A torch zip holds `<archive>/data.pkl` (the object graph, with each tensor written as a call of
`torch._utils._rebuild_tensor_v2` on a storage id) and one record `<archive>/data/<key>` per
storage (torch/serialization.py, PyTorchStreamWriter). `data.pkl` is read with a plain-data
unpickler whose table knows exactly the globals `torch.save` writes for tensors; each tensor
becomes a `FileTensor` (record, dtype, shape, stride, offset), nothing is read from the records.

Before anything is returned, every storage is checked against its record and every view against
its storage, as `torch.load` (without mmap) checks them: a file whose tensors reach past their
bytes is refused, never read. Compressed (DEFLATE) records are read by decompressing them.
Big-endian files and tensor kinds outside the table are left to `torch.load` (`needs_torch`).
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput
from .safe_pickle import LIBRARY_GLOBALS, PLAIN_GLOBALS, load_plain
from .stored_tensor import BY_STORAGE_CLASS, DTYPES, DType, FileTensor, StorageRecord, iter_tensors

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes
_LOCAL_SIGNATURE = b"PK\x03\x04"
_READABLE_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what torch's miniz reader reads


@dataclass
class TorchZip:
    content: Any  # the object graph, tensors as FileTensor
    unknown_globals: set[str] = field(default_factory=set)  # names outside the table: not loaded
    needs_torch: str | None = None  # why only torch.load can read it faithfully (None: it need not)


@dataclass(frozen=True)
class _StorageType:
    """What `torch.FloatStorage` & co. (and `torch.storage.UntypedStorage`) resolve to."""

    dtype: DType


class _Storage:
    def __init__(self, record: StorageRecord, dtype: DType):
        self.record = record
        self.dtype = dtype


class _RebuildError(Exception):
    pass


def read_torch_zip(path: Path, size: int) -> TorchZip:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise BadInput(
            f"{path}: the file is truncated or corrupt (its zip archive is incomplete)",
            hint="an interrupted download or copy? fetch the file again",
        ) from None
    with archive, open(path, "rb") as raw:
        infos = {info.filename: info for info in archive.infolist()}
        if not infos:
            raise BadInput(f"{path}: an empty zip archive, not a PyTorch checkpoint")
        # torch names every record "<archive>/..." after the first record's folder.
        prefix = next(iter(infos)).split("/", 1)[0]
        pickle_info = infos.get(f"{prefix}/data.pkl")
        if pickle_info is None:
            raise BadInput(f"{path}: a zip archive, but not a PyTorch checkpoint (no data.pkl inside)")
        byteorder = infos.get(f"{prefix}/byteorder")
        if byteorder is not None and _read_record(archive, byteorder, path).strip() != b"little":
            return TorchZip(None, needs_torch="its tensors are stored big-endian")

        storages: dict[str, _Storage] = {}
        unusual: list[str] = []

        def storage_of(pid) -> _Storage:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] in ("storage", b"storage")):
                raise BadInput(f"{path}: the checkpoint's pickle is corrupt (an unknown persistent id)")
            _, storage_type, key, _location, numel = pid
            key = key.decode("ascii") if isinstance(key, bytes) else key
            if key in storages:  # torch.load: the first reference to a key defines its storage
                return storages[key]
            if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
                unusual.append(f"storage {key!r} of {storage_type!r}")
                raise _RebuildError
            info = infos.get(f"{prefix}/data/{key}")
            if info is None:
                raise BadInput(f"{path}: the checkpoint refers to storage data/{key}, which the archive lacks")
            record = StorageRecord(path, info.filename, numel * storage_type.dtype.itemsize,
                                   offset=_data_offset(raw, info, path, size), zip_info=info)
            storages[key] = _Storage(record, storage_type.dtype)
            return storages[key]

        content, unknown = load_plain(
            _read_record(archive, pickle_info, path), _table(), persistent_load=_guarded(storage_of),
            where=f"{path}: the checkpoint's pickle",
        )
    if unusual or _has_unusual(content):
        return TorchZip(None, unknown, needs_torch="it holds tensors of a kind Speechport reads through torch")
    if not unknown:
        for name, tensor in iter_tensors(content, kind=FileTensor):
            problem = _storage_problem(tensor) or tensor.problem()
            if problem:
                raise BadInput(f"{path}: tensor {name!r}: {problem}; the file is corrupt or was crafted")
    return TorchZip(content, unknown)


# -- the table of globals `torch.save` writes for tensors -------------------------------------------


class _Unusual:
    """A tensor rebuilt by a function Speechport leaves to torch (quantized, sparse, subclasses)."""


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        return _Unusual()
    return _tensor(storage, storage.dtype, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    # Written for dtypes without a typed storage class: an untyped (byte) storage plus a dtype.
    if not isinstance(storage, _Storage) or not isinstance(dtype, DType):
        return _Unusual()
    return _tensor(storage, dtype, storage_offset, size, stride)


def _tensor(storage: _Storage, dtype: DType, storage_offset, size, stride) -> FileTensor:
    if not (_ints(size) and _ints(stride) and isinstance(storage_offset, int)):
        raise pickle.UnpicklingError("a tensor's shape, stride or offset is not made of integers")
    return FileTensor(storage.record, dtype, size, stride, storage_offset)


def _ints(values) -> bool:
    return isinstance(values, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


def _size(values=()):
    return tuple(values)


def _table() -> dict[str, Any]:
    table = {**PLAIN_GLOBALS, **LIBRARY_GLOBALS}
    table["torch._utils._rebuild_tensor_v2"] = _rebuild_tensor_v2
    table["torch._utils._rebuild_tensor_v3"] = _rebuild_tensor_v3
    table["torch._utils._rebuild_parameter"] = _rebuild_parameter
    table["torch._utils._rebuild_parameter_with_state"] = _rebuild_parameter_with_state
    table["torch.Size"] = _size
    for class_name, dtype in BY_STORAGE_CLASS.items():
        table[f"torch.{class_name}"] = _StorageType(dtype)
    table["torch.storage.UntypedStorage"] = _StorageType(DTYPES["uint8"])
    for name, dtype in DTYPES.items():
        table[f"torch.{name}"] = dtype
    return table


def _guarded(storage_of):
    def persistent_load(pid):
        try:
            return storage_of(pid)
        except _RebuildError:
            return None  # an unusual storage: the whole file goes to torch.load

    return persistent_load


def _has_unusual(obj: Any) -> bool:
    if isinstance(obj, _Unusual):
        return True
    if isinstance(obj, dict):
        return any(_has_unusual(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_unusual(v) for v in obj)
    return False


def _storage_problem(tensor: FileTensor) -> str | None:
    record = tensor.storage
    info = record.zip_info
    # torch.load (without mmap) requires the record to hold exactly the storage's bytes.
    if info is not None and record.nbytes != info.file_size:
        return f"its storage needs {record.nbytes} bytes but its record {info.filename} holds {info.file_size}"
    return None


# -- zip records ------------------------------------------------------------------------------------


def _read_record(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise BadInput(f"{path}: {info.filename} cannot be read ({exc}); the file is truncated or corrupt") from None


def _data_offset(raw, info: zipfile.ZipInfo, path: Path, size: int) -> int | None:
    """Where a stored record's bytes start in the file; None for a compressed record.

    The data follows the record's local header (30 bytes, the name, an extra field), whose name
    must be the central directory's, as zipfile and torch's reader require.
    """
    if info.compress_type not in _READABLE_COMPRESSION:
        raise BadInput(f"{path}: {info.filename} uses zip compression method {info.compress_type}, "
                       "which torch cannot read either")
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
        raise BadInput(f"{path}: {info.filename}: bad zip local header; the file is truncated or corrupt")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if raw.read(name_len) != info.orig_filename.encode(encoding, errors="replace"):
        raise BadInput(f"{path}: {info.filename}: its local header names another record; the file is corrupt")
    start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    if start + info.compress_size > size:
        raise BadInput(f"{path}: {info.filename} ends past the end of the file; the file is truncated")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    if info.compress_size != info.file_size:
        raise BadInput(f"{path}: {info.filename}: a stored record whose sizes disagree; the file is corrupt")
    return start
