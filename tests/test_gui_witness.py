"""The Audition tab's original side: Speechport's reference, or the genuine fairseq2 in its witness once
installed; and the install itself, offered in the window with its size and time said first, run in the
background with progress, cancelled without a trace."""

from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QComboBox, QMessageBox, QPushButton  # noqa: E402

from speechport.core.errors import Cancelled  # noqa: E402
from speechport.core.witnesses import environments  # noqa: E402

from conftest import CONFORMER_SHAW  # noqa: E402
from gui_support import choose_clip, compare, open_audition  # noqa: E402
from support import checkpoint_path  # noqa: E402

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"


@pytest.fixture
def no_witness(tmp_path, monkeypatch):
    home = tmp_path / "witnesses"
    monkeypatch.setenv(environments.WITNESS_HOME_ENV, str(home))
    return home


def backends(page) -> list[str]:
    combo = page.findChild(QComboBox, "originalBackendCombo")
    return [combo.itemText(i) for i in range(combo.count())]


def pick_install(qtbot, page) -> None:
    """Choose "Install the fairseq2 witness…" in the original's list, from the keyboard."""
    combo = page.findChild(QComboBox, "originalBackendCombo")
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_End)  # the last entry


def test_without_the_witness_the_reference_runs_and_installing_is_offered(make_window, qtbot, answers, no_witness,
                                                                           tmp_path, monkeypatch):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window)
    qtbot.waitUntil(page.compare_bar.isVisible)
    combo = page.findChild(QComboBox, "originalBackendCombo")
    assert combo.isVisible() and backends(page) == ["Speechport reference", "Install the fairseq2 witness…"]
    # The size and the time are said before anything starts; No means nothing happens.
    answers.reply = QMessageBox.StandardButton.No
    pick_install(qtbot, page)
    qtbot.waitUntil(lambda: len(answers.questions) == 1)
    assert combo.currentText() == "Speechport reference"  # installing is an action, not a choice
    title, text, default = answers.questions[-1]
    assert title == "Install the fairseq2 witness?" and "5.1 GB" in text and "2 minutes" in text
    assert default == QMessageBox.StandardButton.No
    assert page.compare_bar.task is None and not no_witness.exists()

    # Yes: installed in the background with its lines as progress, then offered and chosen.
    lines = ["Collecting torch==2.2.2", "Collecting fairseq2==0.2.1", "Successfully installed fairseq2-0.2.1"]
    seen = []
    let_finish = threading.Event()

    def install_job(name, *, progress):
        progress.stage("installing torch==2.2.2, fairseq2==0.2.1")
        for line in lines:
            progress.log(line)
        assert let_finish.wait(120)
        folder = no_witness / name
        (folder / "bin").mkdir(parents=True)
        (folder / environments.MANIFEST).write_text(json.dumps({"versions": {"fairseq2": "0.2.1"}}))
        return environments.find(name)

    from speechport.gui.workspace import workers

    monkeypatch.setattr(workers, "install_witness_job", install_job)
    page.compare_bar.progress_bar.valueChanged.connect(lambda _v: seen.append(page.compare_bar.progress_bar.format()))
    answers.reply = QMessageBox.StandardButton.Yes
    pick_install(qtbot, page)
    bar = page.compare_bar.progress_bar
    qtbot.waitUntil(lambda: "Successfully installed" in bar.toolTip() or "Successfully installed" in bar.format())
    assert not page.findChild(QPushButton, "compareButton").isEnabled()
    assert page.compare_bar.reason.text() == "Installing the fairseq2 witness…"
    let_finish.set()
    qtbot.waitUntil(lambda: page.compare_bar.task is None)
    assert backends(page) == ["Speechport reference", "genuine fairseq2 (witness)"]
    assert page.compare_bar.backend() == "fairseq2"
    assert "Installed the fairseq2 witness in" in window.log_pane.toPlainText()


def test_cancelling_the_install_leaves_nothing_and_offers_it_again(make_window, qtbot, answers, no_witness, tmp_path,
                                                                   monkeypatch):
    started = threading.Event()

    def install_job(name, *, progress):
        progress.stage("installing")
        started.set()
        while not progress.cancelled:  # pip at work, until Cancel kills it
            threading.Event().wait(0.01)
        raise Cancelled("cancelled; the witness was not installed and nothing is left")

    from speechport.gui.workspace import workers

    monkeypatch.setattr(workers, "install_witness_job", install_job)
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window)
    qtbot.waitUntil(page.compare_bar.isVisible)
    answers.reply = QMessageBox.StandardButton.Yes
    pick_install(qtbot, page)
    qtbot.waitUntil(started.is_set)
    qtbot.mouseClick(page.findChild(QPushButton, "compareCancelButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.compare_bar.task is None)
    assert page.compare_bar.progress_bar.format() == "Cancelled"
    assert "Installing the witness was cancelled; nothing was left behind." in window.log_pane.toPlainText()
    assert backends(page) == ["Speechport reference", "Install the fairseq2 witness…"]


def test_the_genuine_fairseq2_runs_the_original_when_chosen(make_window, qtbot, tmp_path):
    witness = environments.find("fairseq2")
    if witness is None or not environments.health(witness).works:
        import os

        assert not os.environ.get("CI"), "CI must install the fairseq2 witness (.ci/setup)"
        pytest.skip("the fairseq2 witness is not installed (speechport witness install fairseq2)")
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    qtbot.waitUntil(lambda: window.prepared is not None and not window.busy())
    window.convert()
    qtbot.waitUntil(lambda: not window.busy() and window.result is not None)
    page = open_audition(qtbot, window)
    choose_clip(qtbot, page, SPEECH)
    assert compare(qtbot, page).startswith("✓ pass")
    assert page.comparison.original_backend == "reference"
    combo = page.findChild(QComboBox, "originalBackendCombo")
    combo.setCurrentIndex(combo.findData("fairseq2"))
    assert "both models are loaded" not in page.compare_bar.reason.text()  # another original: loaded afresh
    assert compare(qtbot, page).startswith("✓ pass")
    assert page.comparison.original_backend == "fairseq2 0.2.1 (torch 2.2.2, built with fairseq2 building blocks)"
    report = json.loads((tmp_path / "out" / "speechport_report.json").read_text())
    assert report["verification"]["original_backend"] == page.comparison.original_backend
