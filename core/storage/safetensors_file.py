"""Reading `.safetensors` files: the header is JSON, each tensor one span of the file.

The header is validated exactly as the safetensors library validates it (safetensors/src/
tensor.rs, `Metadata::validate` and `read_metadata`): tensors sorted by their data offsets must
tile the data section with no gap and no overlap, each span must hold exactly dtype size × shape
bytes, the data must end where the file ends, and `__metadata__` must map strings to strings.
Speechport checks these itself so that the refusal names the tensor, then lets the library
itself open the file as a second witness: what it refuses is refused too.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from ..errors import BadInput
from .stored_tensor import BY_SAFETENSORS_CODE, FileTensor, StorageRecord

MAX_HEADER_BYTES = 100_000_000  # safetensors' MAX_HEADER_SIZE
WEIGHTS_NAME = "model.safetensors"  # transformers' SAFE_WEIGHTS_NAME
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"  # transformers' SAFE_WEIGHTS_INDEX_NAME
METADATA_KEY = "__metadata__"


def looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 0 < header_len <= size - 8 and head[8:9] == b"{"


def read_safetensors(path: Path, size: int) -> tuple[dict[str, FileTensor], dict[str, str]]:
    """Every tensor of the file (nothing read but the header) and its `__metadata__`."""
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > MAX_HEADER_BYTES:
            raise BadInput(f"{path}: the safetensors header claims {header_len} bytes (the limit is {MAX_HEADER_BYTES})")
        raw = handle.read(header_len)
    if len(raw) != header_len:
        raise BadInput(f"{path}: the file is truncated (its safetensors header is incomplete)")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, _Duplicate) as exc:
        raise BadInput(f"{path}: corrupt safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise BadInput(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop(METADATA_KEY, None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise BadInput(f"{path}: the safetensors {METADATA_KEY} must map strings to strings")
    data_start = 8 + header_len
    entries = []
    for name, entry in header.items():
        entries.append((name, *_parse_entry(path, name, entry)))
    entries.sort(key=lambda e: e[3])  # by data offsets, as the library validates them
    tensors: dict[str, FileTensor] = {}
    end_of_previous, previous = 0, None
    for name, dtype, shape, (begin, end) in entries:
        if end < begin:
            raise BadInput(f"{path}: tensor {name!r}: its data offsets are reversed ({begin} > {end})")
        if begin < end_of_previous:
            raise BadInput(f"{path}: tensor {name!r}: its data overlaps tensor {previous!r}'s")
        if begin > end_of_previous:
            raise BadInput(f"{path}: tensor {name!r}: a gap of {begin - end_of_previous} bytes precedes its data")
        needed = math.prod(shape) * dtype.itemsize
        if end - begin != needed:
            raise BadInput(f"{path}: tensor {name!r}: {dtype.safetensors} {list(shape)} needs {needed} bytes, "
                           f"its data offsets hold {end - begin}")
        record = StorageRecord(path, name, needed, offset=data_start + begin)
        tensors[name] = FileTensor(record, dtype, shape, _contiguous_stride(shape), 0)
        end_of_previous, previous = end, name
    if data_start + end_of_previous != size:
        if data_start + end_of_previous > size:
            raise BadInput(f"{path}: the file is truncated (its tensors need {data_start + end_of_previous} bytes, "
                           f"the file has {size})")
        raise BadInput(f"{path}: {size - data_start - end_of_previous} bytes follow the last tensor's data; "
                       "the safetensors library refuses such a file")
    _library_opens(path)
    return tensors, dict(metadata or {})


def _parse_entry(path: Path, name: str, entry):
    if not isinstance(entry, dict):
        raise BadInput(f"{path}: tensor {name!r}: corrupt safetensors header entry")
    dtype = BY_SAFETENSORS_CODE.get(entry.get("dtype")) if isinstance(entry.get("dtype"), str) else None
    if dtype is None:
        raise BadInput(f"{path}: tensor {name!r}: unknown dtype {entry.get('dtype')!r}")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(shape, list) and all(_natural(d) for d in shape)):
        raise BadInput(f"{path}: tensor {name!r}: its shape {shape!r} is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise BadInput(f"{path}: tensor {name!r}: its data offsets {offsets!r} are not two integers")
    if offsets[0] < 0 or offsets[1] < 0:
        raise BadInput(f"{path}: tensor {name!r}: negative data offsets {offsets}")
    return dtype, tuple(shape), tuple(offsets)


def _natural(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _contiguous_stride(shape) -> tuple[int, ...]:
    stride, step = [], 1
    for size in reversed(shape):
        stride.append(step)
        step *= max(size, 1)
    return tuple(reversed(stride))


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(f"{key!r} appears twice")
        seen[key] = value
    return seen


def _library_opens(path: Path) -> None:
    """The safetensors library's own verdict on the file (it reads the header only)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy"):
            pass
    except (SafetensorError, OSError) as exc:
        text = str(exc).strip().splitlines()
        raise BadInput(f"{path}: the safetensors library refuses this file ({text[0][:200] if text else type(exc).__name__})") from None


def weight_files(folder: str | Path) -> list[str]:
    """The safetensors files of a transformers folder: `model.safetensors`, or the shards its index
    names (each a plain file name inside the folder); BadInput in one line naming what is wrong."""
    from .strict_json import load_file

    folder = Path(folder)
    index = folder / WEIGHTS_INDEX_NAME
    if index.is_file():
        weight_map = load_file(index, "weights index")
        weight_map = weight_map.get("weight_map") if isinstance(weight_map, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise BadInput(f"{index}: not a weights index (no weight_map of tensor names to shard files)")
        shards = sorted(set(weight_map.values()), key=str)
        for shard in shards:
            if not isinstance(shard, str) or Path(shard).name != shard or not shard.endswith(".safetensors"):
                raise BadInput(f"{index}: names {shard!r:.200} as a shard, which is not a safetensors file in the folder")
        absent = [shard for shard in shards if not (folder / shard).is_file()]
        if absent:
            raise BadInput(f"{folder}: weight shard(s) missing: {', '.join(absent)}")
        return shards
    if (folder / WEIGHTS_NAME).is_file():
        return [WEIGHTS_NAME]
    raise BadInput(f"{folder}: the weight file is missing (no {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME})")
