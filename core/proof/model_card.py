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
    lines += ["", VERIFICATION_HEADING, "", verification_text(report, report_weights(report)), ""]
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


def verification_text(report: dict, current_sha256: str | None) -> str:
    """The card's Verification section (without its heading): the latest comparison recorded in the
    report, with its clips, and the ones before it. `current_sha256` is the digest of the folder's
    weights as they are now (core.proof.record): a comparison of other weights is never shown as
    theirs (None: not known, so none is)."""
    latest = report.get("verification")
    if not isinstance(latest, dict):
        return ("Not compared with the original model on audio yet. Run `speechport compare SOURCE THIS_FOLDER "
                "--audio CLIP` to compare it: the result is recorded here and in `speechport_report.json`.")
    if not same_weights(latest, current_sha256):
        lines = [f"**Not verified for these weights**: {latest_sentence(latest, current_sha256)}"]
    else:
        lines = [
            f"Compared with the original model on audio: **{latest['verdict']}** "
            f"at tolerance {latest['tolerance']:g} (max |diff| on valid frames), {_when(latest)}"
            f"{_by(latest)}.",
        ]
        if latest.get("weights_sha256"):
            lines += ["", f"This holds for the weights whose SHA-256 is `{latest['weights_sha256']}` "
                          f"({_weights_files(latest)}); weights with another digest were not compared."]
        lines += [
            "",
            "| clip | length | sha256 | verdict | max abs diff | mean abs diff | NMSE (dB) | min cosine |",
            "|---|---|---|---|---|---|---|---|",
        ]
        notes: list[str] = []
        for clip in latest.get("clips", []):
            about = clip.get("clip") or {}
            lines.append(
                f"| `{Path(clip['audio']).name}`{_segment(clip)} | {_seconds(about.get('seconds'))} | "
                f"{_short_digest(about.get('sha256'))} | {clip['verdict']} | {_number(clip['max_abs_diff'])} | "
                f"{_number(clip['mean_abs_diff'])} | {_number(clip['nmse_db'], '.1f')} | {_number(clip['cosine_min'], '.6f')} |"
            )
            notes += [note for note in clip.get("notes", []) if note not in notes]
        if notes:
            lines += ["", *(f"- {note}" for note in notes)]
        fixes_used = latest.get("fixes_used") or []
        if fixes_used:
            keys = ", ".join(f"`{key}`" for key in collapse_indices(row["source"] for row in fixes_used))
            lines += ["", f"{fixes_sentence(len(fixes_used)).capitalize()}: {keys}."]
    history = [entry for entry in report.get("verifications") or [] if isinstance(entry, dict)]
    dropped = report.get("verifications_dropped") or 0
    if len(history) > 1 or dropped:
        lines += ["", "Every comparison recorded, the latest first:", "",
                  "| when | by | clips | verdict | max abs diff | tolerance | weights |", "|---|---|---|---|---|---|---|"]
        for entry in history:
            clips = ", ".join(f"`{Path(c['audio']).name}`{_segment(c)}" for c in entry.get("clips", []))
            verdict = entry.get("verdict") if same_weights(entry, current_sha256) else f"({entry.get('verdict')})"
            lines.append(f"| {_when(entry, bare=True)} | {entry.get('by', '')} | {clips} | {verdict} | "
                         f"{_number(_worst(entry))} | {_number(entry.get('tolerance'), 'g')} | "
                         f"{'these' if same_weights(entry, current_sha256) else 'other: ' + _short_digest(entry.get('weights_sha256'))} |")
        if dropped:
            lines.append(f"\n{dropped} older comparison{'s' if dropped != 1 else ''} no longer kept.")
    return "\n".join(lines)


def same_weights(entry: dict, current_sha256: str | None) -> bool:
    """Whether a recorded comparison was of the weights as they are now (known on both sides)."""
    recorded = entry.get("weights_sha256")
    return bool(recorded) and recorded == current_sha256


def report_weights(report: dict) -> str | None:
    """The weights' digest a freshly written report vouches for: its latest comparison's (a card is
    written with its report, from the weights just compared)."""
    latest = report.get("verification")
    return latest.get("weights_sha256") if isinstance(latest, dict) else None


def latest_sentence(entry: dict, current_sha256: str | None, with_verdict: bool = True) -> str:
    """A recorded comparison in one plain sentence ("pass on speech.wav (4.2 s): max |diff| …");
    for weights other than those compared it says so first, and never that they pass.
    `with_verdict=False`: from "on …", for a title that says the verdict already."""
    clips = ", ".join(_clip_words(clip) for clip in entry.get("clips", [])) or "no clip"
    worst = _worst(entry)
    verdict = entry.get("verdict")
    measured = (f"max |diff| {_number(worst)} against the tolerance {_number(entry.get('tolerance'), 'g')}"
                if worst is not None else "no difference measured")
    compared = f"compared {_when(entry, bare=True)}{_by(entry)}"
    said = f"on {clips}: {measured}; {compared}"
    if with_verdict and same_weights(entry, current_sha256):
        return f"{str(verdict).capitalize()} {said}"
    said = f"{verdict} {said}"
    if not same_weights(entry, current_sha256):
        if current_sha256 is None and entry.get("weights_sha256"):
            return f"the weights could not be checked against those compared; it was a {said}"
        return f"{WEIGHTS_CHANGED}; it was a {said}"
    return said.removeprefix(f"{verdict} ")


WEIGHTS_CHANGED = "the weights changed since this was verified"
VERIFICATION_HEADING = "## Verification"


def _clip_words(clip: dict) -> str:
    about = clip.get("clip") or {}
    length = f" ({_seconds(about.get('seconds'))})" if about.get("seconds") is not None else ""
    return f"{Path(str(clip.get('audio', '?'))).name}{_segment(clip)}{length}"


def _segment(clip: dict) -> str:
    segment = clip.get("segment")
    return f" [{segment[0]:g}–{segment[1]:g} s]" if isinstance(segment, list) and len(segment) == 2 else ""


def _worst(entry: dict):
    values = [clip.get("max_abs_diff") for clip in entry.get("clips", [])]
    if any(value is None for value in values):
        return None  # not a number: an incomparable output
    return max(values) if values else None


def _when(entry: dict, bare: bool = False) -> str:
    when = str(entry.get("when") or "")
    shown = when[:16].replace("T", " ") + " UTC" if len(when) >= 16 else "at an unrecorded time"
    return shown if bare or not when else f"on {shown}"


def _by(entry: dict) -> str:
    by = entry.get("by")
    backend = entry.get("original_backend")
    parts = [f"by {by}" if by else "", f"against the {backend} original" if backend else ""]
    return "".join(f", {part}" for part in parts if part)


def _weights_files(entry: dict) -> str:
    files = sorted(entry.get("weight_files") or {})
    if len(files) <= 1:
        return f"`{files[0]}`" if files else "the weights file"
    return f"over the `sha256sum` lines of {', '.join(f'`{name}`' for name in files)}"


def _seconds(value) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _short_digest(digest) -> str:
    return f"`{digest[:12]}…`" if isinstance(digest, str) and digest else "n/a"


def _number(value, spec: str = ".3g") -> str:
    return "n/a" if value is None else format(value, spec)


def _config_line(prepared: Prepared) -> str:
    choice = prepared.config
    if choice.origin == "file":
        return f"from `{Path(choice.path).name}`"
    fields = ", ".join(f"{name}={value.split(':', 1)[0]}" for name, value in choice.inferred.items())
    return f"inferred from the checkpoint ({fields})"
