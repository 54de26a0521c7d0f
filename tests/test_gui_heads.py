"""S3PRL heads in the window: the labels file of a head that gives classes, and the warning before
Convert when rows the recipe refuses (what transformers cannot compute) are dropped on purpose."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLabel, QLineEdit  # noqa: E402

from speechport.core.planning.plan import Status  # noqa: E402

from conftest import S3PRL  # noqa: E402
from gui_support import convert_button, drop, message, press, table, wait_idle, wait_open  # noqa: E402
from support import checkpoint_path  # noqa: E402

BASE_MODEL = S3PRL / "base_model"


def labels_row_shown(window) -> bool:
    return window.findChild(QLineEdit, "labelsPath").isVisible()


def test_a_classification_head_takes_its_labels_file_and_forgets_it_with_the_checkpoint(make_window, qtbot, tmp_path):
    head = tmp_path / "sid" / "dev-best.ckpt"
    head.parent.mkdir()
    shutil.copy(S3PRL / "sid" / "dev-best.ckpt", head)
    window = make_window(source=head, base_model=BASE_MODEL)
    wait_open(qtbot, window)
    info = window.findChild(QLabel, "labelsInfo")
    classes = window.prepared.config.config.num_labels
    assert labels_row_shown(window) and info.text() == f"{classes} classes; without a file, LABEL_0 to LABEL_{classes - 1}"
    assert window.prepared.config.config.id2label[0] == "LABEL_0"

    names = [f"speaker_{n:02d}" for n in range(classes)]
    labels = tmp_path / "speakers.txt"
    labels.write_text("\n".join(names) + "\n")
    drop(window, labels)  # a .txt dropped while a classification head is open: its labels
    qtbot.waitUntil(lambda: window.prepared is not None and window.prepared.labels is not None and not window.busy())
    assert window.findChild(QLineEdit, "labelsPath").text() == str(labels)
    assert window.prepared.labels == names and window.prepared.labels_path == labels
    assert window.prepared.config.config.id2label[classes - 1] == names[-1]
    assert info.text() == f"names the {classes} classes" and convert_button(window).isEnabled()

    short = tmp_path / "short.txt"
    short.write_text("\n".join(names[:-1]) + "\n")
    window.inputs.labels_field.commit(short)
    wait_idle(qtbot, window)
    assert window.prepared is None and window.message_bar.kind == "error"
    assert f"has {classes - 1} labels, but the head has {classes} classes" in message(window)
    assert labels_row_shown(window)  # still there to be fixed

    window.open_source(checkpoint_path("cs_s64"))  # another checkpoint: its own inputs
    wait_open(qtbot, window)
    assert window.workspace.labels == "" and window.findChild(QLineEdit, "labelsPath").text() == ""
    assert not labels_row_shown(window)
    drop(window, labels)  # a labels file means nothing to an encoder: said, not opened as a checkpoint
    assert "classification head" in window.statusBar().currentMessage()
    assert window.workspace.labels == "" and window.prepared.source == checkpoint_path("cs_s64")


def test_dropping_rows_the_recipe_refuses_warns_before_convert(make_window, qtbot, tmp_path):
    window = make_window(source=S3PRL / "sd_lstm" / "best-states-dev.ckpt", base_model=BASE_MODEL,
                         output=tmp_path / "out")
    wait_open(qtbot, window)
    warning = window.findChild(QLabel, "differenceWarningText")
    lstm = [row.source_key for row in window.prepared.plan.problems()]
    assert lstm and all(".rnn." in key for key in lstm) and not warning.isVisible()
    assert not convert_button(window).isEnabled()

    qtbot.keyClicks(window.findChild(QLineEdit, "mappingFilter"), "model.rnn")
    table(window).selectAll()
    press(qtbot, window, Qt.Key.Key_Delete)  # the user drops the LSTM: the head computes something else now
    assert all(window.model.row_at(window.model.row_of_source(key)).status is Status.DROPPED for key in lstm)
    assert window.prepared.plan.ok and convert_button(window).isEnabled()
    assert warning.isVisible()
    assert warning.text() == ("Dropping these rows changes what the model computes: " + ", ".join(lstm)
                              + ". The converted model will not match the original on audio.")
    assert "diarization LSTM" in window.findChild(QLabel, "differenceWarningText").parent().toolTip()

    window.act_undo.trigger()
    assert not warning.isVisible() and not convert_button(window).isEnabled()
