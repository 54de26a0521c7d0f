"""`speechport compare`: passes good conversions, fails damaged ones and names where they diverge."""

import json
import shutil

import numpy as np
import pytest
import soundfile
import torch
import yaml
from safetensors.torch import load_file, save_file

from conftest import CONFORMER_SHAW, S3PRL
from support import MODELS, checkpoint_path

CLIPS = sorted(str(p) for p in (CONFORMER_SHAW / "audio").iterdir())
SPEECH = str(CONFORMER_SHAW / "audio/s_speech_16k_mono.wav")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("compare")
    folders = {}
    for model in MODELS:
        folders[model] = root / model
        assert main(["convert", str(checkpoint_path(model)), "--out", str(folders[model]), "--quiet"]) == 0
    return folders


def compare_json(run_cli, model, folder, *extra):
    code, stdout, stderr = run_cli("compare", checkpoint_path(model), folder, *extra, "--json")
    return code, (json.loads(stdout) if stdout.strip() else None), stderr


@pytest.mark.parametrize("model", MODELS)
def test_good_conversions_pass_on_every_shared_clip(run_cli, converted, model):
    args = [a for clip in CLIPS for a in ("--audio", clip)]
    code, report, _ = compare_json(run_cli, model, converted[model], *args)
    assert code == 0 and report["verdict"] == "pass" and report["tolerance"] == 5e-3
    assert len(report["clips"]) == 3
    for clip in report["clips"]:
        assert set(clip) >= {"audio", "verdict", "max_abs_diff", "mean_abs_diff", "nmse_db", "cosine_min", "frames",
                             "first_divergent_layer", "seconds_original", "seconds_converted"}
        assert clip["verdict"] == "pass" and clip["first_divergent_layer"] is None
        assert clip["max_abs_diff"] < 1e-3 and clip["nmse_db"] < -60 and clip["cosine_min"] > 0.9999
        assert clip["seconds_original"] > 0 and clip["seconds_converted"] > 0
    frames = {c["audio"].rsplit("/", 1)[1]: c["frames"] for c in report["clips"]}
    assert frames == {"s_noise_8k_mono.wav": 74, "s_short_0p3s_16k.flac": 14, "s_speech_16k_mono.wav": 207}


def damaged_copy(folder, tmp_path, damage):
    copy = tmp_path / "damaged"
    shutil.copytree(folder, copy)
    weights = load_file(copy / "model.safetensors")
    damage(weights)
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    return copy


def scale_layer_norm(weights):
    weights["encoder.layers.1.ffn2_layer_norm.weight"] *= 1.03


def swap_ffns(weights):
    for name in ("intermediate_dense.weight", "intermediate_dense.bias", "output_dense.weight", "output_dense.bias"):
        a, b = f"encoder.layers.1.ffn1.{name}", f"encoder.layers.2.ffn1.{name}"
        weights[a], weights[b] = weights[b].clone(), weights[a].clone()


def permute_attention_rows(weights):
    key = "encoder.layers.2.self_attn.linear_v.weight"
    generator = torch.Generator().manual_seed(0)
    weights[key] = weights[key][torch.randperm(weights[key].shape[0], generator=generator)].contiguous()


@pytest.mark.parametrize(
    "damage, divergent",
    [(scale_layer_norm, "encoder.layers.1"), (swap_ffns, "encoder.layers.1"), (permute_attention_rows, "encoder.layers.2")],
    ids=["layer norm x1.03", "two layers' FFNs swapped", "attention projection rows permuted"],
)
def test_damaged_conversions_fail_and_name_the_first_divergent_layer(run_cli, converted, tmp_path, damage, divergent):
    folder = damaged_copy(converted["cs_s48"], tmp_path, damage)
    code, report, _ = compare_json(run_cli, "cs_s48", folder, "--audio", SPEECH)
    assert code == 1 and report["verdict"] == "fail"
    clip = report["clips"][0]
    assert clip["verdict"] == "fail" and clip["first_divergent_layer"] == divergent
    assert clip["max_abs_diff"] > 5e-3
    stages = clip["stage_max_abs_diff"]
    earlier = list(stages)[: list(stages).index(divergent)]
    assert all(stages[name] < 1e-3 for name in earlier)  # everything before it still agrees
    code, _, stderr = run_cli("compare", checkpoint_path("cs_s48"), folder, "--audio", SPEECH)
    assert code == 1 and "first divergent layer: " + divergent in (stderr + _)


def test_8k_and_44k_stereo_clips_are_resampled_and_the_channel_policy_is_honoured(run_cli, converted, tmp_path):
    stereo = S3PRL / "audio/commands_44k_stereo.wav"
    outputs = {}
    for policy in ("first", "mean"):
        save = tmp_path / policy
        code, report, _ = compare_json(run_cli, "cs_s64", converted["cs_s64"], "--audio", stereo,
                                       "--audio", CONFORMER_SHAW / "audio/s_noise_8k_mono.wav",
                                       "--channels", policy, "--save-outputs", save)
        assert code == 0 and report["verdict"] == "pass"
        saved = load_file(save / "commands_44k_stereo.safetensors")
        assert saved["original"].shape == saved["converted"].shape == (report["clips"][0]["frames"], 64)
        assert (saved["original"] - saved["converted"]).abs().max().item() == pytest.approx(report["clips"][0]["max_abs_diff"])
        outputs[policy] = saved["original"]
    assert (outputs["first"] - outputs["mean"]).abs().max() > 1e-3  # the two policies really differ


@pytest.mark.parametrize(
    "make_clip, message",
    [
        (lambda tmp: tmp / "missing.wav", "no such audio file"),
        (lambda tmp: _write(tmp / "model.wav", checkpoint_path("cs_s64").read_bytes()), "not an audio file"),
        (lambda tmp: _sound(tmp / "empty.wav", 0), "empty"),
        (lambda tmp: _sound(tmp / "short.wav", 160), "too short"),
    ],
    ids=["missing file", "not audio", "empty clip", "0.01 s clip"],
)
def test_bad_audio_is_bad_input(run_cli, converted, tmp_path, make_clip, message):
    code, stdout, stderr = run_cli("compare", checkpoint_path("cs_s64"), converted["cs_s64"], "--audio", make_clip(tmp_path))
    assert code == 2 and message in stderr and stderr.count("\n") == 1 and "Traceback" not in stderr


def _write(path, data):
    path.write_bytes(data)
    return path


def _sound(path, samples):
    soundfile.write(path, np.full(samples, 0.1, dtype="float32"), 16000)
    return path


def test_folder_of_another_model_type_is_bad_input(run_cli):
    code, _, stderr = run_cli("compare", checkpoint_path("cs_s64"), S3PRL / "base_model", "--audio", SPEECH)
    assert code == 2 and stderr.count("\n") == 1
    assert "its config names 'Wav2Vec2Model' as its model class, which no conformer_shaw conversion makes" in stderr


def test_folder_with_a_missing_weight_file_is_bad_input(run_cli, converted, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(converted["cs_s64"], broken)
    (broken / "model.safetensors").unlink()
    code, _, stderr = run_cli("compare", checkpoint_path("cs_s64"), broken, "--audio", SPEECH)
    assert code == 2 and "weight file is missing" in stderr and stderr.count("\n") == 1


def test_an_original_backend_the_recipe_lacks_is_refused_naming_those_it_has(run_cli, converted):
    # fairseq2, the genuine library, runs in its witness: tests/test_witness.py.
    code, _, stderr = run_cli("compare", checkpoint_path("cs_s64"), converted["cs_s64"], "--audio", SPEECH,
                              "--original-backend", "s3prl")
    assert code == 2 and "can run as: reference, fairseq2" in stderr and stderr.count("\n") == 1


def test_convert_verify_records_the_result_in_report_and_card(run_cli, tmp_path):
    out = tmp_path / "verified"
    code, stdout, _ = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--verify", SPEECH, "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["verification"]["verdict"] == "pass"
    report = json.loads((out / "speechport_report.json").read_text())
    assert report["verification"]["clips"][0]["frames"] == 207
    assert report["verification"]["original_backend"] == "reference"
    card = (out / "README.md").read_text()
    assert "Compared with the original model on audio: **pass**" in card and "s_speech_16k_mono.wav" in card
    assert yaml.safe_load(card.split("---")[1])["pipeline_tag"] == "feature-extraction"


def test_convert_verify_with_bad_audio_writes_nothing(run_cli, tmp_path):
    out = tmp_path / "never"
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--verify", tmp_path / "nope.wav")
    assert code == 2 and not out.exists()


def test_loading_the_converted_model_draws_no_progress_bar_of_its_own(converted, monkeypatch):
    """transformers' "Loading weights" bar would interleave with our own progress on stderr."""
    from transformers.utils import logging as hf_logging

    from speechport.core.conversion import open_sides
    from speechport.core.families.conformer_shaw import ConformerShawRecipe

    seen = []
    original = ConformerShawRecipe.converted_side

    def recording(self, folder, **kwargs):
        seen.append(hf_logging.is_progress_bar_enabled())
        return original(self, folder, **kwargs)

    monkeypatch.setattr(ConformerShawRecipe, "converted_side", recording)
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    try:
        open_sides(checkpoint_path("cs_s64"), converted["cs_s64"])
        assert seen == [False]
        assert hf_logging.is_progress_bar_enabled()  # restored for the rest of the process
    finally:
        if not was_enabled:
            hf_logging.disable_progress_bar()


def test_compare_a_segment_of_a_clip_longer_than_the_limit(run_cli, converted, tmp_path):
    speech, rate = soundfile.read(SPEECH, dtype="float32")
    long_clip = tmp_path / "long.wav"
    soundfile.write(long_clip, np.concatenate([speech] * 4), rate)  # about 4 × the speech clip
    seconds = 4 * len(speech) / rate
    code, _, stderr = run_cli("compare", checkpoint_path("cs_s64"), converted["cs_s64"], "--audio", long_clip,
                              "--max-seconds", "2")
    assert code == 2
    assert f"the clip is {seconds:.1f} s long; a comparison covers at most 2 s" in stderr
    assert "--start S --duration S, or raise --max-seconds" in stderr  # the command line's way out
    code, stdout, stderr = run_cli("compare", checkpoint_path("cs_s64"), converted["cs_s64"], "--audio", long_clip,
                                   "--max-seconds", "2", "--start", "0.5", "--duration", "1.5", "--json")
    assert code == 0, stderr
    clip = json.loads(stdout)["clips"][0]
    assert clip["segment"] == [0.5, 2.0] and clip["verdict"] == "pass"
    code, _, stderr = run_cli("compare", checkpoint_path("cs_s64"), converted["cs_s64"], "--audio", long_clip,
                              "--start", "-1")
    assert code == 2 and "argument --start: '-1' must be a finite number of seconds, 0 or more" in stderr


def test_compare_reports_progress_layer_by_layer_and_can_stop_between_layers(converted):
    from speechport.core.conversion import open_sides
    from speechport.core.errors import Cancelled
    from speechport.core.progress import Progress
    from speechport.core.proof.verification import compare_clips

    sides = open_sides(checkpoint_path("cs_s64"), converted["cs_s64"])
    events = []
    progress = Progress(events.append, min_interval=0)
    compare_clips(sides, [SPEECH], progress=progress)
    layers = json.loads((converted["cs_s64"] / "config.json").read_text())["num_hidden_layers"]
    steps = [(e.items_done, e.items_total) for e in events if e.stage.startswith("comparing")]
    assert steps[-1] == (2 * (layers + 1), 2 * (layers + 1))  # frontend + layers, on each side
    assert [done for done, _ in steps] == sorted(done for done, _ in steps) and len(steps) >= 2 * (layers + 1)
    stopping = Progress(lambda e: stopping.cancel() if e.items_done == 2 else None, min_interval=0)
    with pytest.raises(Cancelled):
        compare_clips(sides, [SPEECH], progress=stopping)
