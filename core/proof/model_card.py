"""The converted folder's model card (README.md), built with huggingface_hub's ModelCard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..planning.plan import collapse_indices
from .original_weights import fixes_sentence

if TYPE_CHECKING:
    from ..conversion import Prepared


def load_card_library() -> None:
    """Import huggingface_hub's card classes (about 0.3 s), at a moment the caller would wait anyway."""
    from huggingface_hub import ModelCard, ModelCardData  # noqa: F401


def write_model_card(folder: Path, prepared: Prepared, report: dict) -> None:
    from huggingface_hub import ModelCard, ModelCardData

    config = prepared.config.config
    details = prepared.recipe.card_details(config)
    data = ModelCardData(
        base_model=details.base_model,
        library_name="transformers",
        pipeline_tag=details.pipeline_tag,
        tags=list(details.tags),
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(prepared, report, details.description)}")
    card.save(folder / "README.md")


def card_body(prepared: Prepared, report: dict, description: str) -> str:
    source = report["source"]
    plan = prepared.plan
    counts = ", ".join(f"{n} {status}" for status, n in plan.counts().items() if n)
    target = plan.target_class
    lines = [
        f"# {Path(source['path']).stem} ({target})",
        "",
        description,
        "",
        "## How it was converted",
        "",
        f"- Source: `{Path(source['path']).name}` ({source['bytes']:,} bytes, sha256 `{source['sha256']}`)",
        f"- Recipe: `{prepared.recipe.name}` ({prepared.layout} layout) -> `{target}`",
        f"- Config: {_config_line(prepared)}",
        f"- Plan: {counts}",
    ]
    if prepared.base_model:
        lines.append(f"- Base model: `{prepared.base_model.name}`")
    mismatch = report.get("base_model_mismatch")
    if mismatch:
        lines.append(f"- **Base model mismatch**: {mismatch['note']}.")
    if prepared.mapping_path:
        lines.append(f"- User fixes: `{prepared.mapping_path.name}`")
    if report["dropped_summary"]:
        lines += ["", "Left out on purpose:", ""]
        lines += [f"- `{entry.split(': ', 1)[0]}`: {entry.split(': ', 1)[1]}" for entry in report["dropped_summary"]]
    lines += ["", "## Verification", "", verification_text(report.get("verification")), ""]
    lines += [
        "## Usage",
        "",
        "```python",
        f"from transformers import AutoFeatureExtractor, {target}",
        "",
        'extractor = AutoFeatureExtractor.from_pretrained("path/to/this/folder")',
        f'model = {target}.from_pretrained("path/to/this/folder").eval()',
        'inputs = extractor(waveform_16k, sampling_rate=16000, return_tensors="pt")',
        "outputs = model(**inputs)",
        "```",
        "",
        f"Converted with Speechport {report['versions'].get('speechport', '')} "
        f"(transformers {report['versions'].get('transformers', '')}, torch {report['versions'].get('torch', '')}).",
        "",
    ]
    return "\n".join(lines)


def verification_text(verification: dict | None) -> str:
    if not verification:
        return (
            "Not verified on audio at conversion time. Run `speechport compare SOURCE THIS_FOLDER --audio CLIP` "
            "to compare it with the original model."
        )
    lines = [
        f"Compared with the original model on audio: **{verification['verdict']}** "
        f"at tolerance {verification['tolerance']:g} (max |diff| on valid frames).",
        "",
        "| clip | verdict | max abs diff | mean abs diff | NMSE (dB) | min cosine |",
        "|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for clip in verification.get("clips", []):
        lines.append(
            f"| `{Path(clip['audio']).name}` | {clip['verdict']} | {_number(clip['max_abs_diff'])} | "
            f"{_number(clip['mean_abs_diff'])} | {_number(clip['nmse_db'], '.1f')} | {_number(clip['cosine_min'], '.6f')} |"
        )
        notes += [note for note in clip.get("notes", []) if note not in notes]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    fixes_used = verification.get("fixes_used") or []
    if fixes_used:
        keys = ", ".join(f"`{key}`" for key in collapse_indices(row["source"] for row in fixes_used))
        lines += ["", f"{fixes_sentence(len(fixes_used)).capitalize()}: {keys}."]
    return "\n".join(lines)


def _number(value, spec: str = ".3g") -> str:
    return "n/a" if value is None else format(value, spec)


def _config_line(prepared: Prepared) -> str:
    choice = prepared.config
    if choice.origin == "file":
        return f"from `{Path(choice.path).name}`"
    fields = ", ".join(f"{name}={value.split(':', 1)[0]}" for name, value in choice.inferred.items())
    return f"inferred from the checkpoint ({fields})"
