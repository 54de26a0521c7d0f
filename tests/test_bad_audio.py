"""Clips that cannot show whether a conversion is right are bad input (exit 2, the clip named and
why), never a failed conversion; JSON stays JSON; numbers the user types are checked."""

import json
import math
import shutil

import numpy as np
import pytest
import soundfile
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import CONFORMER_SHAW, S3PRL
from support import checkpoint_path

SPEECH = CONFORMER_SHAW / "audio/s_speech_16k_mono.wav"
NOISE_8K = CONFORMER_SHAW / "audio/s_noise_8k_mono.wav"
RATE = 16_000


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("bad-audio")
    folders = {}
    for model in ("cs_s64", "cs_s48"):
        folders[model] = root / model
        assert main(["convert", str(checkpoint_path(model)), "--out", str(folders[model]), "--quiet"]) == 0
    return folders


@pytest.fixture
def model_calls(monkeypatch):
    """Every run of either conformer_shaw side, in order."""
    from speechport.core.families.conformer_shaw import sides as conformer_shaw

    calls = []
    for side in (conformer_shaw.ReferenceSide, conformer_shaw.TransformersEncoderSide):
        real = side.__call__

        def recording(self, clip, tick=lambda: None, _real=real, _name=side.__name__):
            calls.append((_name, clip.path.name))
            return _real(self, clip, tick)

        monkeypatch.setattr(side, "__call__", recording)
    return calls


def write(path, samples, subtype="FLOAT", rate=RATE):
    soundfile.write(path, np.asarray(samples, dtype=np.float32), rate, subtype=subtype)
    return path


def tone(frequency, amplitude=0.5, seconds=2.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * frequency * t)


def speech():
    return soundfile.read(SPEECH, dtype="float32")[0]


def compare(run_cli, converted, model, *clips, extra=()):
    args = [a for clip in clips for a in ("--audio", clip)]
    return run_cli("compare", checkpoint_path(model), converted[model], *args, *extra)


def compare_json(run_cli, converted, model, *clips, extra=()):
    code, stdout, stderr = compare(run_cli, converted, model, *clips, extra=(*extra, "--json"))
    return code, json.loads(stdout, parse_constant=_refuse_constant), stderr


def _refuse_constant(name):
    raise AssertionError(f"{name} is not JSON")


# -- samples no model can use ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_samples_are_bad_input(run_cli, converted, model_calls, tmp_path, value):
    samples = speech()[:32000].copy()
    samples[[1000, 5000]] = value
    clip = write(tmp_path / "broken.wav", samples)
    code, stdout, stderr = compare(run_cli, converted, "cs_s64", SPEECH, clip)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert f"{clip}: 2 of 32000 samples are NaN or infinite" in stderr
    assert model_calls == []  # refused before any model ran, though the first clip was fine


@pytest.mark.parametrize(
    "samples, message",
    [(np.zeros(32000), "the clip is digital silence (every sample is 0)"),
     (np.full(32000, 0.25), "the clip is one constant value (0.25) throughout")],
    ids=["digital silence", "constant"],
)
def test_silence_and_constant_signals_are_bad_input(run_cli, converted, model_calls, tmp_path, samples, message):
    clip = write(tmp_path / "quiet.wav", samples)
    code, _, stderr = compare(run_cli, converted, "cs_s64", clip)
    assert code == 2 and f"{clip}: {message}" in stderr and stderr.count("\n") == 1
    assert model_calls == []


def test_a_silent_first_channel_is_named_and_mixing_down_is_suggested(tmp_path):
    from speechport.core.errors import BadInput
    from speechport.core.proof.audio import load_clip

    right = speech()
    path = write(tmp_path / "stereo.wav", np.stack([np.zeros_like(right), right], axis=1))
    with pytest.raises(BadInput) as refused:
        load_clip(path, channels="first")
    assert str(refused.value) == (
        f"{path}: the first channel (channel 1 of 2) is digital silence while channel 2 is not, and only the first "
        "channel would be compared (mix the channels down, or use a clip whose first "
        "channel holds the sound)")
    mixed = load_clip(path, channels="mean")
    np.testing.assert_allclose(mixed.waveform, right / 2, atol=1e-7)
    silent = write(tmp_path / "silent-stereo.wav", np.zeros((32000, 2)))
    with pytest.raises(BadInput, match="the clip is digital silence"):
        load_clip(silent, channels="first")


# -- clips too short for the model -------------------------------------------------------------------


def test_clips_too_short_for_conformer_shaw(run_cli, converted, model_calls, tmp_path):
    # fairseq2's fbank: 1 + (n - 400) // 160 frames, stacked by 2, standardized over >= 2 frames.
    short = write(tmp_path / "short.wav", speech()[8000:8559])
    code, _, stderr = compare(run_cli, converted, "cs_s64", SPEECH, short)
    assert code == 2 and stderr.count("\n") == 1
    assert (f"{short}: the clip is too short for a conformer_shaw encoder: 559 samples (34.9 ms at 16 kHz) give "
            "1 fbank frame; it needs at least 2 (560 samples, 35 ms)") in stderr
    assert model_calls == []
    shortest = write(tmp_path / "shortest.wav", speech()[8000:8560])
    code, report, _ = compare_json(run_cli, converted, "cs_s64", shortest)
    assert code == 0 and report["clips"][0]["frames"] == 1 and report["clips"][0]["max_abs_diff"] < 1e-4


@pytest.fixture(scope="module")
def s3prl_converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("s3prl-short")
    folders = {}
    for task, checkpoint in (("asv", "asv/states-2.ckpt"), ("ks", "ks/dev-best.ckpt")):
        folders[task] = root / task
        assert main(["convert", str(S3PRL / checkpoint), "--base-model", str(S3PRL / "base_model"),
                     "--out", str(folders[task]), "--quiet"]) == 0
    return folders


def test_clips_too_short_for_the_s3prl_heads(run_cli, s3prl_converted, tmp_path):
    fox = soundfile.read(S3PRL / "audio/fox_16k.wav", dtype="float32")[0]

    def run(task, samples):
        clip = write(tmp_path / f"{task}-{samples}.wav", fox[4000:4000 + samples])
        checkpoint = S3PRL / ("asv/states-2.ckpt" if task == "asv" else "ks/dev-best.ckpt")
        code, stdout, stderr = run_cli("compare", checkpoint, s3prl_converted[task], "--base-model",
                                       S3PRL / "base_model", "--audio", clip, "--json")
        return clip, code, stdout, stderr

    # The x-vector TDNN loses 14 frames and its statistics pooling needs 2 of the rest: 16 frames,
    # 400 + 15 * 320 = 5200 samples with the base model's CNN. 15 frames would give NaN on both sides.
    clip, code, _, stderr = run("asv", 5199)
    assert code == 2 and stderr.count("\n") == 1
    assert (f"{clip}: the clip is too short for this model: 5199 samples (324.9 ms at 16 kHz) give 15 upstream "
            "frames, and the x-vector TDNN shrinks the sequence by 14 frames and its statistics pooling needs 2 of "
            "what is left, so it needs at least 16; the clip needs at least 5200 samples (325 ms)") in stderr
    _, code, stdout, _ = run("asv", 5200)
    assert code == 0 and json.loads(stdout)["clips"][0]["max_abs_diff"] < 1e-4
    # A classification head needs one frame of the CNN: 400 samples.
    _, code, stdout, _ = run("ks", 400)
    assert code == 0 and json.loads(stdout)["verdict"] == "pass"


def test_the_upstream_length_comes_from_the_base_models_convolutions():
    from transformers import Wav2Vec2Config

    from speechport.core.errors import BadInput
    from speechport.core.families._clips import upstream_frames
    from speechport.core.families.s3prl_heads.recipe import S3prlRecipe
    from speechport.core.proof.audio import Clip
    from speechport.core.storage.checkpoint import load_checkpoint

    assert upstream_frames(399, (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)) == 0
    assert upstream_frames(400, (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)) == 1
    head = load_checkpoint(S3PRL / "sid" / "dev-best.ckpt")
    recipe = S3prlRecipe.detect(head).open(head)
    config = Wav2Vec2Config(conv_dim=(8,), conv_kernel=(800,), conv_stride=(320,),
                            architectures=["Wav2Vec2ForSequenceClassification"])
    clip = Clip(__import__("pathlib").Path("wide.wav"), np.ones(799, dtype=np.float32), RATE, 1, "first")
    with pytest.raises(BadInput, match=r"799 samples .* give 0 upstream frames, and the upstream's convolutions "
                                       r"need at least one output frame; the clip needs at least 800 samples"):
        recipe.check_clip(clip, config)
    assert recipe.check_clip(Clip(clip.path, np.ones(800, dtype=np.float32), RATE, 1, "first"), config) is None


# -- exactly constant filterbank bins: NaN from fairseq2 itself ------------------------------------


@pytest.mark.parametrize("frequency, subtype", [(1000, "PCM_16"), (50, "FLOAT")],
                         ids=["1000 Hz: period 16 samples", "50 Hz: each frame the last one negated"])
def test_a_filterbank_constant_over_time_is_refused_before_any_model_runs(
    run_cli, converted, model_calls, tmp_path, frequency, subtype
):
    clip = write(tmp_path / f"tone{frequency}.wav", tone(frequency, 0.3), subtype=subtype)
    saved = tmp_path / "saved"
    code, _, stderr = compare(run_cli, converted, "cs_s64", SPEECH, clip, extra=("--save-outputs", saved))
    assert code == 2 and stderr.count("\n") == 1
    assert (f"{clip}: mel bins 0-79 (of 80) of the filterbank are exactly constant over the clip (zero variance") in stderr
    assert "the original model itself outputs NaN" in stderr
    assert model_calls == [] and not saved.exists()


# -- ill-conditioned mel bins ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["cs_s64", "cs_s48"])
def test_a_pure_tone_is_bad_input_not_a_failed_conversion(run_cli, converted, tmp_path, model):
    clip = write(tmp_path / "a440.wav", tone(440), subtype="PCM_16")
    code, stdout, stderr = compare(run_cli, converted, model, clip, extra=("--json",))
    assert code == 2 and stderr.count("\n") == 1
    error = json.loads(stdout)["error"]
    assert error["kind"] == "bad_input" and error["message"] in stderr
    message = error["message"]
    assert message.startswith(f"{clip}: this clip cannot show whether the conversion is right: ")
    # bin 14 holds 440 Hz: its log energy varies by 1.8e-5 around 25 over the whole clip
    assert "nearly constant over the clip (std down to 1.8e-05 around a mean of 25.2, in bin 14)" in message
    assert "beyond the tolerance in mel bins 10-17 (of 80)" in message
    assert "on identical input_features the converted model agrees with the original" in message
    differ = float(message.split("input_features differ by up to ")[1].split(" ")[0])
    assert differ > 1.0  # transformers' extractor vs fairseq2's fbank, before any weight is used


def test_mains_hum_alone_is_bad_input(run_cli, converted, tmp_path):
    clip = write(tmp_path / "hum.wav", tone(60, 0.1))
    code, _, stderr = compare(run_cli, converted, "cs_s64", clip)
    assert code == 2 and f"{clip}: this clip cannot show whether the conversion is right" in stderr
    assert "near float32's rounding floor in places" in stderr  # the empty top bins differ, not bin 2


def test_a_wrong_conversion_still_fails_on_a_pure_tone_and_names_its_layer(run_cli, converted, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(converted["cs_s48"], damaged)
    weights = load_file(damaged / "model.safetensors")
    weights["encoder.layers.1.ffn2_layer_norm.weight"] *= 1.03
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    clip = write(tmp_path / "a440.wav", tone(440), subtype="PCM_16")
    code, stdout, stderr = run_cli("compare", checkpoint_path("cs_s48"), damaged, "--audio", clip, "--json")
    assert code == 1, stderr
    result = json.loads(stdout)["clips"][0]
    assert result["verdict"] == "fail" and result["first_divergent_layer"] == "encoder.layers.1"
    assert "bad_input" not in result
    same = result["details"]["ill_conditioned_input"]["same_input"]
    assert same["verdict"] == "fail" and same["first_divergent_layer"] == "encoder.layers.1"
    assert any("it still diverges" in n and "first at encoder.layers.1: the conversion is wrong" in n
               for n in result["notes"])
    code, stdout, _ = run_cli("compare", checkpoint_path("cs_s48"), damaged, "--audio", clip)
    assert code == 1 and "first divergent layer: encoder.layers.1" in stdout


def test_a_dc_offset_with_noise_is_well_conditioned(run_cli, converted, tmp_path):
    # fairseq2 removes each frame's DC offset before the FFT, so the offset changes nothing.
    noise = np.random.default_rng(3).standard_normal(2 * RATE)
    clip = write(tmp_path / "dc.wav", 0.5 + 1e-3 * noise, subtype="PCM_16")
    code, report, _ = compare_json(run_cli, converted, "cs_s64", clip)
    result = report["clips"][0]
    assert code == 0 and result["verdict"] == "pass" and result["max_abs_diff"] < 1e-4
    assert "ill_conditioned_input" not in result.get("details", {}) and result["notes"] == []


def test_ill_conditioned_bins_that_do_not_decide_the_verdict_are_a_note(run_cli, converted):
    # Resampled from 8 kHz: nothing above 4 kHz, so the top bins are float32 rounding noise.
    code, report, _ = compare_json(run_cli, converted, "cs_s64", NOISE_8K)
    result = report["clips"][0]
    assert code == 0 and result["verdict"] == "pass"
    found = result["details"]["ill_conditioned_input"]
    assert found["mel_bins"] == found["rounding_floor_bins"] == list(range(64, 80))
    assert 1e-3 < found["max_abs_diff_there"] < 5e-3 and found["max_abs_diff_elsewhere"] < 1e-4
    assert [n for n in result["notes"] if "mel bins 64-79 (of 80) are near float32's rounding floor" in n
            and n.endswith("the verdict holds regardless")]


def test_input_features_are_the_first_stage(run_cli, converted):
    code, report, _ = compare_json(run_cli, converted, "cs_s48", SPEECH)
    stages = report["clips"][0]["stage_max_abs_diff"]
    assert code == 0 and list(stages)[:2] == ["input_features", "feature_projection"]
    assert stages["input_features"] < 1e-4


def test_convert_verify_on_a_pure_tone_or_a_too_short_clip_writes_nothing(run_cli, tmp_path, model_calls):
    clip = write(tmp_path / "a440.wav", tone(440), subtype="PCM_16")
    out = tmp_path / "never"
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--verify", clip)
    assert code == 2 and "this clip cannot show whether the conversion is right" in stderr and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a440.wav"]
    model_calls.clear()
    short = write(tmp_path / "short.wav", speech()[8000:8500])
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--verify", SPEECH, "--verify", short)
    assert code == 2 and f"{short}: the clip is too short for a conformer_shaw encoder" in stderr
    assert not out.exists() and model_calls == []  # refused before the folder was written


def test_an_original_that_outputs_nan_is_bad_input(converted):
    from speechport.core.conversion import open_sides
    from speechport.core.errors import BadInput
    from speechport.core.proof.audio import load_clip
    from speechport.core.proof.verification import compare_clips

    sides = open_sides(checkpoint_path("cs_s64"), converted["cs_s64"])
    real = sides.original

    def nan_original(clip):
        output = real(clip)
        output.primary = torch.full_like(output.primary, float("nan"))
        return output

    sides.original = nan_original
    clip = load_clip(SPEECH)
    with pytest.raises(BadInput, match="the original model itself outputs NaN or infinite values on this clip"):
        compare_clips(sides, [clip])


# -- FLAC that does not state its length ------------------------------------------------------------


def unknown_length_flac(path, samples):
    """A FLAC whose STREAMINFO says 0 total samples (and no MD5), as streamed encoders write it."""
    soundfile.write(path, samples.astype(np.float32), RATE, format="FLAC")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO, 34 bytes from offset 8
    fields = int.from_bytes(data[18:26], "big")  # rate (20 bits), channels (3), bits (5), total samples (36)
    data[18:26] = (fields & ~((1 << 36) - 1)).to_bytes(8, "big")
    data[26:42] = bytes(16)
    path.write_bytes(bytes(data))
    return path


def test_flac_without_a_stated_length_is_decoded_up_to_the_limit(tmp_path):
    from speechport.core.errors import BadInput
    from speechport.core.proof.audio import load_clip

    samples = np.round(tone(330, 0.3, seconds=3.0) * 32767) / 32768 + 1e-3 * np.sin(np.arange(3 * RATE))
    path = unknown_length_flac(tmp_path / "streamed.flac", samples)
    assert soundfile.info(str(path)).frames == 2**63 - 1  # libsndfile: length unknown
    clip = load_clip(path)
    expected = soundfile.read(str(write(tmp_path / "same.flac", samples, subtype="PCM_16")), dtype="float32")[0]
    assert len(clip.waveform) == 3 * RATE
    np.testing.assert_array_equal(clip.waveform, expected)
    with pytest.raises(BadInput) as refused:
        load_clip(path, max_seconds=2)
    assert str(refused.value).startswith(f"{path}: the clip is longer than 2 s (its header does not state its length)")
    assert "576460752303423" not in str(refused.value)


# -- numbers the user types ---------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--tolerance", "--max-seconds"])
@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
def test_tolerance_and_max_seconds_must_be_finite_and_above_zero(run_cli, capsys, option, value, tmp_path):
    for command in (["compare", checkpoint_path("cs_s64"), "folder", "--audio", SPEECH],
                    ["convert", checkpoint_path("cs_s64"), "--out", tmp_path / "out"]):
        try:
            code, stdout, stderr = run_cli(*command, option, value)
        except SystemExit as exited:  # argparse's own way out; its status is the same
            code, (stdout, stderr) = exited.code, capsys.readouterr()
        assert code == 2 and stdout == ""
        assert f"error: argument {option}: '{value}' must be a finite number above 0" in stderr
    assert not (tmp_path / "out").exists()


def test_the_core_checks_them_too(converted, tmp_path):
    from speechport.core.conversion import convert, open_sides, prepare
    from speechport.core.errors import BadInput
    from speechport.core.proof.audio import load_clip
    from speechport.core.proof.verification import compare_clips

    sides = open_sides(checkpoint_path("cs_s64"), converted["cs_s64"])
    for bad in (math.nan, -1.0, 0.0, math.inf):
        with pytest.raises(BadInput, match="the tolerance must be a finite number above 0"):
            compare_clips(sides, [SPEECH], tolerance=bad)
        with pytest.raises(BadInput, match="the clip length limit must be a finite number of seconds above 0"):
            load_clip(SPEECH, max_seconds=bad)
        with pytest.raises(BadInput, match="the clip length limit must be a finite number of seconds above 0"):
            compare_clips(sides, [SPEECH], max_seconds=bad)
    prepared = prepare(checkpoint_path("cs_s64"))
    with pytest.raises(BadInput, match="the tolerance must be a finite number above 0"):
        convert(prepared, tmp_path / "out", tolerance=math.nan, verify=[SPEECH])
    assert not (tmp_path / "out").exists()


# -- strict JSON -------------------------------------------------------------------------------------


def test_a_nan_output_is_null_in_json(run_cli, converted, tmp_path):
    broken = tmp_path / "nan-weights"
    shutil.copytree(converted["cs_s64"], broken)
    weights = load_file(broken / "model.safetensors")
    weights["encoder.layers.1.ffn2_layer_norm.weight"][0] = math.nan
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    code, stdout, _ = run_cli("compare", checkpoint_path("cs_s64"), broken, "--audio", SPEECH, "--json")
    assert code == 1 and "NaN" not in stdout and "Infinity" not in stdout
    result = json.loads(stdout, parse_constant=_refuse_constant)["clips"][0]
    assert result["verdict"] == "fail" and result["first_divergent_layer"] == "encoder.layers.1"
    assert result["max_abs_diff"] is None and result["nmse_db"] is None and result["cosine_min"] is None
    assert result["stage_max_abs_diff"]["encoder.layers.1"] is None


def test_report_and_exported_comparison_are_strict_json(tmp_path):
    from speechport.core.proof.comparison import ClipComparison
    from speechport.core.proof.report import dump_report
    from speechport.gui.audition.comparison_export import write_json

    clip = ClipComparison("a.wav", "fail", math.nan, math.inf, math.nan, -math.inf, math.nan, 3, "output", 0.1, 0.2,
                          stage_max_abs_diff={"encoder.layers.0": math.nan}, details={"x": [math.inf, 1.5]})
    data = clip.to_dict()
    assert json.dumps(data, allow_nan=False)
    assert data["max_abs_diff"] is None and data["cosine_min"] is None and data["details"] == {"x": [None, 1.5]}
    report = {"plan": {"rows": [{"source_key": "a", "value": math.nan}]}, "verification": {"clips": [data]},
              "seconds": math.inf}
    text = dump_report(report)
    loaded = json.loads(text, parse_constant=_refuse_constant)
    assert loaded["plan"]["rows"] == [{"source_key": "a", "value": None}] and loaded["seconds"] is None
    exported = write_json(tmp_path / "export.json", {"nmse_db": -math.inf, "clips": [data]})
    assert json.loads(exported.read_text(), parse_constant=_refuse_constant)["nmse_db"] is None


# -- --save-outputs ----------------------------------------------------------------------------------


def test_save_outputs_keep_clips_that_share_a_name(run_cli, converted, tmp_path):
    clips = [tmp_path / "a" / "clip.wav", tmp_path / "b" / "clip.wav", tmp_path / "c" / "CLIP.flac"]
    for clip, source in zip(clips, (SPEECH, NOISE_8K, SPEECH)):
        clip.parent.mkdir()
        data, rate = soundfile.read(source, dtype="float32")
        soundfile.write(clip, data[: (len(data) if clip.parent.name != "c" else 20000)], rate)
    saved = tmp_path / "saved"
    code, report, _ = compare_json(run_cli, converted, "cs_s64", *clips, extra=("--save-outputs", saved))
    assert code == 0
    assert sorted(p.name for p in saved.iterdir()) == ["CLIP-3.safetensors", "clip-2.safetensors", "clip.safetensors"]
    for name, clip, result in zip(("clip", "clip-2", "CLIP-3"), clips, report["clips"]):
        with safe_open(str(saved / f"{name}.safetensors"), framework="pt") as handle:
            assert handle.metadata()["audio"] == str(clip)
            assert handle.get_tensor("original").shape[0] == result["frames"]
    assert [r["frames"] for r in report["clips"]] == [207, 74, 61]


def test_output_names_never_collide():
    from pathlib import Path

    from speechport.core.proof.audio import Clip
    from speechport.core.proof.verification import output_names

    def clip(path):
        return Clip(Path(path), np.zeros(1, dtype=np.float32), RATE, 1, "first")

    assert output_names([clip("a/x.wav"), clip("b/x.wav"), clip("c/x-2.wav")]) == ["x", "x-3", "x-2"]
    assert output_names([clip("a/y.wav"), clip("Y.flac"), clip("z.wav")]) == ["y", "Y-2", "z"]


def test_an_interrupted_compare_says_which_outputs_it_wrote(run_cli, converted, tmp_path, monkeypatch):
    from speechport.core.families.conformer_shaw import sides as conformer_shaw

    real = conformer_shaw.TransformersEncoderSide.__call__
    runs = []

    def interrupted_second_time(self, clip, tick=lambda: None):
        runs.append(clip.path.name)
        if len(runs) == 2:
            raise KeyboardInterrupt
        return real(self, clip, tick)

    monkeypatch.setattr(conformer_shaw.TransformersEncoderSide, "__call__", interrupted_second_time)
    saved = tmp_path / "saved"
    code, _, stderr = compare(run_cli, converted, "cs_s64", SPEECH, NOISE_8K, extra=("--save-outputs", saved))
    assert code == 130 and runs == ["s_speech_16k_mono.wav", "s_noise_8k_mono.wav"]
    assert stderr == (f"speechport: interrupted by SIGINT; nothing was left half-written; 1 file already written "
                      f"to {saved}: s_speech_16k_mono.safetensors\n")
    assert [p.name for p in saved.iterdir()] == ["s_speech_16k_mono.safetensors"]
    runs.clear()
    code, _, stderr = compare(run_cli, converted, "cs_s64", SPEECH, NOISE_8K)
    assert code == 130 and stderr == "speechport: interrupted by SIGINT; nothing was left half-written\n"


def test_a_cancelled_compare_says_which_outputs_it_wrote(converted, tmp_path):
    from speechport.core.conversion import open_sides
    from speechport.core.errors import Cancelled
    from speechport.core.progress import Progress
    from speechport.core.proof.verification import compare_clips

    sides = open_sides(checkpoint_path("cs_s64"), converted["cs_s64"])
    progress = Progress()
    real = sides.converted

    class CancelOnSecond:
        def __init__(self):
            self.runs = 0

        def __getattr__(self, name):
            return getattr(real, name)

        def __call__(self, clip, tick=lambda: None):
            self.runs += 1
            if self.runs == 2:
                progress.cancel()
            return real(clip, tick=tick)

    sides.converted = CancelOnSecond()
    with pytest.raises(Cancelled) as cancelled:
        compare_clips(sides, [SPEECH, NOISE_8K, SPEECH], save_outputs=tmp_path / "saved", progress=progress)
    assert str(cancelled.value) == (f"cancelled; 1 file already written to {tmp_path / 'saved'}: "
                                    "s_speech_16k_mono.safetensors")


# -- in the window -------------------------------------------------------------------------------------


def test_the_window_shows_bad_input_as_a_message_and_the_new_stage(make_window, qtbot, converted, tmp_path):
    from PySide6.QtWidgets import QLabel

    from gui_support import choose_clip, message, open_audition
    from gui_support import compare as compare_in_window

    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    page = open_audition(qtbot, window, converted["cs_s64"])

    # A pure tone reads and plays; comparing on it is refused with the clip, the bins and why.
    clip = write(tmp_path / "a440.wav", tone(440), subtype="PCM_16")
    choose_clip(qtbot, page, clip)
    assert compare_in_window(qtbot, page) == "Not compared: see the message above."
    shown = message(window)
    assert window.message_bar.kind == "error" and shown.startswith(f"Not compared: {clip}: this clip cannot show")
    assert "in bin 14" in shown and "Traceback" not in window.log_pane.toPlainText()

    # A silent first channel is refused when the first channel is chosen, and read once mixed down.
    right = speech()
    stereo = write(tmp_path / "stereo.wav", np.stack([np.zeros_like(right), right], axis=1))
    page.choose_clip(stereo)
    qtbot.waitUntil(lambda: page.clip_task is None, timeout=10_000)
    assert page.clip is None and "mix the channels down" in message(window) and "--channels" not in message(window)
    page.chooser.channels.setCurrentIndex(page.chooser.channels.findData("mean"))
    qtbot.waitUntil(lambda: page.clip is not None and str(page.clip.path) == str(stereo), timeout=10_000)

    # The input features are the first stage the window lists.
    assert compare_in_window(qtbot, page).startswith("✓ pass")
    table = page.view.stage_table
    assert [table.item(row, 0).text() for row in range(3)] == ["input_features", "feature_projection",
                                                              "encoder.layers.0"]
    assert page.findChild(QLabel, "compareVerdict") is not None
