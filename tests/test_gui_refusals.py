"""The window refuses what the command line refuses, in readable words: crafted or corrupt files,
files that are not files, and patterns that would never finish."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from test_checkpoint import HOSTILE_SAFETENSORS, safetensors_bytes  # noqa: E402

from gui_support import message, wait_idle  # noqa: E402
from support import CraftedStorage, CraftedTensor, checkpoint_path, craft_torch_zip  # noqa: E402


def crafted_safetensors(tmp_path):
    header, data, _ = HOSTILE_SAFETENSORS["overlapping offsets"]
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(header, data))
    return path


def storage_past_record(tmp_path):
    return craft_torch_zip(tmp_path / "crafted.pt", {"model": {"w": CraftedTensor(CraftedStorage("0", 6), 0, (6,), (1,))}},
                           {"0": np.arange(4, dtype=np.float32).tobytes()})


def fifo(tmp_path):
    path = tmp_path / "model.pt"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    "make, expected",
    [
        (crafted_safetensors, "tensor 'b': its data overlaps tensor 'a''s"),
        (storage_past_record, "its storage needs 24 bytes but its record archive/data/0 holds 16"),
        (fifo, "is a named pipe (FIFO), not a regular file"),
    ],
    ids=["crafted safetensors", "storage past its record", "named pipe"],
)
def test_hostile_checkpoints_are_readable_messages(make_window, answers, qtbot, tmp_path, make, expected):
    window = make_window(source=make(tmp_path))
    wait_idle(qtbot, window)
    assert window.message_bar.kind == "error" and expected in message(window)
    assert "Traceback" not in message(window) + window.log_pane.toPlainText()
    assert answers.criticals == [] and window.prepared is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[[rules]]\nmatch = '^(a+)+$'\ndrop = 'x'\n", "repeats a repetition"),
        ("[[rules]]\nmatch = '('\ndrop = 'x'\n", "invalid regular expression"),
    ],
    ids=["nested repetition", "invalid"],
)
def test_a_mapping_file_with_a_dangerous_or_invalid_rule_is_a_message(make_window, answers, qtbot, tmp_path, text, expected):
    window = make_window(source=checkpoint_path("cs_s64"))
    wait_idle(qtbot, window)
    mapping = tmp_path / "fixes.toml"
    mapping.write_text(text)
    window.load_mapping(mapping)
    qtbot.waitUntil(lambda: expected in message(window))
    assert answers.criticals == []


def test_a_fifo_as_mapping_file_is_refused_without_blocking_the_window(make_window, answers, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"))
    wait_idle(qtbot, window)
    window.load_mapping(fifo(tmp_path))  # opening a FIFO would block the UI thread until a writer came
    qtbot.waitUntil(lambda: "is a named pipe (FIFO), not a regular file" in message(window))
    assert answers.criticals == []
