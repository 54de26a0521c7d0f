"""UnitY speech encoders (seamless M4T): the whole encoder is refused naming its LayerNorms; the inner
conformer encoder converts when chosen, and reproduces what fairseq2 computes for it."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoFeatureExtractor, Wav2Vec2BertModel

from conftest import CONFORMER_SHAW
from support import unity_checkpoint

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
MANIFEST = json.loads((CONFORMER_SHAW / "MANIFEST.json").read_text())


@pytest.mark.parametrize("m4t", [False, True], ids=["speech encoder", "whole M4T checkpoint"])
def test_the_whole_speech_encoder_is_refused_naming_its_layer_norms(tmp_path, run_cli, m4t):
    source = unity_checkpoint(tmp_path / "unity.pt", m4t)
    speech = "speech_encoder" if m4t else "encoder"
    code, stdout, _ = run_cli("inspect", source, "--json")
    report = json.loads(stdout)
    assert code == 3 and report["recipe"] == "unity_speech_encoder"
    problems = report["plan"]["problems"]
    assert any(p.startswith(f"unmapped source: {speech}.inner_layer_norm.") and
               "transformers' Wav2Vec2BertModel has no module for it" in p for p in problems), problems
    assert any(p.startswith(f"unmapped source: {speech}.layer_norm.") for p in problems), problems
    assert len([p for p in problems if "LayerNorm" in p]) == 2  # nothing else is wrong: only what cannot be expressed
    assert any("unity_inner_encoder" in note for note in report["plan"]["notes"])


@pytest.mark.parametrize("m4t", [False, True], ids=["speech encoder", "whole M4T checkpoint"])
def test_the_inner_encoder_converts_when_chosen_and_reproduces_fairseq2(tmp_path, run_cli, m4t):
    source = unity_checkpoint(tmp_path / "unity.pt", m4t)
    out = tmp_path / "inner"
    code, stdout, stderr = run_cli("convert", source, "--recipe", "unity_inner_encoder", "--out", out,
                                   "--verify", SPEECH, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["verification"]["verdict"] == "pass"
    report = json.loads((out / "speechport_report.json").read_text())
    dropped = {row["source_key"]: row["reason"] for row in report["plan"]["rows"] if row["status"] == "dropped"}
    speech = "speech_encoder" if m4t else "encoder"
    assert dropped[f"{speech}.inner_layer_norm.weight"] == "outside the inner conformer encoder: the LayerNorm after it"
    assert dropped[f"{speech}.adaptor_layers.0.self_attn.q_proj.weight"].endswith("the length adaptor")
    if m4t:
        assert dropped["text_decoder_frontend.embed.weight"].startswith("not part of the speech encoder")
    # The inner encoder's output is what genuine fairseq2 computed for the same conformer (cs_s64).
    case = next(c for c in MANIFEST["cases"].values() if c["model"] == "cs_s64" and "speech" in c["file"])
    model = Wav2Vec2BertModel.from_pretrained(out).eval()
    extractor = AutoFeatureExtractor.from_pretrained(out)
    waveform = load_file(CONFORMER_SHAW / case["inputs_file"])["waveform_16k_0"][0]
    reference = load_file(CONFORMER_SHAW / case["file"])
    with torch.no_grad():
        output = model(**extractor(waveform.numpy(), sampling_rate=16000, return_tensors="pt")).last_hidden_state
    valid = int(reference["output_seq_lens"][0])
    assert (output[0, :valid] - reference["last_hidden_state"][0, :valid]).abs().max().item() < 1e-3


def test_the_inner_encoder_is_not_what_detection_picks(tmp_path, run_cli):
    # A plain conformer_shaw checkpoint is neither: no inner encoder.
    from support import checkpoint_path

    code, stdout, _ = run_cli("inspect", checkpoint_path("cs_s64"), "--json")
    assert code == 0 and json.loads(stdout)["recipe"] == "conformer_shaw"
    code, _, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--recipe", "unity_inner_encoder")
    assert code == 2 and "does not look like a unity_inner_encoder checkpoint" in stderr
