"""Reading `torch.save` zip checkpoints without torch.

A torch zip holds `<archive>/data.pkl` (the object graph, with each tensor written as a call of
`torch._utils._rebuild_tensor_v2` on a storage id) and one record `<archive>/data/<key>` per
storage (torch/serialization.py, PyTorchStreamWriter). `data.pkl` is read with a plain-data
unpickler whose table knows exactly the globals `torch.save` writes for tensors; each tensor
becomes a `FileTensor` (record, dtype, shape, stride, offset), nothing is read from the records.

Before anything is returned, every storage is checked against its record and every view against
its storage, as `torch.load` (without mmap) checks them: a file whose tensors reach past their
bytes is refused, never read. Compressed (DEFLATE) records are read by decompressing them.
Big-endian files and tensor kinds outside the table are left to `torch.load` (`needs_torch`), and
so are legacy (non-zip) files; their pickles are read here all the same, first, so that what they
build is bounded (`safe_pickle.item_limit`) and the globals they need are known.
"""

from __future__ import annotations

import pickle
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput, named, quoted
from .safe_pickle import LIBRARY_GLOBALS, NUMPY_GLOBALS, PLAIN_GLOBALS, load_plain
from .stored_tensor import BY_STORAGE_CLASS, DTYPES, DType, FileTensor, StorageRecord, iter_tensors

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes
_LOCAL_SIGNATURE = b"PK\x03\x04"
_READABLE_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what torch's miniz reader reads


@dataclass
class TorchZip:
    content: Any  # the object graph, tensors as FileTensor
    unknown_globals: set[str] = field(default_factory=set)  # names outside the table: not loaded
    needs_torch: str | None = None  # why only torch.load can read it faithfully (None: it need not)
    pickle_size: int = 0  # bytes of data.pkl: what bounds what it may build (safe_pickle.item_limit)


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


# A pickle of a state dict takes about 90 bytes a tensor (a 7,680-tensor one is 669 KB); 64 MiB is far
# past any real checkpoint's and bounds what a compressed record can unpack into before it is read.
MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_BYTEORDER_BYTES = 64


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
        big_endian = byteorder is not None and _read_record(archive, byteorder, path, MAX_BYTEORDER_BYTES).strip() != b"little"

        storages: dict[str, _Storage] = {}
        unusual: list[str] = []  # what only torch rebuilds, noted as the pickle builds it

        def storage_of(pid) -> _Storage:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] in ("storage", b"storage")):
                raise BadInput(f"{path}: the checkpoint's pickle is corrupt (an unknown persistent id)")
            _, storage_type, key, _location, numel = pid
            key = key.decode("ascii", errors="replace") if isinstance(key, bytes) else key
            if not isinstance(key, str):
                raise BadInput(f"{path}: the checkpoint's pickle is corrupt (a storage key that is not a name)")
            if key in storages:  # torch.load: the first reference to a key defines its storage
                return storages[key]
            if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
                unusual.append(f"storage {quoted(key)}")
                raise _RebuildError
            info = infos.get(f"{prefix}/data/{key}")
            if info is None:
                raise BadInput(f"{path}: the checkpoint refers to storage data/{named(key)}, which the archive lacks")
            record = StorageRecord(path, info.filename, numel * storage_type.dtype.itemsize,
                                   offset=_data_offset(raw, info, path, size), zip_info=info)
            storages[key] = _Storage(record, storage_type.dtype)
            return storages[key]

        data = _read_record(archive, pickle_info, path, MAX_PICKLE_BYTES)
        content, unknown = load_plain(data, _table(unusual), persistent_load=_guarded(storage_of),
                                      where=f"{path}: the checkpoint's pickle")
    # A file that goes to torch.load has had its pickle read here all the same: refused, or known to
    # build no more than its size allows, and what globals it needs.
    if big_endian:
        return TorchZip(None, unknown, needs_torch="its tensors are stored big-endian", pickle_size=len(data))
    if unusual:
        return TorchZip(None, unknown, needs_torch="it holds tensors of a kind Speechport reads through torch",
                        pickle_size=len(data))
    if not unknown:
        for name, tensor in iter_tensors(content, kind=FileTensor):
            problem = _storage_problem(tensor) or tensor.problem()
            if problem:
                raise BadInput(f"{path}: tensor {quoted(name)}: {problem}; the file is corrupt or was crafted")
    return TorchZip(content, unknown, pickle_size=len(data))


# The pickles of torch's legacy (non-zip) format, in a row: a magic number, the format's version,
# system information, the object, its storages' keys; then the storages' bytes.
_LEGACY_PICKLES = 5


def read_legacy_pickles(path: Path, size: int) -> set[str]:
    """Read a legacy-format file's pickles as a zip's pickle is read (the same limits on what they
    build; no tensor is rebuilt) before torch.load reads the file; returns the globals outside the
    table they need."""
    unknown: set[str] = set()
    with open(path, "rb") as handle:
        for _ in range(_LEGACY_PICKLES):
            _, needed = load_plain(handle, _table([]), persistent_load=lambda pid: None, pickle_bytes=size,
                                   where=f"{path}: the checkpoint's pickle")
            unknown |= needed
    return unknown


# -- the table of globals `torch.save` writes for tensors -------------------------------------------


def _rebuilders(unusual: list[str]) -> dict[str, Any]:
    """torch's tensor rebuild functions; a tensor on a storage Speechport does not read (one
    torch.load alone rebuilds) is noted in `unusual` and read as None."""

    def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                          metadata=None):
        if not isinstance(storage, _Storage):
            unusual.append("a tensor on an unusual storage")
            return None
        return _tensor(storage, storage.dtype, storage_offset, size, stride)

    def rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
        # Written for dtypes without a typed storage class: an untyped (byte) storage plus a dtype.
        if not isinstance(storage, _Storage) or not isinstance(dtype, DType):
            unusual.append("a tensor on an unusual storage or of an unusual dtype")
            return None
        return _tensor(storage, dtype, storage_offset, size, stride)

    return {"torch._utils._rebuild_tensor_v2": rebuild_tensor_v2, "torch._utils._rebuild_tensor_v3": rebuild_tensor_v3}


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


_DEVICE_TYPE = re.compile(r"[a-z_]{1,32}(:[0-9]{1,6})?")


def _device(kind, index=None) -> str:
    """`torch.device('cuda', 0)` (where a tensor was, kept in training state): its name, 'cuda:0'."""
    if not (isinstance(kind, str) and _DEVICE_TYPE.fullmatch(kind)
            and (index is None or (type(index) is int and 0 <= index < 1_000_000 and ":" not in kind))):
        raise pickle.UnpicklingError("a torch.device that is not a device name")
    return kind if index is None else f"{kind}:{index}"


# Globals torch.save writes beside tensors, read as plain data: sizes, devices.
TORCH_VALUE_GLOBALS: dict[str, Any] = {"torch.Size": _size, "torch.device": _device}


def _table(unusual: list[str]) -> dict[str, Any]:
    table = {**PLAIN_GLOBALS, **LIBRARY_GLOBALS, **NUMPY_GLOBALS, **TORCH_VALUE_GLOBALS, **_rebuilders(unusual)}
    table["torch._utils._rebuild_parameter"] = _rebuild_parameter
    table["torch._utils._rebuild_parameter_with_state"] = _rebuild_parameter_with_state
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


def _storage_problem(tensor: FileTensor) -> str | None:
    record = tensor.storage
    info = record.zip_info
    # torch.load (without mmap) requires the record to hold exactly the storage's bytes.
    if info is not None and record.nbytes != info.file_size:
        return f"its storage needs {record.nbytes} bytes but its record {info.filename} holds {info.file_size}"
    return None


# -- zip records ------------------------------------------------------------------------------------


def _read_record(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limit: int) -> bytes:
    """A small record read whole (the pickle, the byte order): refused unread when the size it declares
    is past `limit`, so a compressed record cannot unpack into more memory than a checkpoint needs."""
    if info.file_size > limit:
        raise BadInput(f"{path}: {named(info.filename)} unpacks to {info.file_size:,} bytes; a checkpoint's "
                       f"{'pickle' if info.filename.endswith('.pkl') else 'record'} is at most {limit:,} bytes")
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
