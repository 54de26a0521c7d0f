"""`speechport_report.json`: what was converted, how, and with which versions.

It records every plan row and every drop with its reason, so a converted folder explains itself
and the conversion can be audited or repeated.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadInput
from ..planning.plan import Status, collapse_indices
from ..storage.safetensors_writer import WrittenWeights
from ..storage.strict_json import dumps, load_file
from ..versions import versions

if TYPE_CHECKING:
    from ..conversion import Prepared

REPORT_NAME = "speechport_report.json"
REPORT_FORMAT = 1


def read_report(folder: str | Path) -> dict | None:
    """The report a Speechport conversion left in `folder`, or None for a folder without a readable one
    (converted by another tool, or its report damaged): what it says is only ever a hint."""
    report = Path(folder) / REPORT_NAME
    if not report.is_file():
        return None
    try:
        data = load_file(report, "report")
    except BadInput:
        return None
    return data if isinstance(data, dict) else None


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
        "verification": None,
    }


def dump_report(report: dict) -> str:
    """The report as strict JSON text (a NaN or infinite number is written as null): indented, with
    one line per plan row so it stays readable and quick to write for 800-row plans."""
    placeholder = "\u0000rows\u0000"
    rows = report["plan"]["rows"]
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
