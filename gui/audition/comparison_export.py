"""A comparison saved for later: the JSON `speechport compare --json` prints, with what it compared."""

from __future__ import annotations

from pathlib import Path

from ...core.storage.strict_json import dumps
from .compare_bar import Compared


def export_record(comparison, compared: Compared) -> dict:
    """`core.comparison.Comparison.to_dict()` with the keys the CLI adds, plus the clip, its channel
    policy and the base model."""
    return {
        **comparison.to_dict(),
        "source": str(compared.source),
        "converted": str(compared.converted),
        "original_backend": comparison.original_backend,
        "recipe": compared.recipe,
        "clip": str(compared.clip.path),
        "channels": compared.clip.channel_policy,
        "base_model": str(compared.base_model) if compared.base_model else None,
        "record": compared.recorded.to_dict() if compared.recorded is not None else None,
    }


def write_json(path: str | Path, record: dict) -> Path:
    """Strict JSON, as the CLI prints it: a NaN or infinite number is written as null."""
    path = Path(path)
    path.write_text(dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def suggested_name(compared: Compared | None, suffix: str) -> str:
    """`<clip>-comparison<suffix>` beside the converted folder."""
    if compared is None:
        return str(Path.home() / f"comparison{suffix}")
    return str(compared.converted.parent / f"{compared.clip.path.stem}-comparison{suffix}")
