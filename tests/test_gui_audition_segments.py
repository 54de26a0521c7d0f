"""A clip longer than a comparison may cover, in the Audition tab: drawn and played whole, compared a
part at a time — the part shaded on its waveform, which the user drags and which is never longer
than the limit (offscreen, driven like a user would)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402

from conftest import CONFORMER_SHAW  # noqa: E402
from gui_support import choose_clip, compare, drag_on_plot, message, open_audition  # noqa: E402
from support import checkpoint_path  # noqa: E402

LONG_SECONDS = 130.0
SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.core.conversion import convert, prepare

    return convert(prepare(checkpoint_path("cs_s64")), tmp_path_factory.mktemp("segments") / "cs_s64").output


def write_long_clip(path, seconds: float = LONG_SECONDS, rate: int = 8_000):
    """A tone in noise, at 8 kHz so the file stays small (2 MB for 130 s)."""
    import soundfile

    times = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(7).standard_normal(len(times))
    samples = 0.3 * np.sin(2 * np.pi * 440 * times) + 0.1 * noise
    soundfile.write(path, samples.astype(np.float32), rate, subtype="PCM_16")
    return path


def test_a_long_clip_is_drawn_and_played_whole_and_compared_a_segment_at_a_time(make_window, qtbot, converted,
                                                                                   tmp_path):
    from speechport.core.proof.audio import DEFAULT_MAX_SECONDS

    assert LONG_SECONDS > DEFAULT_MAX_SECONDS == 120
    long_clip = write_long_clip(tmp_path / "long.wav")
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted)
    choose_clip(qtbot, page, long_clip)

    # Drawn whole, a few points per pixel whatever its length; playable whole.
    waveform = page.timeline.waveform
    assert page.clip.seconds == pytest.approx(LONG_SECONDS)
    assert len(waveform.samples()) == int(LONG_SECONDS * 16_000)
    assert waveform.getPlotItem().viewRange()[0] == pytest.approx([0.0, LONG_SECONDS])
    assert 0 < waveform.drawn_points() <= 8 * waveform.getPlotItem().getViewBox().width()
    assert page.player.has_clip() and page.player.duration == pytest.approx(LONG_SECONDS)
    assert page.findChild(QLabel, "playbackTime").text() == "0:00.0 / 2:10.0"
    assert "130.00 s" in page.findChild(QLabel, "clipInfo").text()
    assert message(window) == ""  # a long clip is no error

    # The first 120 s are chosen, and that is what Compare would compare.
    assert waveform.region.isVisible()
    assert waveform.segment() == pytest.approx((0.0, 120.0))
    assert page.segment() == pytest.approx((0.0, 120.0))
    reason = page.compare_bar.reason.text()
    assert reason.startswith("Ready: 0.0–120.0 s of long.wav through both models"), reason
    assert "--" not in reason and "flag" not in reason

    # Never longer than the limit: asked for more, or dragged further, it stops at 120 s.
    page.choose_segment(0.0, LONG_SECONDS)
    assert waveform.segment() == pytest.approx((0.0, 120.0))
    page.choose_segment(5.0, 100.0)
    drag_on_plot(waveform, 100.0, 129.0)  # the right edge, dragged right: it stops 120 s from the left one
    assert waveform.segment() == pytest.approx((5.0, 125.0))
    page.choose_segment(20.0, 125.0)
    drag_on_plot(waveform, 20.0, 1.0)  # the left edge, dragged left: it stops 120 s from the right one
    assert waveform.segment() == pytest.approx((5.0, 125.0))
    drag_on_plot(waveform, 5.0, 30.0)  # and a shorter part is any part
    start, end = waveform.segment()
    assert start == pytest.approx(30.0, abs=0.5) and end == pytest.approx(125.0)

    # Resized to a few seconds, Compare compares those seconds: read, checked and said.
    page.choose_segment(10.0, 14.0)
    assert page.compare_bar.reason.text().startswith("Ready: 10.0–14.0 s of long.wav")
    assert compare(qtbot, page).startswith("✓ pass")
    result = page.comparison.clips[0]
    assert result.segment == pytest.approx((10.0, 14.0))
    assert page.compared.segment == pytest.approx((10.0, 14.0)) and page.compared.clip.seconds == pytest.approx(4.0)
    sentence = page.findChild(QLabel, "compareSentence").text()
    assert sentence.startswith("On 10.0–14.0 s of the clip, the converted model's outputs match the original's")
    assert "10.0–14.0 s of 130.00 s" in page.view.subject.text()
    assert page.export_json(tmp_path / "segment.json").read_text().count('"segment": [') == 1
    # The plots sit where the segment lies in the clip, and it is in view.
    times, _values = page.timeline.cosine.curve.getOriginalDataset()
    assert 10.0 < times[0] < times[-1] < 14.0
    assert page.timeline.original.image.mapRectToParent(page.timeline.original.image.boundingRect()).left() == \
        pytest.approx(10.0)
    assert waveform.getPlotItem().viewRange()[0] == pytest.approx([10.0, 14.0], abs=0.05)

    # Moved (its length kept) by dragging its middle: Compare follows.
    waveform.getPlotItem().setXRange(0.0, LONG_SECONDS, padding=0)
    drag_on_plot(waveform, 12.0, 52.0)
    start, end = waveform.segment()
    assert end - start == pytest.approx(4.0) and start == pytest.approx(50.0, abs=1.0)
    assert compare(qtbot, page).startswith("✓ pass")
    assert page.comparison.clips[0].segment == pytest.approx((start, end), abs=1e-3)
    # Dragged against the end of the clip, it stops there whole.
    drag_on_plot(waveform, (start + end) / 2, LONG_SECONDS + 20)
    assert waveform.segment() == pytest.approx((LONG_SECONDS - 4.0, LONG_SECONDS), abs=0.01)


def test_a_clip_that_fits_is_compared_whole_unless_a_part_is_chosen(make_window, qtbot, converted, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted)
    choose_clip(qtbot, page, SPEECH)
    waveform = page.timeline.waveform
    assert waveform.segment() == pytest.approx((0.0, page.clip.seconds)) and page.segment() is None
    assert compare(qtbot, page).startswith("✓ pass")
    assert page.comparison.clips[0].segment is None and page.compared.segment is None
    assert not page.findChild(QLabel, "compareSentence").text().startswith("On ")

    page.choose_segment(1.0, 3.0)
    assert compare(qtbot, page).startswith("✓ pass")
    assert page.comparison.clips[0].segment == pytest.approx((1.0, 3.0))
    assert page.findChild(QLabel, "compareSentence").text().startswith("On 1.0–3.0 s of the clip, ")


def test_a_long_clip_whose_chosen_part_is_silent_is_refused_when_compared(make_window, qtbot, converted, tmp_path):
    import soundfile

    rate = 8_000
    samples = np.zeros(int(LONG_SECONDS * rate), dtype=np.float32)
    samples[-8 * rate:] = 0.1 * np.random.default_rng(3).standard_normal(8 * rate)  # sound only in the last 8 s
    path = tmp_path / "mostly-silent.wav"
    soundfile.write(path, samples, rate, subtype="PCM_16")
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted)
    choose_clip(qtbot, page, path)  # read, drawn and playable: only what is compared must have sound
    assert compare(qtbot, page) == "Not compared: see the message above."
    assert "digital silence" in message(window) and "Traceback" not in window.log_pane.toPlainText()
    assert "--" not in message(window)
    page.choose_segment(LONG_SECONDS - 6.0, LONG_SECONDS - 2.0)
    assert compare(qtbot, page).startswith("✓ pass")
