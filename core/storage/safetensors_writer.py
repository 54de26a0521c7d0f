"""Streaming safetensors writer: one tensor at a time, straight from the source file.

The safetensors layout is a JSON header followed by the raw bytes of each tensor. Because every
header field is known from shapes and dtypes alone, the header is written first and each tensor's
bytes are then copied file-to-file (`os.copy_file_range`) from where they lie in the checkpoint,
never passing through this process's memory. Tensors that are not a plain span of their file are
read (`pread`) and written one at a time. Peak memory is therefore one tensor, not the model.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..progress import Progress
from .stored_tensor import StoredTensor

DEFAULT_MAX_SHARD_SIZE = "50GB"  # transformers' save_pretrained default
# Units of --max-shard-size: huggingface_hub's decimal ones, and their binary cousins.
_SIZE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]i?B)?\s*$", re.IGNORECASE)
_COPY_CHUNK = 64 << 20  # bytes per copy call: the granularity of progress and cancel



def parse_size(text: str | int) -> int:
    """A shard size in bytes: an integer, or a number with a unit ("5GB", "500MB", "2GiB")."""
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        match = _SIZE.match(str(text))
        if match is None:
            raise BadInput(f"{text!r} is not a size: give bytes (e.g. 1000000) or a number with a unit "
                           "(KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 5GB")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()] if match.group(2) else float(match.group(1)))
    if size <= 0:
        raise BadInput(f"{text!r}: a shard size must be more than 0 bytes")
    return size


@dataclass(frozen=True)
class WriteItem:
    name: str  # the key in the output file
    tensor: StoredTensor  # knows the file (and span) holding its bytes

    @property
    def nbytes(self) -> int:
        return self.tensor.nbytes


@dataclass(frozen=True)
class WrittenWeights:
    files: list[str]
    total_bytes: int
    sharded: bool
    copied_in_kernel: int  # tensors copied file-to-file
    written_from_memory: int


def write_weights(
    folder: Path, items: Sequence[WriteItem], progress: Progress, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE
) -> WrittenWeights:
    """Write `model.safetensors`, or shards plus `model.safetensors.index.json` above the shard size."""
    from huggingface_hub import split_state_dict_into_shards_factory
    from huggingface_hub.constants import SAFETENSORS_WEIGHTS_FILE_PATTERN

    for item in items:
        if item.tensor.dtype.safetensors is None:
            raise BadInput(f"{item.name}: dtype {item.tensor.dtype} cannot be stored in safetensors")
    total = sum(item.nbytes for item in items)
    free = shutil.disk_usage(folder).free
    if free < total + (16 << 20):
        raise BadInput(f"{folder.parent}: not enough free space: the weights need {_size(total)}, {_size(free)} free")

    # Shard boundaries as transformers would draw them (huggingface_hub's splitter, given sizes).
    by_name = {item.name: item for item in items}
    split = split_state_dict_into_shards_factory(
        by_name, max_shard_size=parse_size(max_shard_size), filename_pattern=SAFETENSORS_WEIGHTS_FILE_PATTERN,
        get_storage_size=lambda item: item.nbytes, get_storage_id=lambda item: None,
    )

    progress.stage("writing weights", items_total=len(items), bytes_total=total)
    copier = _Copier()
    try:
        for filename, names in split.filename_to_tensors.items():
            ordered = sorted((by_name[n] for n in names), key=_storage_order)
            _write_file(folder / filename, ordered, copier, progress)
    finally:
        copier.close()
    if split.is_sharded:
        index = {"metadata": dict(split.metadata), "weight_map": dict(sorted(split.tensor_to_filename.items()))}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    progress.finish()
    files = list(split.filename_to_tensors) + (["model.safetensors.index.json"] if split.is_sharded else [])
    return WrittenWeights(files, total, split.is_sharded, copier.in_kernel, copier.from_memory)


def _storage_order(item: WriteItem) -> tuple[int, str]:
    # Larger element sizes first keeps every tensor aligned to its element size, as the
    # safetensors library does; names make the file independent of the source's layout.
    return (-item.tensor.dtype.itemsize, item.name)


def _header(items: Sequence[WriteItem]) -> bytes:
    entries: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for item in items:
        entries[item.name] = {
            "dtype": item.tensor.dtype.safetensors,
            "shape": list(item.tensor.shape),
            "data_offsets": [offset, offset + item.nbytes],
        }
        offset += item.nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    return header + b" " * (-len(header) % 8)  # pad so the data starts 8-byte aligned


def _write_file(path: Path, items: Sequence[WriteItem], copier: _Copier, progress: Progress) -> None:
    header = _header(items)
    # Unbuffered, so the file position seen by copy_file_range and by write() is the same one.
    with path.open("wb", buffering=0) as out:
        _write_all(out, len(header).to_bytes(8, "little") + header)
        for item in items:
            progress.check()
            copier.copy(item, out, progress)
            progress.advance(items=1)


class _Copier:
    """Copies a tensor's bytes into an open output file, file-to-file when it can."""

    def __init__(self):
        self._sources: dict[Path, int] = {}
        self._kernel_copy = hasattr(os, "copy_file_range")
        self.in_kernel = 0
        self.from_memory = 0

    def copy(self, item: WriteItem, out, progress: Progress) -> None:
        located = item.tensor.span() if self._kernel_copy else None
        if located is not None and located[1].nbytes == item.nbytes:
            source, span = located
            try:
                self._copy_span(source, span.offset, span.nbytes, out, progress)
                self.in_kernel += 1
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF):
                    raise
                self._kernel_copy = False  # this filesystem pair cannot; use memory from now on
        self._write_from_memory(item, out, progress)
        self.from_memory += 1

    def _copy_span(self, source: Path, offset: int, nbytes: int, out, progress: Progress) -> None:
        source_fd = self._sources.get(source)
        if source_fd is None:
            source_fd = self._sources[source] = os.open(source, os.O_RDONLY)
        start = out.tell()
        done = 0
        try:
            while done < nbytes:
                progress.check()
                count = os.copy_file_range(source_fd, out.fileno(), min(_COPY_CHUNK, nbytes - done), offset + done)
                if count == 0:
                    raise BadInput(f"{source}: the file ended early (was it truncated while converting?)")
                done += count
                progress.advance(nbytes=count)
        except OSError:
            out.seek(start)  # undo a partial copy before falling back
            out.truncate()
            progress.advance(nbytes=-done)
            raise
        out.seek(start + nbytes)

    def _write_from_memory(self, item: WriteItem, out, progress: Progress) -> None:
        raw = item.tensor.contiguous_bytes()  # read with pread, or already in memory
        for start in range(0, item.nbytes, _COPY_CHUNK):
            progress.check()
            _write_all(out, raw[start : start + _COPY_CHUNK])
            progress.advance(nbytes=min(_COPY_CHUNK, item.nbytes - start))

    def close(self) -> None:
        for fd in self._sources.values():
            os.close(fd)
        self._sources.clear()


def _write_all(out, data) -> None:
    view = memoryview(data)
    while view:
        view = view[out.write(view) :]


def _size(nbytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""
