"""The Audition tab at the window sizes people use (1280x800, 1024x700): nothing it shows is too small
to read, cut off or running into something else (offscreen)."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PySide6.QtWidgets import QLabel, QScrollArea  # noqa: E402

from conftest import CONFORMER_SHAW  # noqa: E402
from gui_support import choose_clip, compare, open_audition  # noqa: E402
from support import checkpoint_path  # noqa: E402

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
LEAST_WAVEFORM_HEIGHT = 80  # pixels of waveform, above its time axis


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A cs_s48 conversion with one layer norm scaled by 1.03: a failing comparison, every stage listed."""
    from safetensors.torch import load_file, save_file

    from speechport.core.conversion import convert, prepare

    root = tmp_path_factory.mktemp("layout")
    folder = convert(prepare(checkpoint_path("cs_s48")), root / "cs_s48").output
    shutil.copytree(folder, root / "damaged")
    weights = load_file(root / "damaged" / "model.safetensors")
    weights["encoder.layers.1.ffn2_layer_norm.weight"] *= 1.03
    save_file(weights, root / "damaged" / "model.safetensors", metadata={"format": "pt"})
    return root / "damaged"


def assert_waveform_readable(page, seconds_in_view: tuple[float, float]) -> None:
    waveform = page.timeline.waveform
    assert waveform.getPlotItem().getViewBox().height() >= LEAST_WAVEFORM_HEIGHT
    bottom = waveform.getPlotItem().getAxis("bottom")
    assert bottom.style["showValues"] and bottom.height() > waveform.fontMetrics().height()
    assert bottom.tickStrings([1.0, 1.5], 1.0, 0.5) == ["1.0 s", "1.5 s"]  # seconds of the clip, said so
    assert waveform.getPlotItem().viewRange()[0] == pytest.approx(list(seconds_in_view), abs=1e-6)


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)], ids=["1280x800", "1024x700"])
def test_readable_at_the_sizes_people_use(make_window, qtbot, damaged, tmp_path, size):
    window = make_window(source=checkpoint_path("cs_s48"), output=tmp_path / "out")
    page = open_audition(qtbot, window, damaged)
    if window.act_show_log.isChecked():
        window.act_show_log.trigger()  # the log hidden (View ▸ Show log), as the screenshots show the tab
    window.resize(*size)
    qtbot.waitUntil(lambda: window.size().toTuple() == size)
    choose_clip(qtbot, page, SPEECH)
    qtbot.wait(50)  # the new layout applied
    assert_waveform_readable(page, (0.0, page.clip.seconds))

    assert compare(qtbot, page).startswith("✕ fail")
    qtbot.wait(50)
    assert_waveform_readable(page, (0.0, page.clip.seconds))
    timeline_scroll = page.findChild(QScrollArea, "timelineScroll")
    assert timeline_scroll.verticalScrollBar().maximum() == 0  # every plot fits, none squeezed
    for plot in page.timeline.plots[1:]:
        if plot.isVisible():
            assert plot.getPlotItem().getViewBox().height() >= plot.plot_height - 2, plot.objectName()

    # The colour bars' numbers never run into each other.
    line = page.timeline.signed_bar.fontMetrics().height()
    for bar in (page.timeline.signed_bar, page.timeline.difference_bar):
        low, high = bar.levels
        room = bar.height() - 2 * bar.margin
        positions = sorted(room * (value - low) / (high - low) for value, _ in bar.ticks())
        assert len(positions) >= 2, bar.objectName()
        assert all(b - a >= line for a, b in zip(positions, positions[1:])), (bar.objectName(), bar.ticks())

    # The findings: as wide as their column (nothing cut at its right edge), tables as tall as their rows.
    scroll = page.findChild(QScrollArea, "comparisonScroll")
    assert page.view.width() <= scroll.viewport().width()
    table = page.view.stage_table
    rows = table.rowCount()
    assert rows >= 5 and table.verticalScrollBar().maximum() == 0
    assert table.height() >= table.horizontalHeader().height() + rows * table.rowHeight(0)
    sentence = page.findChild(QLabel, "compareSentence")
    assert sentence.wordWrap() and sentence.text().endswith("the conversion is wrong there.")
    # One-line texts too long for their room end in "…", with all of them in the tooltip.
    for label in (page.compare_bar.reason, page.view.subject, page.transport.status, page.timeline.caption):
        if label.is_elided():
            assert label.shown_text().endswith("…") and label.text() in label.toolTip(), label.objectName()
    assert page.view.subject.is_elided() or size == (1280, 800)
