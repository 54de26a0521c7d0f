"""The built-in demo: convert the bundled conformer_shaw checkpoint and reload it with transformers."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..resources import DEMO
from .progress import Progress

DEMO_CHECKPOINT = DEMO / "conformer_shaw_demo.pt"
DEMO_CLIPS = (DEMO / "speech_16k.wav", DEMO / "noise_8k.wav")


def is_demo_output(folder: str | Path) -> bool:
    """Whether `folder` holds an earlier conversion of the demo checkpoint, as its Speechport report
    says (the demo's own file, of the same size): the demo replaces its own output without asking.
    Reads the small report only, never the checkpoint (the window asks this on its own thread)."""
    from .proof.report import read_report

    report = read_report(Path(folder).expanduser())
    if report is None:
        return False
    source = report.get("source")
    try:
        return (isinstance(source, dict) and isinstance(source.get("path"), str)
                and Path(source["path"]).resolve() == DEMO_CHECKPOINT.resolve()
                and source.get("bytes") == DEMO_CHECKPOINT.stat().st_size)
    except (OSError, ValueError):
        return False


def run_demo(out: str | Path | None = None, *, force: bool = False, progress: Progress | None = None) -> dict:
    """Convert the demo, reload it with transformers, and say what happened (`lines`). A folder that
    holds an earlier run's output is the demo's own: it is replaced without `force`."""
    from .conversion import convert, prepare
    from .storage.output_folder import check_output_path, protected_inputs

    keep = out is not None
    force = force or (keep and is_demo_output(out))
    if keep:  # refused before anything is read: an output folder holding the demo's own files
        check_output_path(out, force, protected_inputs(source=DEMO_CHECKPOINT, clips=DEMO_CLIPS))
    folder = Path(out) if keep else Path(tempfile.mkdtemp(prefix="speechport-demo-")) / "converted"
    try:
        prepared = prepare(DEMO_CHECKPOINT, progress=progress)
        result = convert(prepared, folder, force=force, progress=progress, verify=DEMO_CLIPS)
        loading = reload_with_transformers(result.output)
        verification = result.comparison
        ok = not any(loading.values()) and verification.verdict == "pass"
        lines = [
            f"demo checkpoint: {DEMO_CHECKPOINT.name} ({prepared.recipe.name}, {prepared.layout} layout)",
            f"plan: {prepared.plan.summary()}",
            f"converted in {result.seconds:.2f} s -> {result.output if keep else 'a temporary folder'}",
            "reloaded with transformers: "
            + ("every loading list empty" if not any(loading.values()) else f"problems: { {k: v for k, v in loading.items() if v} }"),
        ]
        for clip in verification.clips:
            lines.append(
                f"verified on {Path(clip.audio).name}: {clip.verdict} (max |diff| {clip.max_abs_diff:.2g} "
                f"over {clip.frames} frames, tolerance {verification.tolerance:g})"
            )
        if not keep:
            lines.append("(use --out DIR to keep the converted folder)")
        return {
            "ok": ok,
            "source": str(DEMO_CHECKPOINT),
            "output": str(result.output) if keep else None,
            "plan": prepared.plan.counts(),
            "loading_info": loading,
            "verification": verification.to_dict(),
            "seconds": round(result.seconds, 3),
            "lines": lines,
        }
    finally:
        if not keep:
            shutil.rmtree(folder.parent, ignore_errors=True)


def reload_with_transformers(folder: Path) -> dict[str, list]:
    """Load the folder the way users will; returns transformers' loading lists (all empty = clean)."""
    import json

    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    config = AutoConfig.from_pretrained(folder)
    architecture = (config.architectures or [None])[0]
    import transformers

    model_class = getattr(transformers, architecture) if architecture else AutoModel
    _, info = model_class.from_pretrained(folder, output_loading_info=True)
    AutoFeatureExtractor.from_pretrained(folder)
    return {key: sorted(map(str, value)) for key, value in json.loads(json.dumps(info, default=list)).items()}
