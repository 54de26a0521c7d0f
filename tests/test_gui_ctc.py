"""Speech recognition (CTC) models in the window: a checkpoint without its dictionary asks for one
(the Dictionary row) and opens once it is given, and the Audition tab shows what both models hear,
word by word at its time on the clip, with the characters they hear differently highlighted."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QLabel, QLineEdit  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from conftest import FIXTURES  # noqa: E402
from gui_support import choose_clip, compare, message, open_audition, wait_idle, wait_open  # noqa: E402

CTC = FIXTURES / "ctc"
MANIFEST = json.loads((CTC / "MANIFEST.json").read_text())
MODELS = MANIFEST["models"]
CLIP = "speechlike_1p0s"


def dictionary_row_shown(window) -> bool:
    return window.findChild(QLineEdit, "dictionaryPath").isVisible()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("gui-ctc")
    out = root / "w2v2"
    assert main(["convert", str(CTC / MODELS["w2v2_base_ctc"]["checkpoint"]), "--out", str(out), "--quiet"]) == 0
    return out


def test_a_checkpoint_without_its_dictionary_asks_for_one_and_opens_with_it(make_window, qtbot, tmp_path):
    source = tmp_path / "model" / "hubert_large_ctc.pt"
    source.parent.mkdir()
    shutil.copy(CTC / MODELS["hubert_large_ctc"]["checkpoint"], source)
    window = make_window(source=source)
    wait_idle(qtbot, window)
    assert window.prepared is None and window.message_bar.kind == "warning"
    assert "does not carry the dictionary of the symbols it writes" in message(window)
    assert dictionary_row_shown(window)
    assert window.findChild(QLabel, "dictionaryInfo").text().startswith("needed:")

    window.inputs.dictionary_field.commit(str(CTC / MODELS["hubert_large_ctc"]["dict_file"]))
    wait_open(qtbot, window)
    assert window.prepared is not None and window.prepared.plan.target_class == "HubertForCTC"
    assert window.findChild(QLabel, "dictionaryInfo").text().startswith("32 symbols, from the dictionary file")
    assert dictionary_row_shown(window)

    window.open_source(CTC / MODELS["w2v2_base_ctc"]["checkpoint"])  # another checkpoint: its own dictionary
    wait_open(qtbot, window)
    assert window.workspace.dictionary == ""
    assert window.findChild(QLabel, "dictionaryInfo").text() == (
        "32 symbols, from the checkpoint's task_state (target_dictionary)")


def test_the_audition_shows_what_both_models_hear_word_by_word(make_window, qtbot, converted):
    window = make_window(source=CTC / MODELS["w2v2_base_ctc"]["checkpoint"])
    page = open_audition(qtbot, window, converted)
    choose_clip(qtbot, page, CTC / MANIFEST["clips"][CLIP])
    verdict = compare(qtbot, page)
    assert verdict.startswith("✓")
    heard = MODELS["w2v2_base_ctc"]["references"][CLIP]["transcript"]
    sentence = page.findChild(QLabel, "compareSentence").text()
    assert sentence.startswith(f"Both models hear: “{heard}”; the converted model's outputs match")
    lanes = page.timeline.transcript
    assert lanes.isVisible() and lanes.marked_text("original") == lanes.marked_text("converted") == []
    assert " ".join(lanes.shown_words("original")) == heard == " ".join(lanes.shown_words("converted"))
    first = page.comparison.clips[0].details["words_original"][0]
    assert lanes.words[0][2] == pytest.approx(first["start"])  # placed where the model heard it


def test_characters_heard_differently_are_highlighted(make_window, qtbot, converted, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(converted, damaged)
    heard = MODELS["w2v2_base_ctc"]["references"][CLIP]["transcript"]
    vocab = MODELS["w2v2_base_ctc"]["vocab"]
    weights = load_file(damaged / "model.safetensors")
    first, second = vocab.index(heard[0]), vocab.index(heard[1])  # the first two letters heard trade places
    for name in ("lm_head.weight", "lm_head.bias"):
        weights[name][[first, second]] = weights[name][[second, first]].clone()
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    window = make_window(source=CTC / MODELS["w2v2_base_ctc"]["checkpoint"])
    page = open_audition(qtbot, window, damaged)
    choose_clip(qtbot, page, CTC / MANIFEST["clips"][CLIP])
    assert compare(qtbot, page).startswith("✕ fail")
    result = page.comparison.clips[0]
    sentence = page.findChild(QLabel, "compareSentence").text()
    assert sentence.startswith(f"The models hear differently ({result.character_error_rate:.1%} of the characters): "
                               f"the original “{heard}”, the converted “{result.transcript_converted}”")
    lanes = page.timeline.transcript
    marked = lanes.marked_text("original")
    assert marked and set("".join(marked)) <= {heard[0], heard[1]}  # only the swapped letters are highlighted
    assert set("".join(lanes.marked_text("converted"))) <= {heard[0], heard[1]}
