"""Upstream checkpoints of the wav2vec 2.0 family convert to their transformers base model, in every
original layout, with and without a config, and reproduce S3PRL's hidden states layer by layer."""

import json

import pytest
import soundfile
import torch
import transformers
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file

from conftest import FIXTURES

UPSTREAMS_DIR = FIXTURES / "s3prl_upstreams"
MANIFEST = json.loads((UPSTREAMS_DIR / "MANIFEST.json").read_text())
UPSTREAMS = {u["id"]: u for u in MANIFEST["upstreams"]}
RECIPE_OF = {"wavlm_base_plus": "wavlm", "wavlm_large": "wavlm", "unispeech_sat_base_plus": "unispeech_sat",
             "wav2vec2_base": "wav2vec2", "wav2vec2_large_lv60": "wav2vec2", "hubert_base": "hubert",
             "hubert_large": "hubert", "data2vec_audio_base": "data2vec_audio", "distilhubert": "distilhubert"}
FILES = [(uid, fmt, entry["file"]) for uid, u in UPSTREAMS.items() for fmt, entry in u["files"].items()]
CLIPS = [clip["name"] for clip in MANIFEST["clips"]]
# The fields of the transformers config the original's architecture decides.
ARCHITECTURE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                       "conv_dim", "conv_kernel", "conv_stride", "conv_bias", "feat_extract_norm",
                       "do_stable_layer_norm", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
                       "num_buckets", "max_bucket_distance", "feat_proj_layer_norm", "conv_pos_kernel_size",
                       "layer_norm_eps")


def upstream_path(uid, file):
    return UPSTREAMS_DIR / "upstreams" / uid / file


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("upstreams")
    folders = {}
    for uid, fmt, file in FILES:
        for with_config in (False, True):
            out = root / f"{uid}-{fmt}-{'config' if with_config else 'inferred'}"
            args = ["convert", str(upstream_path(uid, file)), "--out", str(out), "--quiet"]
            if with_config:
                args += ["--config", str(UPSTREAMS_DIR / "upstreams" / uid / "hf_config.json")]
            assert main(args) == 0, (uid, fmt, with_config)
            folders[(uid, fmt, with_config)] = out
    return folders


def model_input(uid, clip):
    waveform, _ = soundfile.read(UPSTREAMS_DIR / "audio" / f"{clip}.wav", dtype="float32")
    waveform = torch.from_numpy(waveform)
    if UPSTREAMS[uid]["normalize"]:  # what S3PRL's expert hands the model (F.layer_norm, eps 1e-5)
        waveform = torch.nn.functional.layer_norm(waveform, waveform.shape)
    return waveform


@pytest.mark.parametrize("uid, fmt, file", FILES, ids=[f"{u}-{f}" for u, f, _ in FILES])
@pytest.mark.parametrize("with_config", [False, True], ids=["inferred", "config"])
def test_every_upstream_reloads_cleanly_and_reproduces_s3prl_layer_by_layer(converted, uid, fmt, file, with_config):
    folder = converted[(uid, fmt, with_config)]
    upstream = UPSTREAMS[uid]
    config = transformers.AutoConfig.from_pretrained(folder)
    assert config.architectures == [upstream["hf_target_class"]]
    model_class = getattr(transformers, upstream["hf_target_class"])
    model, info = model_class.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), info  # every parameter of the model filled, nothing left over
    model.eval()
    for clip in CLIPS:
        reference = load_numpy(UPSTREAMS_DIR / upstream["references"][clip]["file"])
        frames = int(reference["valid_frames"][0])
        with torch.inference_mode():
            output = model(model_input(uid, clip)[None], output_hidden_states=True)
        # transformers' last hidden state is after a pre-LN encoder's final LayerNorm, as S3PRL's is.
        ours = [*output.hidden_states[:-1], output.last_hidden_state]
        first = 1 if uid == "distilhubert" else 0  # S3PRL's state 0 precedes DistilHuBERT's positional conv
        for index in range(first, len(ours)):
            expected = torch.from_numpy(reference[f"hidden_state_{index:02d}"])
            diff = float((ours[index][0, :frames] - expected[:frames]).abs().max())
            assert diff < 1e-4, (uid, fmt, clip, index, diff)


@pytest.mark.parametrize("uid", list(UPSTREAMS))
def test_the_inferred_config_is_the_one_that_reproduces_s3prl(converted, uid):
    fmt = next(iter(UPSTREAMS[uid]["files"]))
    ours = json.loads((converted[(uid, fmt, False)] / "config.json").read_text())
    expected = json.loads((UPSTREAMS_DIR / "upstreams" / uid / "hf_config.json").read_text())
    for field in ARCHITECTURE_FIELDS:
        if field in expected:
            assert ours.get(field) == expected[field], (uid, field)
    preprocessor = json.loads((converted[(uid, fmt, False)] / "preprocessor_config.json").read_text())
    expected_preprocessor = json.loads((UPSTREAMS_DIR / "upstreams" / uid / "hf_preprocessor_config.json").read_text())
    for field in ("do_normalize", "return_attention_mask", "sampling_rate", "feature_size", "padding_value"):
        assert preprocessor[field] == expected_preprocessor[field], (uid, field)


@pytest.mark.parametrize("uid", ["wav2vec2_base", "wavlm_base_plus"])
def test_converted_weights_equal_the_expected_transformers_folder(converted, uid):
    expected = load_file(UPSTREAMS_DIR / "expected_hf" / uid / "model.safetensors")
    fmt = next(iter(UPSTREAMS[uid]["files"]))
    ours = load_file(converted[(uid, fmt, False)] / "model.safetensors")
    assert set(ours) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(ours[key], tensor), key


@pytest.mark.parametrize("uid, fmt, file", FILES, ids=[f"{u}-{f}" for u, f, _ in FILES])
def test_only_pretraining_tensors_are_dropped_each_with_its_reason(converted, uid, fmt, file):
    report = json.loads((converted[(uid, fmt, False)] / "speechport_report.json").read_text())
    assert report["recipe"]["name"] == RECIPE_OF[uid] and report["recipe"]["layout"] == fmt
    # The MANIFEST's list of each upstream's pretraining-only tensors ("_ema (nested dict ...)" names a prefix).
    pretraining = {entry.split(" ")[0] for entry in UPSTREAMS[uid]["pretraining_only"]}
    dropped = [row for row in report["plan"]["rows"] if row["status"] == "dropped" and row["source_shape"] is not None]
    if uid.startswith(("wav2vec2", "hubert", "data2vec", "distilhubert")):  # WavLM's only one, mask_emb, is kept
        assert dropped
    for row in dropped:
        key = row["source_key"]
        assert key in pretraining or any(key.startswith(p + ".") for p in pretraining), key
        assert row["reason"].startswith(("pretraining only", "DistilHuBERT's prediction heads")), row


@pytest.mark.parametrize("uid, fmt, file", FILES, ids=[f"{u}-{f}" for u, f, _ in FILES])
def test_compare_passes_with_both_original_backends(run_cli, converted, uid, fmt, file):
    clips = [a for clip in ("speechlike_1p0s", "noise_0p25s") for a in ("--audio", UPSTREAMS_DIR / "audio" / f"{clip}.wav")]
    for backend in ("reference", "s3prl"):
        code, stdout, stderr = run_cli("compare", upstream_path(uid, file), converted[(uid, fmt, False)], *clips,
                                       "--original-backend", backend, "--json")
        assert code == 0, (backend, stderr)
        result = json.loads(stdout)
        assert result["verdict"] == "pass" and result["recipe"] == RECIPE_OF[uid]
        for clip in result["clips"]:
            assert clip["max_abs_diff"] < 1e-4
            layers = [name for name in clip["stage_max_abs_diff"] if name.startswith("encoder.layers.")]
            assert len(layers) == UPSTREAMS[uid]["arch"]["layers"]


def test_a_normalising_upstream_states_the_inherent_input_difference(run_cli, converted):
    uid = "wavlm_large"
    code, stdout, _ = run_cli("compare", upstream_path(uid, "wavlm_large.pt"), converted[(uid, "microsoft", False)],
                              "--audio", UPSTREAMS_DIR / "audio" / "speechlike_1p0s.wav", "--json")
    clip = json.loads(stdout)["clips"][0]
    assert code == 0 and clip["max_abs_diff"] < 1e-4
    inherent = clip["stage_max_abs_diff"]["input (waveform the model receives)"]
    assert 1e-4 < inherent < 5e-3  # eps 1e-7 against S3PRL's 1e-5: stated, not blamed on the weights


def test_a_wrong_upstream_conversion_fails_at_its_layer(run_cli, converted, tmp_path):
    import shutil

    from safetensors.torch import save_file

    uid = "hubert_base"
    folder = tmp_path / "damaged"
    shutil.copytree(converted[(uid, "s3prl", False)], folder)
    weights = load_file(folder / "model.safetensors")
    weights["encoder.layers.1.final_layer_norm.weight"] = weights["encoder.layers.1.final_layer_norm.weight"] * 1.05
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    code, stdout, _ = run_cli("compare", upstream_path(uid, "hubert_base.s3prl_converted.pt"), folder,
                              "--audio", UPSTREAMS_DIR / "audio" / "speechlike_1p0s.wav", "--json")
    clip = json.loads(stdout)["clips"][0]
    assert code == 1 and clip["first_divergent_layer"] == "encoder.layers.1"


def test_an_ungated_wavlm_is_refused_with_the_reason(tmp_path, run_cli):
    from speechport.core.storage.checkpoint import as_torch, load_checkpoint

    content = as_torch(load_checkpoint(upstream_path("wavlm_base_plus", "wavlm_base_plus.pt")).content)
    content["cfg"]["gru_rel_pos"] = False
    path = tmp_path / "ungated.pt"
    torch.save(content, path)
    code, stdout, _ = run_cli("inspect", path)
    assert code == 3 and "cfg.gru_rel_pos" in stdout and "transformers' WavLM always gates it" in stdout


def test_upstreams_need_no_trust_and_load_nothing_of_their_libraries(run_cli):
    import sys

    for uid, _, file in FILES:
        code, _, stderr = run_cli("inspect", upstream_path(uid, file))
        assert code == 0, (uid, file, stderr)
    assert "omegaconf" not in sys.modules and "fairseq" not in sys.modules
