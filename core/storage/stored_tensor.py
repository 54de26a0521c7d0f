"""Tensors as they are stored, read only when their values are needed.

A checkpoint's tensors are described by `StoredTensor`s: dtype, shape and where the bytes are.
Planning needs nothing more, so opening a checkpoint reads no tensor data and needs no torch.
Values are read on demand with `pread` (never through a memory map: a file truncated while it is
read then gives a short read and a clear error instead of a SIGBUS), or copied file-to-file by
the writer when a tensor is one contiguous, uncompressed span of its file (`span()`).

Two kinds exist: `FileTensor` (bytes in a torch zip record or a safetensors file, read by
Speechport's own readers) and `MemoryTensor` (a torch tensor already in memory, for the formats
read through `torch.load`: legacy pickles, unusual tensor types, consented pickles).
"""

from __future__ import annotations

import math
import os
import threading
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BadInput

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DType:
    """A tensor element type: torch's name (without `torch.`), its size and safetensors' code."""

    name: str
    itemsize: int
    safetensors: str | None  # None: safetensors cannot store it
    kind: str  # "float", "int", "uint", "bool", "complex"

    @property
    def is_floating_point(self) -> bool:
        return self.kind == "float"

    def __str__(self) -> str:
        return self.name


_DTYPE_LIST = (
    DType("float64", 8, "F64", "float"),
    DType("float32", 4, "F32", "float"),
    DType("float16", 2, "F16", "float"),
    DType("bfloat16", 2, "BF16", "float"),
    DType("float8_e4m3fn", 1, "F8_E4M3", "float"),
    DType("float8_e5m2", 1, "F8_E5M2", "float"),
    DType("int64", 8, "I64", "int"),
    DType("int32", 4, "I32", "int"),
    DType("int16", 2, "I16", "int"),
    DType("int8", 1, "I8", "int"),
    DType("uint64", 8, "U64", "uint"),
    DType("uint32", 4, "U32", "uint"),
    DType("uint16", 2, "U16", "uint"),
    DType("uint8", 1, "U8", "uint"),
    DType("bool", 1, "BOOL", "bool"),
    DType("complex64", 8, None, "complex"),
    DType("complex128", 16, None, "complex"),
)
DTYPES: dict[str, DType] = {d.name: d for d in _DTYPE_LIST}
BY_SAFETENSORS_CODE: dict[str, DType] = {d.safetensors: d for d in _DTYPE_LIST if d.safetensors}
# The typed storage classes `torch.save` pickles (torch/storage.py _dtype_to_storage_type_map).
BY_STORAGE_CLASS: dict[str, DType] = {
    "DoubleStorage": DTYPES["float64"], "FloatStorage": DTYPES["float32"], "HalfStorage": DTYPES["float16"],
    "BFloat16Storage": DTYPES["bfloat16"], "LongStorage": DTYPES["int64"], "IntStorage": DTYPES["int32"],
    "ShortStorage": DTYPES["int16"], "CharStorage": DTYPES["int8"], "ByteStorage": DTYPES["uint8"],
    "BoolStorage": DTYPES["bool"], "ComplexFloatStorage": DTYPES["complex64"],
    "ComplexDoubleStorage": DTYPES["complex128"],
}
# numpy types of the same width: enough to rearrange bytes without knowing what they mean.
_BYTES_OF_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64, 16: np.dtype("V16")}


@dataclass(frozen=True)
class FileSpan:
    """Where a tensor's bytes lie, contiguous, in its file."""

    offset: int
    nbytes: int


class StoredTensor(ABC):
    """A tensor of a checkpoint: what it is, and how to get its bytes or its values."""

    dtype: DType
    shape: tuple[int, ...]

    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel() * self.dtype.itemsize

    def dim(self) -> int:
        return len(self.shape)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def span(self) -> tuple[Path, FileSpan] | None:
        """The file and the contiguous span holding this tensor's bytes, if there is one."""
        return None

    @abstractmethod
    def contiguous_bytes(self) -> memoryview:
        """The tensor's bytes in row-major order (reads them)."""

    @abstractmethod
    def to_torch(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The values as a torch tensor that owns its memory, optionally cast (reads them)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dtype.name}, {list(self.shape)})"


class StorageRecord:
    """The bytes of one storage: a zip record (stored or compressed) or a range of a plain file."""

    def __init__(self, path: Path, name: str, nbytes: int, *, offset: int | None, zip_info: zipfile.ZipInfo | None = None):
        self.path = path
        self.name = name  # the zip record's name, or the file's name
        self.nbytes = nbytes  # bytes the storage uses (may be fewer than the record holds)
        self.offset = offset  # where the bytes start in the file; None for a compressed record
        self.zip_info = zip_info
        self._lock = threading.Lock()
        self._inflated: bytes | None = None

    @property
    def compressed(self) -> bool:
        return self.offset is None

    def read(self, start: int, length: int) -> memoryview:
        """`length` bytes from `start` within the storage."""
        if start < 0 or length < 0 or start + length > self.nbytes:
            raise BadInput(f"{self.path}: {self.name}: a read past the end of the storage")
        if self.offset is None:
            return memoryview(self._inflate())[start : start + length]
        buffer = bytearray(length)
        view = memoryview(buffer)
        done = 0
        with open(self.path, "rb", buffering=0) as handle:
            fd = handle.fileno()
            while done < length:
                count = os.preadv(fd, [view[done:]], self.offset + start + done)
                if count == 0:
                    raise BadInput(f"{self.path}: the file ended early (was it truncated or replaced while in use?)")
                done += count
        return view

    def _inflate(self) -> bytes:
        # Compressed records cannot be copied or read in place: decompress the whole record once
        # (zipfile checks its CRC), keeping only the latest one in memory.
        with self._lock:
            if self._inflated is None:
                try:
                    with zipfile.ZipFile(self.path) as archive:
                        self._inflated = archive.read(self.zip_info)
                except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                    raise BadInput(f"{self.path}: {self.name} cannot be decompressed ({exc})") from None
                if len(self._inflated) < self.nbytes:
                    raise BadInput(f"{self.path}: {self.name} holds fewer bytes than its tensors need")
            return self._inflated


class FileTensor(StoredTensor):
    """A strided view of a storage in a checkpoint file, as torch describes tensors."""

    def __init__(self, storage: StorageRecord, dtype: DType, shape, stride, storage_offset: int):
        self.storage = storage
        self.dtype = dtype
        self.shape = tuple(int(s) for s in shape)
        self.stride = tuple(int(s) for s in stride)
        self.storage_offset = int(storage_offset)

    def extent(self) -> int:
        """Elements of the storage the view reaches: one past its last element (0 when empty)."""
        if self.numel() == 0:
            return 0
        return self.storage_offset + sum((size - 1) * step for size, step in zip(self.shape, self.stride)) + 1

    def problem(self) -> str | None:
        """Why this view is not a valid view of its storage (None when it is)."""
        if len(self.shape) != len(self.stride):
            return f"shape {list(self.shape)} and stride {list(self.stride)} differ in length"
        if any(s < 0 for s in self.shape) or any(s < 0 for s in self.stride) or self.storage_offset < 0:
            return f"negative shape, stride or offset (shape {list(self.shape)}, stride {list(self.stride)}, offset {self.storage_offset})"
        needed = self.extent() * self.dtype.itemsize
        if needed > self.storage.nbytes:
            return (f"the view needs {needed} bytes (offset {self.storage_offset}, shape {list(self.shape)}, "
                    f"stride {list(self.stride)}, {self.dtype.name}) but its storage holds {self.storage.nbytes}")
        return None

    def is_contiguous(self) -> bool:
        expected = 1
        for size, step in reversed(list(zip(self.shape, self.stride))):
            if size != 1 and step != expected:
                return False
            expected *= size
        return True

    def span(self) -> tuple[Path, FileSpan] | None:
        if self.storage.compressed or not self.is_contiguous() or self.numel() == 0:
            return None
        return self.storage.path, FileSpan(self.storage.offset + self.storage_offset * self.dtype.itemsize, self.nbytes)

    def contiguous_bytes(self) -> memoryview:
        itemsize = self.dtype.itemsize
        if self.numel() == 0:
            return memoryview(b"")
        if self.is_contiguous():
            return self.storage.read(self.storage_offset * itemsize, self.nbytes)
        first = self.storage_offset * itemsize
        raw = self.storage.read(first, self.extent() * itemsize - first)
        elements = np.frombuffer(raw, dtype=_BYTES_OF_WIDTH[itemsize])
        view = np.lib.stride_tricks.as_strided(
            elements, shape=self.shape, strides=[step * itemsize for step in self.stride], writeable=False
        )
        return memoryview(np.ascontiguousarray(view)).cast("B")

    def to_torch(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        import torch

        stored = getattr(torch, self.dtype.name)
        data = self.contiguous_bytes()
        if self.numel() == 0:
            tensor = torch.empty(self.shape, dtype=stored)
        else:
            # A fresh buffer is used as it is; a shared read-only one (an inflated record) is copied.
            buffer = bytearray(data) if data.readonly else data
            tensor = torch.frombuffer(buffer, dtype=stored).reshape(self.shape)
        return tensor if dtype is None or dtype == stored else tensor.to(dtype)


class MemoryTensor(StoredTensor):
    """A tensor torch already read into memory (formats read through `torch.load`)."""

    def __init__(self, tensor: torch.Tensor, where: str = ""):
        import torch

        name = str(tensor.dtype).removeprefix("torch.")
        if name not in DTYPES or tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type != "cpu":
            raise BadInput(f"{where or 'a tensor'}: {tensor.dtype} {tensor.layout} tensors are not supported")
        self.tensor = tensor.detach()
        self.dtype = DTYPES[name]
        self.shape = tuple(tensor.shape)

    def contiguous_bytes(self) -> memoryview:
        import torch

        flat = self.tensor.reshape(-1).contiguous()
        if flat.numel() == 0:
            return memoryview(b"")
        return memoryview(flat.view(torch.uint8).numpy()).cast("B")

    def to_torch(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        tensor = self.tensor.clone()
        return tensor if dtype is None or dtype == tensor.dtype else tensor.to(dtype)


def iter_tensors(obj: Any, prefix: str = "", kind: type = StoredTensor) -> Iterator[tuple[str, Any]]:
    """Every tensor (of `kind`) inside nested dicts, lists and tuples, named by its dotted path."""
    if isinstance(obj, kind):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from iter_tensors(value, f"{prefix}.{key}" if prefix else str(key), kind)
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from iter_tensors(value, f"{prefix}.{index}" if prefix else str(index), kind)
