"""S3PRL heads on every upstream family: `convert HEAD --base-model UPSTREAM_FILE` converts both in
one run, verifies both, and the converted heads reproduce S3PRL's own outputs."""

import json

import numpy as np
import pytest
import soundfile
import torch
import transformers

from conftest import FIXTURES

UPSTREAMS_DIR = FIXTURES / "s3prl_upstreams"
MANIFEST = json.loads((UPSTREAMS_DIR / "MANIFEST.json").read_text())
TASKS = {task["name"]: task for task in MANIFEST["downstream_tasks"]}
UPSTREAMS = {u["id"]: u for u in MANIFEST["upstreams"]}
SUPPORTED = [name for name in TASKS if name != "hubert_large_sid"]
OUTPUT_FILE = {"cls": "s3prl_logits", "sd": "s3prl_frame_logits", "asv": "s3prl_linear1_preact"}
CLIPS = ("speechlike_1p0s", "speechlike_0p6s", "noise_0p25s")


def head(name):
    return UPSTREAMS_DIR / TASKS[name]["checkpoint"]


def upstream_file(name):
    return UPSTREAMS_DIR / TASKS[name]["upstream_file"]


def clip_path(clip):
    return UPSTREAMS_DIR / "audio" / f"{clip}.wav"


def clips_of(name):
    # S3PRL's ASV expert cannot process fewer than 15 frames: its tasks skip the 0.25 s clip.
    return [c for c in CLIPS if (UPSTREAMS_DIR / "downstream" / name / "reference" / f"{c}.{OUTPUT_FILE[TASKS[name]['kind']]}.npy").is_file()]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("heads")
    folders = {}
    for name in SUPPORTED:
        out = root / name
        labels = root / f"{name}.labels"
        labels.write_text("\n".join(TASKS[name].get("labels") or []) + "\n")
        verify = [a for clip in clips_of(name) for a in ("--verify", str(clip_path(clip)))]
        extra = ["--labels", str(labels)] if TASKS[name].get("labels") and TASKS[name]["kind"] == "cls" else []
        code = main(["convert", str(head(name)), "--base-model", str(upstream_file(name)), "--out", str(out), "--quiet",
                     *extra, *verify])
        assert code == 0, name
        folders[name] = out
    return folders


def model_input(name, clip):
    waveform, _ = soundfile.read(clip_path(clip), dtype="float32")
    if UPSTREAMS[TASKS[name]["upstream"]]["normalize"]:  # S3PRL's F.layer_norm (eps 1e-5)
        waveform = torch.nn.functional.layer_norm(torch.from_numpy(waveform), waveform.shape).numpy()
    return waveform


@pytest.mark.parametrize("name", SUPPORTED)
def test_a_head_and_its_upstream_file_convert_in_one_run_and_reproduce_s3prl(converted, name):
    task = TASKS[name]
    folder = converted[name]
    config = transformers.AutoConfig.from_pretrained(folder)
    assert config.architectures == [task["hf_architecture"]]
    model_class = getattr(transformers, task["hf_architecture"])
    model, info = model_class.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), info
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    model.eval()
    for clip in clips_of(name):
        inputs = extractor(model_input(name, clip), sampling_rate=16000, return_tensors="pt")
        inputs["input_values"] = torch.from_numpy(model_input(name, clip))[None]  # identically normalised input
        with torch.inference_mode():
            output = model(**inputs)
        expected = np.load(UPSTREAMS_DIR / "downstream" / name / "reference" / f"{clip}.{OUTPUT_FILE[task['kind']]}.npy")
        ours = (output.embeddings if task["kind"] == "asv" else output.logits)[0].numpy()
        if task["kind"] == "sd":
            ours, expected = ours[: expected.shape[1]], expected[0]
        else:
            expected = expected[0]
        assert np.abs(ours - expected).max() < 1e-4, (name, clip, float(np.abs(ours - expected).max()))
    report = json.loads((folder / "speechport_report.json").read_text())
    assert report["base_model_recipe"]["recipe"] == UPSTREAMS[task["upstream"]]["family"].replace("data2vec", "data2vec_audio")
    assert report["verification"]["verdict"] == "pass"
    stages = report["verification"]["clips"][0]["stage_max_abs_diff"]
    upstream_states = [s for s in stages if s.startswith("upstream hidden state")]
    assert len(upstream_states) == UPSTREAMS[task["upstream"]]["n_hidden_states"]  # the base model is proven too
    assert all(stages[s] < 1e-4 for s in upstream_states)
    base_rows = [r for r in report["plan"]["rows"] if (r["source_key"] or "").startswith("BaseModel.") and r["status"] == "mapped"]
    assert base_rows  # both converted in one plan


@pytest.mark.parametrize("name", [n for n in SUPPORTED if TASKS[n]["kind"] == "cls"])
def test_the_classification_heads_work_in_a_transformers_pipeline(converted, name):
    classify = transformers.pipeline("audio-classification", model=str(converted[name]), device="cpu")
    waveform, _ = soundfile.read(clip_path("speechlike_1p0s"), dtype="float32")
    labels = {entry["label"] for entry in classify(waveform, top_k=3)}
    assert labels <= set(TASKS[name]["labels"]) and len(labels) == 3


@pytest.mark.parametrize("name", [n for n in SUPPORTED if TASKS[n]["kind"] == "asv"])
def test_x_vector_folders_load_with_the_auto_class(converted, name):
    model = transformers.AutoModelForAudioXVector.from_pretrained(converted[name])
    assert type(model).__name__ == TASKS[name]["hf_architecture"]


def test_a_pre_ln_upstream_under_a_weighted_layer_sum_is_refused_with_the_measured_reason(run_cli, tmp_path):
    code, stdout, stderr = run_cli("convert", head("hubert_large_sid"), "--base-model", upstream_file("hubert_large_sid"),
                                   "--out", tmp_path / "out")
    assert code == 3 and not (tmp_path / "out").exists()
    assert "BaseModel.cfg.layer_norm_first (weighted layer sum)" in stderr
    assert "transformers' hidden_states[-1] is before it" in stderr


def test_a_head_the_family_has_no_class_for_is_refused(tmp_path, run_cli):
    # An x-vector head on a HuBERT upstream: transformers has no HubertForXVector.
    code, _, stderr = run_cli("inspect", head("wavlm_asv"), "--base-model",
                              UPSTREAMS_DIR / "upstreams" / "hubert_base" / "hubert_base.s3prl_converted.pt")
    assert code == 2 and "transformers has no HubertForXVector" in stderr


def test_a_base_model_file_that_is_no_upstream_is_refused(run_cli):
    code, _, stderr = run_cli("inspect", head("wavlm_sid"), "--base-model", head("wavlm_sd"))
    assert code == 2 and "a s3prl checkpoint, not an upstream" in stderr


def test_compare_with_an_upstream_file_as_base_uses_both_backends(run_cli, converted):
    for backend in ("reference", "s3prl"):
        code, stdout, stderr = run_cli("compare", head("wavlm_sid"), converted["wavlm_sid"], "--base-model",
                                       upstream_file("wavlm_sid"), "--audio", clip_path("speechlike_1p0s"),
                                       "--original-backend", backend, "--json")
        assert code == 0, stderr
        assert json.loads(stdout)["clips"][0]["max_abs_diff"] < 1e-4
