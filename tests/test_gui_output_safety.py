"""The window refuses an output folder that would destroy an input, and says why, without asking
whether to replace it (the answer could only be a disaster)."""

from __future__ import annotations

import os
import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QProgressBar  # noqa: E402

from gui_support import convert_button, message, wait_idle, wait_open  # noqa: E402
from support import checkpoint_path, sha256  # noqa: E402


@pytest.mark.parametrize("aim", ["the checkpoint's folder", "an ancestor of it", "a link to its folder"])
def test_window_refuses_an_output_folder_holding_the_checkpoint_without_asking(
    make_window, answers, qtbot, tmp_path, aim
):
    source = tmp_path / "models" / "src" / "model.pt"
    source.parent.mkdir(parents=True)
    shutil.copy(checkpoint_path("cs_s64"), source)
    if aim == "the checkpoint's folder":
        out = source.parent
    elif aim == "an ancestor of it":
        out = tmp_path / "models"
    else:
        out = tmp_path / "link"
        out.symlink_to(source.parent, target_is_directory=True)
    refusal = (f"{out}: refused as the output folder: it holds the source checkpoint ({source}), "
               "which converting into it could destroy; choose another folder")
    window = make_window(source=source, output=out)
    wait_open(qtbot, window)
    qtbot.mouseClick(convert_button(window), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: message(window) == refusal)
    wait_idle(qtbot, window)
    assert answers.questions == []  # never asked whether to replace it
    assert window.result is None
    assert window.findChild(QProgressBar, "conversionProgress").format() == "Failed"
    # Consent to replace does not change the answer.
    window.message_bar.hide()
    window.convert(force=True)
    qtbot.waitUntil(lambda: message(window) == refusal)
    wait_idle(qtbot, window)
    assert answers.questions == [] and window.result is None
    assert sorted(os.listdir(source.parent)) == ["model.pt"]
    assert sha256(source) == sha256(checkpoint_path("cs_s64"))
    assert sorted(os.listdir(tmp_path)) == (["link", "models"] if aim == "a link to its folder" else ["models"])
