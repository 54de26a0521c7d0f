"""The first window a new user sees (the desktop menu starts `speechport gui` with no checkpoint): the
demo one click away, converted and auditioned by that click, and where converted folders go; the About
box and the versions it names."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, Qt, qVersion  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QPushButton  # noqa: E402

from speechport.core.demo import DEMO_CHECKPOINT, DEMO_CLIPS  # noqa: E402
from speechport.gui.mapping.mapping_page import TRY_DEMO  # noqa: E402
from speechport.gui.shared import dialogs  # noqa: E402
from speechport.gui.workspace import workspace as workspace_module  # noqa: E402

from gui_support import OPEN_TIMEOUT_MS, wait_open  # noqa: E402
from support import checkpoint_path  # noqa: E402


@pytest.fixture
def demo_output(monkeypatch, tmp_path) -> Path:
    """Where the demo's conversion goes, here a folder of the test's own (for users: ~/speechport-demo-hf)."""
    folder = tmp_path / "home" / "speechport-demo-hf"
    folder.parent.mkdir()
    monkeypatch.setattr(workspace_module, "DEMO_OUTPUT", folder)
    return folder


def whole_inside(widget, window) -> bool:
    """The widget is shown whole inside the window's client area."""
    top_left = widget.mapTo(window, QPoint(0, 0))
    return (widget.isVisible() and top_left.x() >= 0 and top_left.y() >= 0
            and top_left.x() + widget.width() <= window.width() and top_left.y() + widget.height() <= window.height())


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)], ids=["1280x800", "1024x700"])
def test_the_first_window_offers_the_demo_and_says_where_converted_folders_go(make_window, qtbot, size):
    window = make_window()
    window.resize(*size)
    qtbot.waitUntil(lambda: window.width() == size[0])
    QApplication.processEvents()
    offer = window.findChild(QPushButton, "emptyDemoButton")
    hint = window.findChild(QLabel, "emptyHint")
    assert offer.text() == TRY_DEMO == "Try the demo: convert and audition a small model"
    assert whole_inside(offer, window) and offer.width() >= offer.sizeHint().width()  # its whole text, unsqueezed
    said = hint.text()
    assert "Its converted folder goes beside it, named after it with -hf" in said
    assert "in your home folder when its folder is read-only" in said
    assert f"The demo's goes to {Path('~') / 'speechport-demo-hf'}." in said
    assert whole_inside(hint, window) and hint.heightForWidth(hint.width()) <= hint.height()  # every line shown


def test_one_click_converts_the_demo_and_compares_it_on_its_speech_clip(make_window, qtbot, demo_output):
    window = make_window()
    qtbot.mouseClick(window.findChild(QPushButton, "emptyDemoButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.workspace.comparison is not None and not window.audition.comparing(),
                    timeout=3 * OPEN_TIMEOUT_MS)
    assert window.workspace.source == str(DEMO_CHECKPOINT)
    assert window.result is not None and window.result.output == demo_output  # converted where the window said
    assert (demo_output / "model.safetensors").is_file()
    assert window.tabs.currentWidget() is window.audition_holder
    page = window.audition
    assert page.clip.path == DEMO_CLIPS[0]
    assert window.workspace.comparison.verdict == "pass"
    assert window.workspace.comparison.clips[0].max_abs_diff < window.workspace.comparison.tolerance


def test_opening_another_checkpoint_during_the_demo_stops_it_there(make_window, qtbot, demo_output, tmp_path):
    """The one click is the demo's: a checkpoint opened before the demo converted is not converted, and
    the window stays on its plan."""
    window = make_window(output=tmp_path / "chosen")
    qtbot.mouseClick(window.findChild(QPushButton, "emptyDemoButton"), Qt.MouseButton.LeftButton)
    window.open_source(checkpoint_path("cs_s48"))
    wait_open(qtbot, window)
    assert window.workspace.source == str(checkpoint_path("cs_s48")) and window.prepared.plan.ok
    for _ in range(20):  # the demo's next step would come in the next turns of the event loop
        QApplication.processEvents()
        qtbot.wait(10)
    assert not window.busy_converting() and window.result is None
    assert not (tmp_path / "chosen").exists() and not demo_output.exists()
    assert window.tabs.currentWidget() is window.mapping_page


def test_the_about_box_names_the_torch_transformers_and_qt_it_runs_on():
    from speechport import __version__

    said = dialogs.about_text()
    assert f"Speechport {__version__}" in said
    assert f"torch {metadata.version('torch')}" in said
    assert f"transformers {metadata.version('transformers')}" in said
    assert f"Qt {qVersion()}" in said
