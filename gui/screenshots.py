"""Render the window with the demo loaded to PNGs for the README (`docs/`).

    python -m speechport.gui.screenshots [--out docs] [--size 1280x800] [--icon]

Five states at 1280x800: the demo's mapping (light palette), the same plan with a mistyped target
key (the problem, and why Convert is disabled), and, once it is fixed, the finished conversion
(dark palette); then the Audition tab comparing the demo speech clip on that conversion (a pass,
light; paused part-way through playback where an audio output exists) and on a copy of it with one
layer norm scaled by 1.03 (a fail that names the layer, dark).
Runs offscreen when there is no display; under Xvfb (`xvfb-run python -m ...`) it renders through X.
`--icon` also re-renders `resources/icons/speechport.png` from the SVG.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

SIZE = (1280, 800)
MISTYPED_KEY = "encoder.layers.0.ffn1.inner_proj.weight"  # given its own (fairseq2) name as the target
FIXED_TARGET = "encoder.layers.0.ffn1.intermediate_dense.weight"
DAMAGED_KEY = "encoder.layers.1.ffn2_layer_norm.weight"  # scaled by 1.03: the audition then fails at encoder.layers.1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speechport.gui.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNGs (default: docs)")
    parser.add_argument("--size", type=_size, default=SIZE, metavar="WxH",
                        help="the window's size (default: 1280x800, what the README shows)")
    parser.add_argument("--icon", action="store_true", help="also render resources/icons/speechport.png")
    args = parser.parse_args(argv)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QSettings, Qt

    from ..core.demo import DEMO_CHECKPOINT, DEMO_CLIPS
    from . import theme
    from .app import create_application
    from .heartbeat import run_until
    from .main_window import MainWindow
    from .plan_model import Column

    app = create_application()
    if args.icon:
        theme.render_svg(theme.APP_ICON_SVG, theme.APP_ICON_PNG, 256)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="speechport-screenshots-"))
    written = []
    try:
        theme.apply_appearance(app, "light")
        window = MainWindow(settings=QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat),
                            output=scratch / "w2v-bert-demo-hf")
        window.resize(*args.size)
        window.show()
        window.open_source(DEMO_CHECKPOINT)
        if not run_until(lambda: window.prepared is not None and not window.busy(), 120):
            print(f"the demo did not open: {window.message_bar.text.text()}", file=sys.stderr)
            return 1

        def save(name: str) -> None:
            run_until(lambda: False, 0.3)  # let layouts and repaints settle
            path = args.out / name
            window.grab().save(str(path))
            written.append(path)

        window.select_source_key("encoder.layers.0.self_attn.q_proj.weight")
        save("window-mapping.png")

        window.rename_target(MISTYPED_KEY, MISTYPED_KEY)
        window.table.sortByColumn(Column.STATUS, Qt.SortOrder.AscendingOrder)  # problems first
        window.table.clearSelection()
        window.table.scrollToTop()
        save("window-problem.png")

        window.rename_target(MISTYPED_KEY, FIXED_TARGET)  # fixed, as the completion list offers it
        window.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        window.table.clearSelection()
        window.table.scrollToTop()
        theme.apply_appearance(app, "dark")
        window.convert()
        run_until(lambda: not window.busy(), 120)
        if window.result is None:
            print(f"the demo did not convert: {window.message_bar.text.text()}", file=sys.stderr)
            return 1
        save("window-converted.png")

        # The audition at its roomiest: the conversion's message read, the log hidden (View ▸ Show log).
        theme.apply_appearance(app, "light")
        window.message_bar.dismiss()
        window.act_show_log.trigger()
        page = window.show_audition()
        page.choose_clip(DEMO_CLIPS[0])
        if not audition(window, page):
            return 1
        played = pause_mid_clip(page)
        save("window-audition-pass.png")
        if played:
            page.player.stop()

        damaged = damaged_copy(window.result.output, scratch / "w2v-bert-demo-damaged")
        page.compare_bar.converted_field.commit(str(damaged))
        theme.apply_appearance(app, "dark")
        if not audition(window, page):
            return 1
        save("window-audition-fail.png")
        window.undo_stack.setClean()  # the fixes were made for the pictures: closing asks nothing
        window.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for path in written:
        print(path)
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give the size as WIDTHxHEIGHT, e.g. 1024x700") from None
    return width, height


def audition(window, page) -> bool:
    """Compare on the chosen clip; True once the verdict and the plots are shown."""
    from .heartbeat import run_until

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
    from .heartbeat import run_until

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


if __name__ == "__main__":
    sys.exit(main())
