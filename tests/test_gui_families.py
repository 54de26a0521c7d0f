"""The window on every family: a head's base model may be an original upstream checkpoint file
(converted along with the head), the core's refusals arrive as messages, and a UnitY speech encoder
is refused whole with the inner-encoder conversion offered as an explicit choice.

Every question and file dialog is answered by the test (`answers` in conftest.py).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QMenu, QPushButton  # noqa: E402

from speechport.core.planning.plan import Status  # noqa: E402

from conftest import FIXTURES  # noqa: E402
from gui_support import OPEN_TIMEOUT_MS, choose_clip, compare, convert_button, message, wait_idle, wait_open  # noqa: E402
from support import checkpoint_path, unity_checkpoint  # noqa: E402

UPSTREAMS_DIR = FIXTURES / "s3prl_upstreams"
TASKS = {task["name"]: task for task in json.loads((UPSTREAMS_DIR / "MANIFEST.json").read_text())["downstream_tasks"]}


def head(name):
    return UPSTREAMS_DIR / TASKS[name]["checkpoint"]


def upstream_file(name):
    return UPSTREAMS_DIR / TASKS[name]["upstream_file"]


def convert_reason(window) -> str:
    return window.findChild(QLabel, "convertReason").text()


def convert_in_window(qtbot, window):
    assert convert_button(window).isEnabled(), convert_reason(window)
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.result is not None or not window.busy(), timeout=OPEN_TIMEOUT_MS)
    assert window.result is not None, message(window)
    return window.result


def test_a_head_asks_for_its_base_model_and_takes_an_upstream_file(make_window, answers, qtbot, tmp_path):
    window = make_window(source=head("wavlm_sid"), output=tmp_path / "out")
    wait_idle(qtbot, window)
    assert window.prepared is None and "holds only a downstream head" in message(window)
    assert "original checkpoint file" in message(window)
    answers.open_file = upstream_file("wavlm_sid")
    qtbot.mouseClick(window.message_bar.button("chooseBaseModelFileButton"), Qt.MouseButton.LeftButton)
    wait_open(qtbot, window)
    assert window.findChild(QLineEdit, "baseModelPath").text() == str(upstream_file("wavlm_sid"))
    prepared = window.prepared
    assert prepared.plan.ok and prepared.plan.target_class == "WavLMForSequenceClassification"
    # Both are in the table: the head's rows and the upstream's, every one mapped or dropped with a reason.
    sources = [window.model.row_at(row).source_key for row in range(window.model.rowCount())]
    assert any(key.startswith("Downstream.projector.") for key in sources)
    assert any(key.startswith("BaseModel.encoder.layers.") for key in sources)
    assert window.findChild(QLabel, "baseModelInfo").text() == "a wavlm upstream file: converted with the head"
    result = convert_in_window(qtbot, window)
    report = json.loads((result.output / "speechport_report.json").read_text())
    assert report["recipe"]["name"] == "s3prl" and report["base_model"] == str(upstream_file("wavlm_sid"))
    assert report["base_model_recipe"]["recipe"] == "wavlm" and report["base_model_recipe"]["target_class"] == "WavLMModel"
    # The audition runs the head on the original upstream (our reference of it) against the converted folder.
    page = window.show_audition()
    choose_clip(qtbot, page, UPSTREAMS_DIR / "audio" / "speechlike_1p0s.wav")
    assert compare(qtbot, page).startswith("✓ pass")
    assert page.comparison.clips[0].max_abs_diff < 1e-4


def test_the_base_model_field_asks_folder_or_file_before_its_dialog(make_window, answers, qtbot, tmp_path):
    window = make_window(source=head("wavlm_sid"), output=tmp_path / "out")
    wait_idle(qtbot, window)
    field = window.inputs.base_model_field
    menu = field.findChild(QMenu, "baseModelPathKind")
    assert not menu.isVisible()
    field.browse.click()
    qtbot.waitUntil(menu.isVisible)
    assert [action.text() for action in menu.actions()] == ["A folder…", "A file…"]
    answers.open_file = upstream_file("wavlm_sid")
    menu.actions()[1].trigger()
    menu.close()
    wait_open(qtbot, window)
    assert window.prepared.base_model == upstream_file("wavlm_sid")


def test_a_pre_ln_upstream_under_a_weighted_layer_sum_is_refused_in_the_table(make_window, qtbot, tmp_path):
    window = make_window(source=head("hubert_large_sid"), base_model=upstream_file("hubert_large_sid"),
                         output=tmp_path / "out")
    wait_open(qtbot, window)
    assert not window.prepared.plan.ok and not convert_button(window).isEnabled()
    refused = [row for row in window.prepared.plan.problems()]
    assert [row.source_key for row in refused] == ["BaseModel.cfg.layer_norm_first (weighted layer sum)"]
    assert refused[0].status is Status.UNMAPPED and "transformers' hidden_states[-1] is before it" in refused[0].reason
    assert "layer_norm_first" in convert_reason(window)
    assert not (tmp_path / "out").exists()


def test_a_head_the_family_has_no_class_for_is_refused_as_a_message(make_window, qtbot, tmp_path):
    hubert = UPSTREAMS_DIR / "upstreams" / "hubert_base" / "hubert_base.s3prl_converted.pt"
    window = make_window(source=head("wavlm_asv"), base_model=hubert, output=tmp_path / "out")
    wait_idle(qtbot, window)
    assert window.prepared is None and "transformers has no HubertForXVector" in message(window)
    assert "Traceback" not in message(window) and not convert_button(window).isEnabled()


def test_a_unity_speech_encoder_is_refused_whole_and_its_inner_encoder_converts_when_chosen(
        make_window, qtbot, tmp_path):
    source = unity_checkpoint(tmp_path / "unity.pt", m4t=False)
    window = make_window(source=source, output=tmp_path / "out")
    wait_open(qtbot, window)
    assert window.prepared.recipe.name == "unity_speech_encoder" and not window.prepared.plan.ok
    assert not convert_button(window).isEnabled()
    text = message(window)
    assert "cannot be converted whole" in text and "LayerNorm" in text, text
    refused = {row.source_key for row in window.prepared.plan.problems()}
    assert refused == {"encoder.inner_layer_norm.weight", "encoder.inner_layer_norm.bias",
                       "encoder.layer_norm.weight", "encoder.layer_norm.bias"}

    qtbot.mouseClick(window.message_bar.button("alternativeRecipeButton"), Qt.MouseButton.LeftButton)
    wait_open(qtbot, window)
    assert window.prepared.recipe.name == "unity_inner_encoder" and window.prepared.plan.ok
    assert "as you chose" in message(window)
    assert window.findChild(QLabel, "recipeLabel").text().startswith("unity_inner_encoder · chosen by you")
    detect_again = window.findChild(QPushButton, "detectRecipeButton")
    assert detect_again.isVisible()
    result = convert_in_window(qtbot, window)
    config = json.loads((result.output / "config.json").read_text())
    assert config["architectures"] == ["Wav2Vec2BertModel"]

    # The way back, and a new checkpoint is detected afresh.
    qtbot.mouseClick(detect_again, Qt.MouseButton.LeftButton)
    wait_open(qtbot, window)
    assert window.prepared.recipe.name == "unity_speech_encoder" and not detect_again.isVisible()
    assert window.message_bar.button("alternativeRecipeButton") is not None
    window.open_source(checkpoint_path("cs_s64"))
    QApplication.processEvents()
    wait_open(qtbot, window)
    assert window.workspace.recipe == "" and window.prepared.recipe.name == "conformer_shaw"
