"""In the window: a comparison is recorded in the converted folder and the Report tab says the latest
verdict (never a pass for weights changed since); class names chosen after converting ask for one
click to convert again instead of leaving stale bars; diarization lanes and the Labels row use the
same names."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLabel, QPushButton, QWidget  # noqa: E402
from test_proof_record import edit_weights_in_place  # noqa: E402

from speechport.core.proof.model_card import WEIGHTS_CHANGED  # noqa: E402
from speechport.core.proof.report import REPORT_NAME  # noqa: E402
from speechport.gui.audition.compare_bar import RECORDED_BY  # noqa: E402

from conftest import CONFORMER_SHAW, S3PRL  # noqa: E402
from gui_support import choose_clip, compare, convert_button, message, open_audition, wait_idle, wait_open  # noqa: E402
from support import checkpoint_path  # noqa: E402

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
FOX = S3PRL / "audio" / "fox_16k.wav"
BASE_MODEL = S3PRL / "base_model"


def convert_in_window(qtbot, window) -> None:
    previous = window.result
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.result is not None and window.result is not previous, message(window)


def report_text(window) -> str:
    return window.report_view.toPlainText()


def wait_report(qtbot, window, phrase: str) -> str:
    """The Report tab once its check of the folder (on a worker) says `phrase`."""
    qtbot.waitUntil(lambda: phrase in report_text(window) and not window.busy())
    return report_text(window)


def show_report_tab(qtbot, window) -> None:
    """Show the Report tab afresh (it checks the folder's weights each time it is shown)."""
    window.tabs.setCurrentWidget(window.mapping_page)
    window.tabs.setCurrentWidget(window.report_view)
    qtbot.waitUntil(lambda: window.report_view.isVisible())


def test_a_window_comparison_is_recorded_and_the_report_tab_never_claims_a_pass_for_other_weights(
        make_window, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    convert_in_window(qtbot, window)
    folder = window.result.output
    show_report_tab(qtbot, window)
    assert "Not compared with the original model yet" in wait_report(qtbot, window, "Verification")

    page = open_audition(qtbot, window)
    choose_clip(qtbot, page, SPEECH)
    assert compare(qtbot, page).startswith("✓ pass")
    latest = json.loads((folder / REPORT_NAME).read_text())["verification"]
    assert latest["verdict"] == "pass" and latest["by"] == RECORDED_BY
    assert latest["clips"][0]["clip"]["name"] == SPEECH.name
    assert "## Verification" in (folder / "README.md").read_text() and "**pass**" in (folder / "README.md").read_text()
    assert f"Recorded in {folder / REPORT_NAME} and README.md" in window.log_pane.toPlainText()

    show_report_tab(qtbot, window)
    text = wait_report(qtbot, window, "Verified: pass")
    assert f"Verified: pass — on {SPEECH.name} (" in text and RECORDED_BY in text and WEIGHTS_CHANGED not in text

    edit_weights_in_place(folder / "model.safetensors")  # same size, same modification time
    show_report_tab(qtbot, window)
    text = wait_report(qtbot, window, "Not verified for these weights")
    assert WEIGHTS_CHANGED in text and "Verified: pass" not in text


def test_a_labels_file_chosen_after_converting_asks_to_convert_again(make_window, qtbot, answers, tmp_path):
    head = tmp_path / "sid" / "dev-best.ckpt"
    head.parent.mkdir()
    shutil.copy(S3PRL / "sid" / "dev-best.ckpt", head)
    window = make_window(source=head, base_model=BASE_MODEL, output=tmp_path / "out")
    wait_open(qtbot, window)
    convert_in_window(qtbot, window)
    assert window.message_bar.kind == "success"
    page = open_audition(qtbot, window)
    choose_clip(qtbot, page, FOX)
    assert compare(qtbot, page).startswith("✓ pass")
    bars = page.timeline.findChild(QWidget, "labelBars")
    assert all(entry["label"].startswith("LABEL_") for entry in bars.entries)

    classes = window.prepared.config.config.num_labels
    names = [f"speaker_{n:02d}" for n in range(classes)]
    labels = tmp_path / "speakers.txt"
    labels.write_text("\n".join(names) + "\n")
    window.inputs.labels_field.commit(labels)
    wait_idle(qtbot, window)
    assert window.prepared.labels == names
    assert window.message_bar.kind == "warning"  # no longer the green banner over a folder of LABEL_n
    assert message(window).startswith(f"{window.result.output.name} was converted with the classes named LABEL_0, "
                                      "LABEL_1, LABEL_2, LABEL_3 … (7 in all); they are now speaker_00")
    info = window.findChild(QLabel, "labelsInfo")
    assert info.text() == f"names the {classes} classes — not in the folder yet: convert again"

    again = window.findChild(QPushButton, "convertAgainButton")
    assert again.isVisible()
    qtbot.mouseClick(again, Qt.MouseButton.LeftButton)  # one click: the window's own folder is replaced, unasked
    wait_idle(qtbot, window)
    assert answers.questions == [] and window.message_bar.kind == "success"
    config = json.loads((window.result.output / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(classes)] == names
    assert info.text() == f"names the {classes} classes"

    assert compare(qtbot, page).startswith("✓ pass")
    assert {entry["label"] for entry in bars.entries} <= set(names) and len(bars.entries) == 5


def lane_names(page) -> list[str]:
    axis = page.timeline.activity.getPlotItem().getAxis("left")
    return [text for _position, text in axis._tickLevels[0]]


def test_diarization_lanes_and_the_labels_row_use_the_same_names(make_window, qtbot, tmp_path):
    window = make_window(source=S3PRL / "sd" / "best-states-dev.ckpt", base_model=BASE_MODEL, output=tmp_path / "out")
    wait_open(qtbot, window)
    info = window.findChild(QLabel, "labelsInfo")
    assert info.text() == "2 classes; without a file, LABEL_0 to LABEL_1"
    assert info.toolTip() == "LABEL_n: S3PRL's diarization task names no speakers; give a labels file to name them"
    convert_in_window(qtbot, window)
    page = open_audition(qtbot, window)
    choose_clip(qtbot, page, FOX)
    assert compare(qtbot, page).startswith("✓ pass")
    assert lane_names(page) == ["LABEL_0", "LABEL_1"]
    speakers = page.view.speaker_table
    assert [speakers.item(row, 0).text() for row in range(2)] == ["LABEL_0", "LABEL_1"]

    labels = tmp_path / "speakers.txt"
    labels.write_text("alice\nbob\n")
    window.inputs.labels_field.commit(labels)
    wait_idle(qtbot, window)
    qtbot.mouseClick(window.findChild(QPushButton, "convertAgainButton"), Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert info.text() == "names the 2 classes" and info.toolTip() == f"From the labels file {labels}"
    assert compare(qtbot, page).startswith("✓ pass")
    assert lane_names(page) == ["alice", "bob"]
    assert [speakers.item(row, 0).text() for row in range(2)] == ["alice", "bob"]


def test_the_labels_row_says_where_the_names_come_from(make_window, qtbot, tmp_path):
    window = make_window(source=S3PRL / "er" / "dev-best.ckpt", base_model=BASE_MODEL)
    wait_open(qtbot, window)
    info = window.findChild(QLabel, "labelsInfo")
    assert info.text() == "4 classes: S3PRL's emotion task classes (neu, hap, ang, sad)"
    assert info.toolTip().startswith("S3PRL's emotion task classes (IEMOCAP's")

    from test_s3prl_labels import head_with_classes

    window = make_window(source=head_with_classes(tmp_path, "er", 5), base_model=BASE_MODEL)
    wait_open(qtbot, window)
    info = window.findChild(QLabel, "labelsInfo")
    assert info.text() == "5 classes; without a file, LABEL_0 to LABEL_4 (S3PRL's emotion task has 4)"
    assert info.toolTip() == ("LABEL_n: the head has 5 classes, but S3PRL's emotion task has 4 (neu, hap, ang, sad), "
                              "so it was trained on other classes; give a labels file to name them")
