"""The Audition tab, driven like a user would (offscreen): choose a clip, see it, hear it, compare the
original and converted models on it, read the verdict, export it.

Playing the clip is tested in test_gui_playback.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

import numpy as np  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from speechport.gui.audition import plain_words  # noqa: E402

from conftest import CONFORMER_SHAW, S3PRL  # noqa: E402
from gui_support import assert_says_how_close, choose_clip, compare, drop, message, open_audition  # noqa: E402
from support import checkpoint_path  # noqa: E402

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
SHORT = CONFORMER_SHAW / "audio" / "s_short_0p3s_16k.flac"
NOISE_8K = CONFORMER_SHAW / "audio" / "s_noise_8k_mono.wav"
BASE_MODEL = S3PRL / "base_model"
S3PRL_HEADS = {"sid": "dev-best.ckpt", "sd": "best-states-dev.ckpt", "asv": "states-2.ckpt"}


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """cs_s64 and cs_s48 converted, and a cs_s48 conversion with one layer norm scaled by 1.03."""
    from safetensors.torch import load_file, save_file

    from speechport.core.conversion import convert, prepare

    root = tmp_path_factory.mktemp("audition")
    folders = {}
    for model in ("cs_s64", "cs_s48"):
        folders[model] = convert(prepare(checkpoint_path(model)), root / model).output
    damaged = root / "cs_s48-damaged"
    shutil.copytree(folders["cs_s48"], damaged)
    weights = load_file(damaged / "model.safetensors")
    weights["encoder.layers.1.ffn2_layer_norm.weight"] *= 1.03
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    folders["damaged"] = damaged
    return folders


# -- compare: pass, fail, cached models, export ----------------------------------------------------


def test_good_conversion_passes_with_plots_aligned_in_time_and_exports(make_window, qtbot, answers, converted,
                                                                       tmp_path, run_cli, monkeypatch):
    from speechport.core import conversion

    opened = []
    real_open_sides = conversion.open_sides
    monkeypatch.setattr(conversion, "open_sides", lambda *a, **k: opened.append(a) or real_open_sides(*a, **k))

    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted["cs_s64"])
    for name, kind in (("audioPath", QLineEdit), ("playButton", QPushButton), ("stopButton", QPushButton),
                       ("compareButton", QPushButton), ("compareVerdict", QLabel), ("waveformPlot", QWidget)):
        assert window.findChild(kind, name) is not None, name
    assert window.tabs.tabText(window.tabs.currentIndex()).replace("&", "") == "Audition"
    compare_button = page.findChild(QPushButton, "compareButton")
    assert not compare_button.isEnabled() and "Choose a clip" in page.compare_bar.reason.text()

    # Choose the clip in the file dialog: its waveform is drawn, every 16 kHz sample of it.
    answers.open_file = SPEECH
    qtbot.mouseClick(page.findChild(QWidget, "audioPathBrowse"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.clip is not None)
    from speechport.core.proof.audio import load_clip

    expected = load_clip(SPEECH).waveform
    waveform = page.timeline.waveform
    assert len(waveform.samples()) == len(expected) == len(page.clip.waveform)
    np.testing.assert_array_equal(waveform.samples(), expected)
    assert waveform.getPlotItem().viewRange()[0] == pytest.approx([0.0, len(expected) / 16_000])
    assert "16 kHz mono" in page.findChild(QLabel, "clipInfo").text()

    # Compare (on workers: the GUI-thread guard of conftest.py fails the test otherwise).
    verdict = compare(qtbot, page)
    assert verdict.startswith("✓ pass") and "fail" not in verdict and "≤ 5e-3" in verdict, verdict
    result = page.comparison.clips[0]
    assert result.verdict == "pass" and page.comparison.tolerance == 5e-3
    assert page.findChild(QLabel, "metricMaxAbsDiff").text() != "—"
    assert "first divergent" not in verdict

    # Beside the verdict, one sentence in plain words and plain numbers.
    sentence = page.findChild(QLabel, "compareSentence").text()
    opening = "The converted model's outputs match the original's "
    assert sentence.startswith(opening) and sentence.endswith("."), sentence
    assert 1e-6 < result.max_abs_diff < 1e-4  # this clip's figure: plain digits, far below the tolerance
    assert_says_how_close(sentence[len(opening):-1], result.max_abs_diff, 5e-3)
    assert not page.findChild(QLabel, "compareFixes").isVisible()  # every row proven by the original's own names
    # Every metric says what it means, wherever it is shown.
    assert page.findChild(QLabel, "metricNmse").toolTip() == plain_words.NMSE
    assert page.findChild(QLabel, "metricMaxAbsDiff").toolTip() == plain_words.MAX_DIFF
    assert plain_words.COSINE in page.findChild(QLabel, "metricCosineMin").toolTip()
    assert page.timeline.cosine.toolTip() == plain_words.COSINE
    assert page.view.stage_table.horizontalHeaderItem(1).toolTip() == plain_words.MAX_DIFF
    assert page.timeline.difference.toolTip() == plain_words.DIFF_HEATMAP

    # The per-frame cosine sits on the waveform's time axis, one point per output frame.
    cosine = page.timeline.cosine
    times, values = cosine.curve.getOriginalDataset()
    assert len(values) == result.frames == 207
    assert times[-1] == pytest.approx((result.frames - 0.5) * result.frame_seconds)
    assert times[-1] < page.clip.seconds
    waveform.getPlotItem().setXRange(1.0, 2.0, padding=0)
    for plot in (cosine, page.timeline.original, page.timeline.difference):
        assert plot.getPlotItem().viewRange()[0] == pytest.approx([1.0, 2.0])
    axis_left = [plot.getPlotItem().getAxis("left").width() for plot in page.timeline.plots]
    assert len(set(axis_left)) == 1  # time axes line up pixel for pixel

    # Heatmaps of the output: both models on one scale, the difference within the tolerance.
    timeline = page.timeline
    assert timeline.stage == "output"
    assert timeline.original.image.image.shape == timeline.converted.image.image.shape == (207, 64)
    assert timeline.difference.image.image.max() <= 5e-3
    assert timeline.signed_bar.levels[1] == -timeline.signed_bar.levels[0] > 0
    stages = [page.view.stage_table.item(row, 0).text() for row in range(page.view.stage_table.rowCount())]
    assert stages == ["input_features", "feature_projection", "encoder.layers.0", "encoder.layers.1", "output (compared)"]

    # Export: the JSON `speechport compare --json` prints, plus what was compared; and a picture.
    answers.save_file = tmp_path / "comparison.json"
    qtbot.mouseClick(page.findChild(QPushButton, "exportJsonButton"), Qt.MouseButton.LeftButton)
    exported = json.loads((tmp_path / "comparison.json").read_text())
    assert exported["clip"] == str(SPEECH) and exported["converted"] == str(converted["cs_s64"])
    assert exported["source"] == str(checkpoint_path("cs_s64")) and exported["channels"] == "first"
    code, stdout, _ = run_cli("compare", checkpoint_path("cs_s64"), converted["cs_s64"], "--audio", SPEECH, "--json")
    cli = json.loads(stdout)
    assert code == 0 and exported["verdict"] == cli["verdict"] == "pass"
    assert {k: v for k, v in exported.items() if k in cli and k != "clips"} == {k: v for k, v in cli.items() if k != "clips"}
    timing = {"seconds_original", "seconds_converted"}
    assert {k: v for k, v in exported["clips"][0].items() if k not in timing} == \
        {k: v for k, v in cli["clips"][0].items() if k not in timing}
    answers.save_file = tmp_path / "comparison.png"
    qtbot.mouseClick(page.findChild(QPushButton, "exportPngButton"), Qt.MouseButton.LeftButton)
    picture = QImage(str(tmp_path / "comparison.png"))
    assert not picture.isNull() and picture.width() > 600 and picture.height() > 300

    # A second clip (8 kHz, resampled) compares with the models still loaded.
    opened_before = len(opened)
    assert "both models are loaded" in page.compare_bar.reason.text()
    choose_clip(qtbot, page, NOISE_8K)
    assert "resampled from 8 kHz" in page.findChild(QLabel, "clipInfo").text()
    assert page.findChild(QLabel, "compareVerdict").text() == "Not compared yet."  # results belong to a clip
    assert compare(qtbot, page).startswith("✓ pass")
    assert len(opened) == opened_before  # the models were not opened again
    assert page.comparison.clips[0].frames == 74


def test_damaged_conversion_fails_and_names_the_first_divergent_layer(make_window, qtbot, converted, tmp_path):
    window = make_window(source=checkpoint_path("cs_s48"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted["damaged"])
    choose_clip(qtbot, page, SPEECH)
    verdict = compare(qtbot, page)
    assert verdict.startswith("✕ fail") and "> 5e-3" in verdict, verdict
    assert "first divergent layer: encoder.layers.1" in verdict
    result = page.comparison.clips[0]
    sentence = page.findChild(QLabel, "compareSentence").text()
    assert sentence == (f"The converted model's outputs differ from the original's by up to "
                        f"{plain_words.plain_number(result.max_abs_diff)} (the tolerance is 0.005), starting at "
                        "encoder.layers.1: the conversion is wrong there."), sentence
    assert re.search(r"by up to 0\.0\d+ \(", sentence)  # written out, no exponent
    assert result.verdict == "fail" and result.first_divergent_layer == "encoder.layers.1"
    assert page.view.verdict_kind == "fail"

    table = page.view.stage_table
    rows = {table.item(row, 0).text(): row for row in range(table.rowCount())}
    divergent = rows["encoder.layers.1"]
    assert table.item(divergent, 2).text() == "✕ first" and table.item(divergent, 0).font().bold()
    assert table.item(rows["encoder.layers.0"], 2).text() == "✓"
    assert page.timeline.difference.image.image.max() > 5e-3  # encoder.layers.1 differs beyond the tolerance
    _times, values = page.timeline.cosine.curve.getOriginalDataset()
    assert min(values) < 1.0 - 1e-6 and page.timeline.cosine.getPlotItem().viewRange()[1][0] < min(values)

    # The heatmaps open where the models start to disagree; clicking another stage shows its own.
    assert page.timeline.stage == "encoder.layers.1" and table.currentRow() == divergent
    assert "encoder.layers.1" in page.timeline.caption.text()
    table.selectRow(rows["output (compared)"])
    assert page.timeline.stage == "output" and "the output" in page.timeline.caption.text()
    assert "fail (max |diff|" in window.log_pane.toPlainText()
    assert "first divergent layer encoder.layers.1" in window.log_pane.toPlainText()


def test_comparing_can_be_cancelled_and_bad_clips_are_messages(make_window, qtbot, converted, tmp_path, monkeypatch):
    from speechport.core import conversion

    real_open_sides = conversion.open_sides
    loaded = threading.Event()  # a slow disk: loading the models takes until the test says

    def slow_open_sides(*args, progress, **kwargs):
        progress.stage("loading the original model")
        assert loaded.wait(timeout=120), "the test never let the loading finish"
        progress.check()
        return real_open_sides(*args, progress=progress, **kwargs)

    monkeypatch.setattr(conversion, "open_sides", slow_open_sides)
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted["cs_s64"])
    choose_clip(qtbot, page, SHORT)
    cancel = page.findChild(QPushButton, "compareCancelButton")
    assert not cancel.isEnabled()
    qtbot.mouseClick(page.findChild(QPushButton, "compareButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Loading the original model" in page.compare_bar.progress_bar.format())
    assert cancel.isEnabled() and not page.findChild(QPushButton, "compareButton").isEnabled()
    assert window.act_cancel.isEnabled()
    qtbot.keyClick(page.view, Qt.Key.Key_Escape)  # Esc stops what runs, as anywhere in the window
    loaded.set()
    qtbot.waitUntil(lambda: page.compare_bar.task is None)
    assert page.findChild(QLabel, "compareVerdict").text() == "Not compared: cancelled."
    assert page.compare_bar.sides_cache.sides is None  # nothing half-opened is kept

    # A file that is no audio: one sentence, no traceback, and Compare stays off.
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are notes, not sound\n")
    page.choose_clip(not_audio)
    qtbot.waitUntil(lambda: page.clip_task is None)
    assert window.message_bar.kind == "error" and "not an audio file" in message(window)
    assert "Traceback" not in message(window) and "Traceback" not in window.log_pane.toPlainText()
    assert page.clip is None and not page.findChild(QPushButton, "compareButton").isEnabled()
    assert not page.findChild(QPushButton, "playButton").isEnabled()

    # A folder that is not a conversion of this checkpoint: a message too.
    page.compare_bar.converted_field.commit(str(tmp_path))
    choose_clip(qtbot, page, SHORT)
    monkeypatch.setattr(conversion, "open_sides", real_open_sides)
    compare(qtbot, page)
    assert "Not compared" in message(window) and "config.json" in message(window)
    assert page.findChild(QLabel, "compareVerdict").text() == "Not compared: see the message above."


class SteppedClock:
    """The core's progress clock, moved one second by each layer the test lets through: the time left
    the bar shows is then exact, whatever else the machine is doing."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class GatedLayers:
    """A side whose every layer waits for the test to let it through, and then takes one second of the
    stepped clock: a comparison the test walks through layer by layer."""

    def __init__(self, side, gate: threading.Semaphore, clock: SteppedClock, ticks: list):
        from speechport.core.proof.verification import side_steps

        self.side, self.gate, self.clock, self.ticks = side, gate, clock, ticks
        self.steps = side_steps(side)

    def __call__(self, clip, tick):
        def gated_tick():
            assert self.gate.acquire(timeout=120), "the test never let this layer through"
            self.clock.now += 1.0
            self.ticks.append(self.clock.now)
            tick()  # reports the layer, and stops here when cancelled

        return self.side(clip, tick=gated_tick)


def test_the_compare_bar_says_how_far_and_how_long_and_cancel_stops_between_layers(make_window, qtbot, converted,
                                                                                    tmp_path, monkeypatch):
    from speechport.core import progress
    from speechport.core.proof import verification

    ticks: list[float] = []
    gate = threading.Semaphore(0)
    clock = SteppedClock()
    monkeypatch.setattr(progress, "time", clock)
    real_run_side = verification.run_side
    monkeypatch.setattr(verification, "run_side",
                        lambda side, clip, progress: real_run_side(GatedLayers(side, gate, clock, ticks), clip, progress))
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted["cs_s64"])
    choose_clip(qtbot, page, SPEECH)
    bar = page.compare_bar.progress_bar
    layers = 2 * 3  # cs_s64: the frontend and two layers, in each model

    qtbot.mouseClick(page.findChild(QPushButton, "compareButton"), Qt.MouseButton.LeftButton)
    for done in range(1, layers):
        gate.release()
        # `done` of the six layers took a second each: the rest take about as long again.
        expected = f"Comparing s_speech_16k_mono.wav — {int(done / layers * 100)} % — about {layers - done} s left"
        qtbot.waitUntil(lambda expected=expected: bar.format() == expected)
        assert bar.value() == int(done / layers * 1000)
    gate.release()
    qtbot.waitUntil(lambda: page.compare_bar.task is None)
    assert page.comparison is not None and bar.format().startswith("pass · ")
    assert len(ticks) == layers

    # Cancel while the models run: the comparison stops before the next layer.
    ticks.clear()
    qtbot.mouseClick(page.findChild(QPushButton, "compareButton"), Qt.MouseButton.LeftButton)
    gate.release(2)
    qtbot.waitUntil(lambda: bar.format().startswith("Comparing s_speech_16k_mono.wav — 33 %"))
    qtbot.mouseClick(page.findChild(QPushButton, "compareCancelButton"), Qt.MouseButton.LeftButton)
    assert bar.format() == "Cancelling…"
    gate.release(layers)  # the layer under way finishes; the next one is never started
    qtbot.waitUntil(lambda: page.compare_bar.task is None)
    assert len(ticks) == 3
    assert page.findChild(QLabel, "compareVerdict").text() == "Not compared: cancelled."
    assert bar.format() == "Cancelled" and "Comparison cancelled." in window.log_pane.toPlainText()


QUERY = "encoder.layers.1.self_attn.query"
LINEAR_Q = "encoder.layers.1.self_attn.linear_q"


def test_rows_proven_only_through_the_users_fixes_are_said_beside_the_verdict(make_window, qtbot, tmp_path):
    import torch

    from support import load_fs2

    state = load_fs2("cs_s64")
    for part in ("weight", "bias"):  # a name no rule knows
        state[f"{QUERY}.{part}"] = state.pop(f"encoder.layers.1.self_attn.q_proj.{part}")
    source = tmp_path / "renamed.pt"
    torch.save({"model": state}, source)
    window = make_window(source=source, output=tmp_path / "out")
    qtbot.waitUntil(lambda: not window.busy())
    for part in ("weight", "bias"):
        window.rename_target(f"{QUERY}.{part}", f"{LINEAR_Q}.{part}")
    window.convert()
    qtbot.waitUntil(lambda: not window.busy() and window.result is not None)
    page = open_audition(qtbot, window)  # compares against the conversion just made
    choose_clip(qtbot, page, SPEECH)
    assert compare(qtbot, page).startswith("✓ pass")
    assert len(page.comparison.fixes_used) == 2

    fixes = page.findChild(QLabel, "compareFixes")
    rows = page.findChild(QLabel, "compareFixesRows")
    assert fixes.isVisible() and "2 rows proven only through your fixes" in fixes.text()
    assert f"{QUERY}.weight → {LINEAR_Q}.weight" in fixes.toolTip() and f"{QUERY}.bias" in fixes.toolTip()
    assert not rows.isVisible()
    fixes.linkActivated.emit("rows")  # "Which rows?"
    assert rows.isVisible() and rows.text().splitlines() == [f"{QUERY}.weight → {LINEAR_Q}.weight",
                                                             f"{QUERY}.bias → {LINEAR_Q}.bias"]
    assert "Hide the rows" in fixes.text()
    fixes.linkActivated.emit("rows")
    assert not rows.isVisible()


@pytest.fixture(scope="module")
def s3prl_converted(tmp_path_factory):
    """The SID, SD and ASV heads of the S3PRL fixtures, converted with their base model."""
    from speechport.core.conversion import convert, prepare

    root = tmp_path_factory.mktemp("s3prl")
    speakers = json.loads((S3PRL / "sid" / "hf_converted" / "config.json").read_text())["id2label"]
    labels = root / "speakers.txt"  # the speakers' names, as `--labels` takes them
    labels.write_text("".join(f"{speakers[str(index)]}\n" for index in range(len(speakers))))
    return {task: convert(prepare(S3PRL / task / checkpoint, base_model=BASE_MODEL,
                                  labels=labels if task == "sid" else None), root / task).output
            for task, checkpoint in S3PRL_HEADS.items()}


def time_plots_shown(timeline) -> list[str]:
    plots = (timeline.cosine, timeline.original, timeline.converted, timeline.difference, timeline.activity)
    return [plot.objectName() for plot in plots if plot.isVisible()]


@pytest.mark.parametrize("task", ["sid", "sd", "asv"])
def test_s3prl_heads_show_what_they_compute(make_window, qtbot, s3prl_converted, task):
    window = make_window(source=S3PRL / task / S3PRL_HEADS[task], base_model=BASE_MODEL)
    page = open_audition(qtbot, window, s3prl_converted[task])
    drop(window, S3PRL / "audio" / "fox_16k.wav")  # dropping a clip anywhere on the window auditions it
    qtbot.waitUntil(lambda: page.clip is not None)
    assert compare(qtbot, page).startswith("✓ pass")
    result = page.comparison.clips[0]
    view, timeline = page.view, page.timeline
    sentence = view.findChild(QLabel, "compareSentence").text()
    assert view.task_box.isVisible()
    if task == "sid":
        # One answer for the whole clip: label bars, not plots over time.
        top5 = result.details["top5"]
        best = top5[0]
        assert timeline.answer.isVisible() and time_plots_shown(timeline) == []
        bars = timeline.findChild(QWidget, "labelBars")
        assert bars.isVisible() and bars.entries == top5 and len(top5) == 5
        qtbot.waitUntil(lambda: bars.height() >= bars.minimumSizeHint().height())  # every label's two bars fit
        assert best["label"].startswith("id1")  # a speaker's name, from the labels file
        picks = f"Both models pick '{best['label']}' ({round(best['original'] * 100)} % vs " \
                f"{round(best['converted'] * 100)} %); their scores match "
        assert sentence.startswith(picks) and sentence.endswith("."), sentence
        assert_says_how_close(sentence[len(picks):-1], result.max_abs_diff, 5e-3)
        table = view.findChild(QWidget, "top5Table")
        assert view.task_box.title() == "Top-5 labels of both models" and table.rowCount() == 5
        for row, entry in enumerate(top5):
            assert table.item(row, 0).text() == entry["label"]
            assert table.item(row, 1).text() == f"{entry['original']:.1%}"
            assert table.item(row, 2).text() == f"{entry['converted']:.1%}"
        assert [table.horizontalHeaderItem(c).text() for c in range(3)] == ["Label", "Original", "Converted"]
        assert view.findChild(QLabel, "top5Agreement").text().startswith(f"Top-1 label agrees: both pick '{best['label']}'")
        # As tall as its rows: nothing to scroll inside it.
        assert table.verticalScrollBar().maximum() == 0
        assert table.height() >= table.horizontalHeader().height() + 5 * table.rowHeight(0)
        # The stages have no heatmaps to show: nothing to click.
        assert "click" not in view.stages_title.text()
        assert view.stage_table.selectionMode() == view.stage_table.SelectionMode.NoSelection
    elif task == "sd":
        # Frames over time: the plots stay, with each speaker's activity.
        assert not timeline.answer.isVisible()
        assert time_plots_shown(timeline) == ["cosinePlot", "originalHeatmap", "convertedHeatmap", "differenceHeatmap",
                                              "activityPlot"]
        activity = timeline.activity
        speakers = result.original.primary.shape[1]
        assert len(activity.activity_curves) == 2 * speakers
        for curve in activity.activity_curves:  # one lane per speaker and model, frame by frame
            assert len(curve.active) == result.frames
        assert activity.getPlotItem().getViewBox().height() >= 2 * speakers * 0.8 * activity.fontMetrics().height()
        assert view.speaker_table.rowCount() == speakers
        assert window.minimumSizeHint().height() <= 700  # the extra timeline never makes the window taller
        assert sentence.startswith("The converted model's outputs match the original's "), sentence
    else:
        # One embedding per clip: how alike the two models' embeddings are, as one figure.
        cosine = result.details["verification_embedding_cosine"]
        assert timeline.answer.isVisible() and time_plots_shown(timeline) == []
        assert timeline.findChild(QLabel, "similarityFigure").text() == f"{cosine:.6f}"
        assert "1 means" in timeline.findChild(QLabel, "similarityWords").text()
        assert view.embedding_label.text().endswith(f"{cosine:.6f}")
        assert sentence.startswith(f"The two models describe the speaker the same way (similarity {cosine:.6f}, "
                                   "where 1 means identical); the embeddings' values match "), sentence
    assert view.notes.text().startswith("•")


def test_the_default_tolerance_is_the_cores():
    from speechport.core.proof.comparison import DEFAULT_TOLERANCE
    from speechport.gui.audition.compare_bar import DEFAULT_TOLERANCE as shown

    assert float(shown) == DEFAULT_TOLERANCE


def test_many_signals_from_python_do_not_abort_the_process():
    """PySide6 6.12 on Python < 3.12 loses a reference to True per emit(); gui/shared/refcount_guard.py
    keeps that from aborting the interpreter (the window and pyqtgraph emit thousands)."""
    script = r"""
import speechport.gui  # the guard is applied on import
from PySide6.QtCore import QCoreApplication, QObject, Signal
app = QCoreApplication([])
class Pinger(QObject):
    ping = Signal(float)
pinger = Pinger()
pinger.ping.connect(lambda value: None)
for n in range(200_000):
    pinger.ping.emit(n)
print("done")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]
