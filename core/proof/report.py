"""`speechport_report.json`: what was converted, how, and with which versions.

It records every plan row and every drop with its reason, so a converted folder explains itself
and the conversion can be audited or repeated.
"""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadInput
from ..planning.plan import Status, collapse_indices
from ..storage.files import describe_mode
from ..storage.safetensors_writer import WrittenWeights
from ..storage.strict_json import dumps, loads
from ..versions import versions

if TYPE_CHECKING:
    from ..conversion import Prepared

REPORT_NAME = "speechport_report.json"
REPORT_FORMAT = 1
# Far above any report Speechport writes (an 800-row plan with the 50 comparisons kept is about
# 2 MB): a larger file was not written by it, and is never read whole.
MAX_REPORT_BYTES = 16 << 20
_READ = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # never waits on a FIFO's writer


def read_report(folder: str | Path) -> dict | None:
    """The report a Speechport conversion left in `folder`, or None for a folder without a readable one
    (converted by another tool, or its report damaged): what it says is only ever a hint."""
    try:
        return load_report(Path(folder) / REPORT_NAME)
    except BadInput:
        return None


def load_report(path: str | Path, *, follow_links: bool = True, dir_fd: int | None = None) -> dict:
    """A report file as a dict; BadInput in one sentence when it is absent, not a regular file (a
    FIFO is never opened), a symbolic link and `follow_links` is False, larger than
    MAX_REPORT_BYTES (never read past that), or not a JSON object. `dir_fd`: `path` is a name in
    that open folder."""
    try:
        info = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_links)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such report") from None
    except OSError as exc:
        raise BadInput(f"{path}: the report cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(info.st_mode):
        raise BadInput(f"{path}: the report is a symbolic link, which is not followed")
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{path}: the report is {describe_mode(info.st_mode)}, not a regular file")
    if info.st_size > MAX_REPORT_BYTES:
        raise BadInput(f"{path}: the report holds {info.st_size:,} bytes, more than a report Speechport writes "
                       f"({MAX_REPORT_BYTES:,} at most)")
    flags = _READ | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise BadInput(f"{path}: the report cannot be read ({exc.strerror or exc})") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):  # swapped for something else since the look above
            raise BadInput(f"{path}: the report is {describe_mode(opened.st_mode)}, not a regular file")
        data = read_at_most(fd, MAX_REPORT_BYTES)
    finally:
        os.close(fd)
    if data is None:  # grew past the limit after the look above
        raise BadInput(f"{path}: the report holds more than {MAX_REPORT_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path}: the report is not UTF-8 text") from None
    report = loads(text, str(path), "the report")
    if not isinstance(report, dict):
        raise BadInput(f"{path}: the report is not a JSON object")
    return report


def read_at_most(fd: int, limit: int) -> bytes | None:
    """The bytes of an open file, or None when it holds more than `limit` (reading stops there)."""
    chunks, total = [], 0
    while True:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


def build_report(prepared: Prepared, weights: WrittenWeights, seconds: float) -> dict:
    plan = prepared.plan
    checkpoint = prepared.checkpoint
    dropped = [
        {"source_key": row.source_key, "reason": row.reason, "rule": row.rule}
        for row in plan.rows
        if row.status is Status.DROPPED
    ]
    return {
        "speechport_report": REPORT_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": {
            "path": str(prepared.source),
            "sha256": prepared.hasher.result(),
            "bytes": checkpoint.size,
            "container": checkpoint.container,
            "top_level_keys": checkpoint.top_level_keys(),
            "stored_dtypes": checkpoint.stored_dtypes(),  # tensors per dtype, as the file stores them
            "read_by": checkpoint.reader,
            "loaded_with_trust": checkpoint.trusted,
        },
        "base_model": str(prepared.base_model) if prepared.base_model else None,
        "base_model_recipe": prepared.recipe.base_summary(),  # an upstream checkpoint converted with the head
        # A head converted on another upstream than the one it records, as the user accepted (only
        # recipes with a base model have one to accept).
        "base_model_mismatch": getattr(prepared.recipe, "accepted_base_model_mismatch", None),
        "recipe": {
            "name": prepared.recipe.name,
            "layout": prepared.layout,
            "evidence": prepared.detection.evidence,
            "target_class": plan.target_class,
        },
        "config": {
            "origin": prepared.config.origin,
            "path": prepared.config.path,
            "inferred": prepared.config.inferred,
        },
        "mapping_file": str(prepared.mapping_path) if prepared.mapping_path else None,
        "overrides": prepared.overrides.to_dict() if not prepared.overrides.is_empty() else None,
        "plan": {"counts": plan.counts(), "notes": plan.notes, "rows": [row.to_dict() for row in plan.rows]},
        "dropped": dropped,
        "dropped_summary": _dropped_summary(dropped),
        "output": {
            "files": weights.files,
            "weight_bytes": weights.total_bytes,
            "sharded": weights.sharded,
            "tensors_copied_file_to_file": weights.copied_in_kernel,
            "tensors_written_from_memory": weights.written_from_memory,
        },
        "seconds": round(seconds, 3),
        "versions": versions(),
        "labels": labels_record(prepared),
        # The latest comparison with the original (None until there is one), and every one kept,
        # the latest first (core.proof.record).
        "verification": None,
        "verifications": [],
        "verifications_dropped": 0,
    }


def labels_record(prepared: Prepared) -> dict | None:
    """The class names a head's converted config carries, and where they came from; None for models
    without classes."""
    config = prepared.config.config
    names = getattr(config, "id2label", None)
    origin = getattr(prepared.recipe, "labels_origin", None)
    if not names or origin is None:
        return None
    if prepared.labels_path is not None:
        origin = f"the labels file {prepared.labels_path}"
    return {"names": [str(names[i]) for i in sorted(names)], "origin": origin}


def dump_report(report: dict) -> str:
    """The report as strict JSON text (a NaN or infinite number is written as null): indented, with
    one line per plan row so it stays readable and quick to write for 800-row plans."""
    placeholder = "\u0000rows\u0000"
    rows = report.get("plan", {}).get("rows") if isinstance(report.get("plan"), dict) else None
    if not isinstance(rows, list):  # a report of another shape (an older or edited one): as it is
        return dumps(report, indent=2) + "\n"
    skeleton = {**report, "plan": {**report["plan"], "rows": placeholder}}
    text = dumps(skeleton, indent=2)
    lines = ",\n".join("      " + dumps(row) for row in rows)
    return text.replace(dumps(placeholder), "[\n" + lines + "\n    ]" if rows else "[]") + "\n"


def _dropped_summary(dropped: list[dict]) -> list[str]:
    """Dropped keys grouped by reason, layer indices collapsed: for people, not for tools."""
    by_reason: dict[str, list[str]] = {}
    for entry in dropped:
        by_reason.setdefault(entry["reason"], []).append(entry["source_key"])
    return [f"{key}: {reason}" for reason, keys in by_reason.items() for key in collapse_indices(keys)]
