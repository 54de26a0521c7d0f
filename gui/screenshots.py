"""Render the window to PNGs for the README (`docs/`), at any size, to look at what people will see.

    python -m speechport.gui.screenshots [--out docs] [--size 1280x800] [--only SCENE ...] [--icon]

The scenes, in order (a later one builds on the earlier ones it needs):
  mapping            the demo's mapping (light palette)
  problem            the same plan with a mistyped target key: the problem, and why Convert is disabled
  converted          once it is fixed, the finished conversion (dark palette)
  audition-pass      the Audition tab comparing the demo speech clip on that conversion (light; paused
                     part-way through playback where an audio output exists)
  testset            the Audition tab's test-set view: the demo conversion over 40 parts of the demo clips and a
                     silent file, compared by two workers: the histogram, the summary, the worst clips (light)
  audition-fail      the same on a copy with one layer norm scaled by 1.03: a fail that names the layer (dark)
  audition-long      a 150 s clip (the demo speech over and over, in noise): drawn whole, 10 s of it compared
  audition-labels    an S3PRL keyword-spotting head: one answer per clip, as label bars (light)
  audition-speakers  an S3PRL diarization head: each speaker's activity in both models (dark)
  unknown-names      a copy of the demo saved from DDP (every key under `module.`) with six keys spelled in
                     other styles, opened: the prefix stripped as an inferred fix, the unmapped rows with
                     their suggestions (light)
  bulk-rename        the bulk rename dialog on it, renaming source keys (`query` is `q_proj`): the preview of
                     what the plan becomes (the dialog alone; nothing applied)
  suggestions-applied  the same once "Apply confident suggestions" fixed them: a clean plan, the fixed rows
                     selected
  audition-fixes     its conversion compared on the demo speech clip: a pass, with the rows proven only
                     through the fixes listed (light)
  audition-ctc       a fine-tuned CTC model whose converted output layer trades two letters: what both
                     models hear along the clip, the letters heard differently highlighted (light)
The S3PRL and CTC scenes use the test fixtures of a source checkout (tests/fixtures/s3prl, tests/fixtures/ctc)
and are left out without them. At the default size the files are `window-<scene>.png`; at another, `window-<scene>-WxH.png`.
Runs offscreen when there is no display; under Xvfb (`xvfb-run python -m ...`) it renders through X.
`--icon` also re-renders `resources/icons/speechport.png` from the SVG.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

SIZE = (1280, 800)
SCENES = ("mapping", "problem", "converted", "audition-pass", "testset", "audition-fail", "audition-long", "audition-labels",
          "audition-speakers", "unknown-names", "bulk-rename", "suggestions-applied", "audition-fixes", "audition-ctc")
FIXES_SCENES = ("unknown-names", "bulk-rename", "suggestions-applied", "audition-fixes")
SOURCE_RULE = (r"\.query\.", ".q_proj.")  # the bulk rename's example: their `query` is the recipe's `q_proj`
MISTYPED_KEY = "encoder.layers.0.ffn1.inner_proj.weight"  # given its own (fairseq2) name as the target
FIXED_TARGET = "encoder.layers.0.ffn1.intermediate_dense.weight"
DAMAGED_KEY = "encoder.layers.1.ffn2_layer_norm.weight"  # scaled by 1.03: the audition then fails at encoder.layers.1
S3PRL_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "s3prl"
CTC_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ctc"
CTC_SCENE = "audition-ctc"
CTC_TRADED = ("W", "H")  # the two letters whose rows of the output layer trade places in the damaged copy
S3PRL_SCENES = {  # scene: (task folder, checkpoint)
    "audition-labels": ("ks", "dev-best.ckpt"),
    "audition-speakers": ("sd", "best-states-dev.ckpt"),
}
# The demo saved as a DDP-wrapped training run would save it, with keys no rule knows: the demo's key ->
# how this copy spells it (the README's walkthrough makes the same file).
WRAPPER_PREFIX = "module."
UNKNOWN_NAMES = {
    "encoder.layers.0.self_attn_layer_norm.weight": "encoder.layers.0.selfAttnLayerNorm.weight",  # camelCase
    "encoder.layers.0.self_attn_layer_norm.bias": "encoder.layers.0.selfAttnLayerNorm.bias",
    "encoder.layers.1.self_attn.q_proj.weight": "encoder.layers.1.self_attn.query.weight",  # a synonym
    "encoder.layers.1.self_attn.q_proj.bias": "encoder.layers.1.self_attn.query.bias",
    "encoder.layers.1.conv.pointwise_conv2.weight": "encoder/layers/1/conv/pointwise_conv2/weight",  # another separator
    "encoder.layers.1.ffn2_layer_norm.weight": "encoder.layers.1.ffn2_ln.weight",  # an abbreviation
}
LONG_CLIP_SECONDS = 150.0
LONG_CLIP_SEGMENT = (60.0, 70.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speechport.gui.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNGs (default: docs)")
    parser.add_argument("--size", type=_size, default=SIZE, metavar="WxH",
                        help="the window's size (default: 1280x800, what the README shows)")
    parser.add_argument("--only", nargs="+", choices=SCENES, metavar="SCENE",
                        help=f"render only these scenes ({', '.join(SCENES)})")
    parser.add_argument("--icon", action="store_true", help="also render resources/icons/speechport.png")
    args = parser.parse_args(argv)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from .app import create_application
    from .shared import theme

    app = create_application()
    if args.icon:
        theme.render_svg(theme.APP_ICON_SVG, theme.APP_ICON_PNG, 256)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="speechport-screenshots-"))
    wanted = set(args.only or SCENES)
    suffix = "" if args.size == SIZE else f"-{args.size[0]}x{args.size[1]}"
    shots = Shots(app, args.out, suffix, args.size, scratch)
    try:
        if wanted - set(S3PRL_SCENES) - set(FIXES_SCENES) - {CTC_SCENE} and not demo_scenes(shots, wanted):
            return 1
        if wanted & set(FIXES_SCENES) and not fixes_scenes(shots, wanted):
            return 1
        s3prl = sorted(wanted & set(S3PRL_SCENES), key=SCENES.index)
        if s3prl and not S3PRL_FIXTURES.is_dir():
            print(f"left out {', '.join(s3prl)}: no S3PRL fixtures at {S3PRL_FIXTURES}", file=sys.stderr)
        elif s3prl and not all(s3prl_scene(shots, scene) for scene in s3prl):
            return 1
        if CTC_SCENE in wanted and not CTC_FIXTURES.is_dir():
            print(f"left out {CTC_SCENE}: no CTC fixtures at {CTC_FIXTURES}", file=sys.stderr)
        elif CTC_SCENE in wanted and not ctc_scene(shots):
            return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for path in shots.written:
        print(path)
    return 0


class Shots:
    """Where the pictures go, and the window they are taken of."""

    def __init__(self, app, out: Path, suffix: str, size: tuple[int, int], scratch: Path):
        self.app, self.out, self.suffix, self.size, self.scratch = app, out, suffix, size, scratch
        self.written: list[Path] = []

    def window(self, **inputs):
        """A window of the given size, on settings of its own, with `MainWindow`'s inputs."""
        from PySide6.QtCore import QSettings

        from .window.main_window import MainWindow

        window = MainWindow(settings=QSettings(str(self.scratch / "settings.ini"), QSettings.Format.IniFormat), **inputs)
        window.resize(*self.size)
        window.show()
        return window

    def save(self, window, scene: str) -> None:
        from .shared.heartbeat import run_until

        run_until(lambda: False, 0.3)  # let layouts and repaints settle
        path = self.out / f"window-{scene}{self.suffix}.png"
        window.grab().save(str(path))
        self.written.append(path)


def demo_scenes(shots: Shots, wanted: set[str]) -> bool:
    """The scenes of the built-in demo; False (said on stderr) when the demo does not get that far."""
    from PySide6.QtCore import Qt

    from ..core.demo import DEMO_CHECKPOINT, DEMO_CLIPS
    from .mapping.plan_model import Column
    from .shared import theme
    from .shared.heartbeat import run_until

    app = shots.app
    theme.apply_appearance(app, "light")
    window = shots.window(output=shots.scratch / "w2v-bert-demo-hf")
    window.open_source(DEMO_CHECKPOINT)
    if not run_until(lambda: window.prepared is not None and not window.busy(), 120):
        print(f"the demo did not open: {window.message_bar.text.text()}", file=sys.stderr)
        return False

    window.select_source_key("encoder.layers.0.self_attn.q_proj.weight")
    if "mapping" in wanted:
        shots.save(window, "mapping")

    window.rename_target(MISTYPED_KEY, MISTYPED_KEY)
    window.table.sortByColumn(Column.STATUS, Qt.SortOrder.AscendingOrder)  # problems first
    window.table.clearSelection()
    window.table.scrollToTop()
    if "problem" in wanted:
        shots.save(window, "problem")

    window.rename_target(MISTYPED_KEY, FIXED_TARGET)  # fixed, as the completion list offers it
    window.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
    window.table.clearSelection()
    window.table.scrollToTop()
    theme.apply_appearance(app, "dark")
    window.convert()
    run_until(lambda: not window.busy(), 120)
    if window.result is None:
        print(f"the demo did not convert: {window.message_bar.text.text()}", file=sys.stderr)
        return False
    if "converted" in wanted:
        shots.save(window, "converted")

    # The audition as a new user sees it: the window's defaults (the conversion's message still showing,
    # the log on its one line).
    theme.apply_appearance(app, "light")
    if window.act_show_log.isChecked():
        window.act_show_log.trigger()
    page = window.show_audition()
    if "audition-pass" in wanted:
        page.choose_clip(DEMO_CLIPS[0])
        if not audition(window, page):
            return False
        played = pause_mid_clip(page)
        shots.save(window, "audition-pass")
        if played:
            page.player.stop()

    if "audition-long" in wanted:
        page.choose_clip(long_clip(DEMO_CLIPS[0], shots.scratch / "lecture.wav"))
        if not run_until(lambda: page.clip is not None, 60):
            print(f"the long clip was not read: {window.message_bar.text.text()}", file=sys.stderr)
            return False
        page.choose_segment(*LONG_CLIP_SEGMENT)
        if not audition(window, page):
            return False
        page.timeline.waveform.getPlotItem().setXRange(0.0, LONG_CLIP_SECONDS, padding=0)  # the whole clip in view
        shots.save(window, "audition-long")

    if "testset" in wanted:
        page.set_mode(True)
        page.testset.choose_dataset(demo_test_set(DEMO_CLIPS, shots.scratch / "demo-set"))
        page.testset.workers_spin.setValue(2)
        page.testset.run()
        if not run_until(lambda: not page.testset.busy() and page.testset.outcome is not None, 600):
            print(f"the test set did not finish: {window.message_bar.text.text()}", file=sys.stderr)
            return False
        shots.save(window, "testset")
        page.set_mode(False)

    if "audition-fail" in wanted:
        page.choose_clip(DEMO_CLIPS[0])
        damaged = damaged_copy(window.result.output, shots.scratch / "w2v-bert-demo-damaged")
        page.compare_bar.converted_field.commit(str(damaged))
        theme.apply_appearance(app, "dark")
        if not audition(window, page):
            return False
        shots.save(window, "audition-fail")
    window.undo_stack.setClean()  # the fixes were made for the pictures: closing asks nothing
    window.close()
    return True


def fixes_scenes(shots: Shots, wanted: set[str]) -> bool:
    """A checkpoint with names no rule knows: opened, fixed by its suggestions, converted and proven."""
    from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt

    from ..core.demo import DEMO_CLIPS
    from .mapping.plan_model import Column
    from .mapping.rename_preview import SOURCE_KEYS
    from .shared import theme
    from .shared.heartbeat import run_until

    theme.apply_appearance(shots.app, "light")
    source = unknown_names_copy(shots.scratch / "my_model.pt")
    window = shots.window(output=shots.scratch / "my_model-hf")
    if window.act_show_log.isChecked():
        window.act_show_log.trigger()  # the table's rows are the point: the log hidden (View ▸ Show log)
    window.open_source(source)
    if not run_until(lambda: window.prepared is not None and not window.busy() and not window.prepare_wanted, 120):
        print(f"{source.name} did not open: {window.message_bar.text.text()}", file=sys.stderr)
        return False
    renamed = [WRAPPER_PREFIX + key for key in UNKNOWN_NAMES.values()]
    window.table.sortByColumn(Column.STATUS, Qt.SortOrder.AscendingOrder)  # problems first
    window.table.clearSelection()
    window.table.scrollToTop()
    if "unknown-names" in wanted:
        shots.save(window, "unknown-names")

    if "bulk-rename" in wanted:
        window.fixes_editor.bulk_rename(SOURCE_KEYS)
        dialog = window.fixes_editor.bulk_dialog
        dialog.resize(min(dialog.width(), shots.size[0] - 100), min(dialog.height(), shots.size[1] - 120))
        dialog.pattern.setText(SOURCE_RULE[0])
        dialog.replacement.setText(SOURCE_RULE[1])
        if not run_until(lambda: dialog.result_preview is not None, 60):
            print(f"no preview of the rename: {dialog.status.text()}", file=sys.stderr)
            return False
        shots.save(dialog, "bulk-rename")
        dialog.reject()

    window.act_suggestions.trigger()
    if not run_until(lambda: window.prepared.plan.ok and not window.busy() and not window.prepare_wanted, 60):
        print(f"the suggestions did not fix the plan: {window.prepared.plan.summary()}", file=sys.stderr)
        return False
    window.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # the checkpoint's order
    selection = QItemSelection()
    for key in renamed:
        index = window.proxy.mapFromSource(window.model.index(window.model.row_of_source(key), 0))
        selection.select(index, index)
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    window.table.selectionModel().select(selection, flags)
    run_until(lambda: False, 0.3)  # the notices that went with the problems are gone: the table is taller
    first = window.proxy.mapFromSource(window.model.index(window.model.row_of_source(renamed[2]), 0))
    window.table.scrollTo(first, window.table.ScrollHint.PositionAtTop)  # layer 1's fixed rows in view
    if "suggestions-applied" in wanted:
        shots.save(window, "suggestions-applied")

    if "audition-fixes" in wanted:
        window.convert()
        run_until(lambda: not window.busy(), 120)
        if window.result is None:
            print(f"{source.name} did not convert: {window.message_bar.text.text()}", file=sys.stderr)
            return False
        page = window.show_audition()
        page.choose_clip(DEMO_CLIPS[0])
        if not audition(window, page):
            return False
        page.view.show_fixed_rows(True)
        shots.save(window, "audition-fixes")
    window.undo_stack.setClean()  # the fixes were made for the pictures: closing asks nothing
    window.close()
    return True


def unknown_names_copy(path: Path) -> Path:
    """The demo checkpoint as a DDP training run with its own names for six tensors would save it."""
    import torch

    from ..core.demo import DEMO_CHECKPOINT

    state = torch.load(DEMO_CHECKPOINT, weights_only=True)["model"]
    state = {WRAPPER_PREFIX + UNKNOWN_NAMES.get(key, key): tensor for key, tensor in state.items()}
    torch.save({"model": state, "epoch": 12}, path)
    return path


def s3prl_scene(shots: Shots, scene: str) -> bool:
    """An S3PRL head of the test fixtures, converted with its labels and compared on the fox clip."""
    from ..core.conversion import convert, prepare
    from .shared import theme

    task, checkpoint = S3PRL_SCENES[scene]
    folder = S3PRL_FIXTURES / task
    base_model = S3PRL_FIXTURES / "base_model"
    labels = None
    id2label = json.loads((folder / "hf_converted" / "config.json").read_text()).get("id2label")
    if id2label and task != "sd":
        labels = shots.scratch / f"{task}-labels.txt"
        labels.write_text("".join(f"{id2label[str(index)]}\n" for index in range(len(id2label))))
    converted = convert(prepare(folder / checkpoint, base_model=base_model, labels=labels),
                        shots.scratch / f"{task}-hf").output
    theme.apply_appearance(shots.app, "dark" if scene == "audition-speakers" else "light")
    window = shots.window(source=folder / checkpoint, base_model=base_model, output=shots.scratch / f"{task}-out")
    return audition_scene(shots, window, converted, S3PRL_FIXTURES / "audio" / "fox_16k.wav", scene)


def ctc_scene(shots: Shots) -> bool:
    """The wav2vec 2.0 CTC fixture converted, then a copy whose output layer trades two letters' rows,
    compared on a clip: both transcripts along the clip, the letters heard differently highlighted."""
    from safetensors.torch import load_file, save_file

    from ..core.conversion import convert, prepare
    from .shared import theme

    source = CTC_FIXTURES / "models" / "w2v2_base_ctc" / "w2v2_base_ctc.pt"
    converted = convert(prepare(source), shots.scratch / "ctc-hf").output
    damaged = shots.scratch / "ctc-traded"
    shutil.copytree(converted, damaged)
    vocab = json.loads((damaged / "vocab.json").read_text(encoding="utf-8"))
    weights = load_file(damaged / "model.safetensors")
    rows = [vocab[letter] for letter in CTC_TRADED]
    for name in ("lm_head.weight", "lm_head.bias"):
        weights[name][rows] = weights[name][rows[::-1]].clone()
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    theme.apply_appearance(shots.app, "light")
    window = shots.window(source=source, output=shots.scratch / "ctc-out")
    return audition_scene(shots, window, damaged, CTC_FIXTURES / "audio" / "speechlike_1p0s.wav", CTC_SCENE)


def audition_scene(shots: Shots, window, converted: Path, clip: Path, scene: str) -> bool:
    """Once `window` has opened its checkpoint: the Audition tab with the log on its one line, `converted`
    compared on `clip`, and its picture taken; False (said on stderr) when it does not get that far."""
    from .shared.heartbeat import run_until

    if not run_until(lambda: window.prepared is not None and not window.busy(), 120):
        print(f"{Path(window.workspace.source).name} did not open: {window.message_bar.text.text()}", file=sys.stderr)
        return False
    if window.act_show_log.isChecked():
        window.act_show_log.trigger()
    page = window.show_audition()
    page.compare_bar.converted_field.commit(str(converted))
    page.choose_clip(clip)
    if not audition(window, page):
        return False
    shots.save(window, scene)
    window.close()
    return True


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give the size as WIDTHxHEIGHT, e.g. 1024x700") from None
    return width, height


def demo_test_set(clips, folder: Path) -> Path:
    """A folder of the demo clips with a metadata.csv naming 40 parts of them (from 1 s to the whole
    clip), and a silent file the set cannot be compared on."""
    import numpy as np
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in clips:
        shutil.copy(clip, folder / clip.name)
        seconds = soundfile.info(str(clip)).duration
        for index in range(20):  # 20 parts of each clip, no two alike: from 1 s to the whole clip
            duration = min(1.0 + (seconds - 1.0) * ((index * 7) % 20) / 19, seconds)
            start = (seconds - duration) * ((index * 3) % 20) / 19
            rows.append(f"{clip.name},{start:.3f},{duration:.3f}\n")
    soundfile.write(folder / "silence.wav", np.zeros(16000, dtype="float32"), 16000)
    (folder / "metadata.csv").write_text("file_name,start,duration\n" + "".join(rows))
    return folder


def audition(window, page) -> bool:
    """Compare on the chosen clip; True once the verdict and the plots are shown."""
    from .shared.heartbeat import run_until

    if not run_until(lambda: page.clip is not None and page.compare_bar.compare_button.isEnabled(), 60):
        print(f"cannot compare: {page.compare_bar.reason.text()} {window.message_bar.text.text()}", file=sys.stderr)
        return False
    page.compare()
    if not run_until(lambda: not window.busy() and page.comparison is not None
                     and page.timeline.comparison is page.comparison.clips[0], 120):
        print(f"the comparison did not finish: {window.message_bar.text.text()}", file=sys.stderr)
        return False
    return True


def pause_mid_clip(page, seconds: float = 1.6) -> bool:
    """Where an audio output exists, play the clip and pause it part-way so the playhead shows."""
    from .shared.heartbeat import run_until

    if not page.player.available:
        return False
    page.player.play()
    run_until(lambda: page.player.position() >= seconds or page.player.state != "playing", 15)
    page.player.pause()
    return True


def damaged_copy(folder: Path, copy: Path) -> Path:
    """The converted folder with one weight slightly off, as a bad mapping would leave it."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, copy)
    weights = load_file(copy / "model.safetensors")
    weights[DAMAGED_KEY] = weights[DAMAGED_KEY] * 1.03
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    return copy


def long_clip(speech: Path, path: Path, seconds: float = LONG_CLIP_SECONDS) -> Path:
    """A clip longer than a comparison covers: `speech` over and over, in a little noise."""
    import numpy as np
    import soundfile

    samples, rate = soundfile.read(str(speech), dtype="float32")
    repeated = np.resize(samples, int(seconds * rate))
    noise = 0.003 * np.random.default_rng(0).standard_normal(len(repeated)).astype(np.float32)
    soundfile.write(str(path), repeated + noise, rate, subtype="PCM_16")
    return path


if __name__ == "__main__":
    sys.exit(main())
