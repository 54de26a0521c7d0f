"""The upstream references (and S3PRL's own modules) against S3PRL 0.4.18's UpstreamExpert outputs.

The fixtures (tests/fixtures/s3prl_upstreams, copied from the shared oracle set) hold tiny
upstreams of every family S3PRL runs, saved in their original formats, and every hidden state
S3PRL returned for three clips and one right-padded batch. Frames past a row's valid ones are
padding garbage in S3PRL too and are never compared.

Which upstream covers which corner of the blocks (checked by test_fixtures_cover_every_corner):
extractor_mode default — wavlm_base_plus, unispeech_sat_base_plus, wav2vec2_base, hubert_base,
distilhubert; layer_norm — wavlm_large, wav2vec2_large_lv60, hubert_large, data2vec_audio_base;
layer_norm_first — wavlm_large, wav2vec2_large_lv60, hubert_large; normalize — wavlm_large (its
cfg), wav2vec2_large_lv60, hubert_large, data2vec_audio_base (the task config); conv bias — the
large ones; even positional kernel — all (conv_pos 8; data2vec's stacked kernel 19 // 3 = 6);
stacked positional convs — data2vec_audio_base; gated relative bias — wavlm_*, with
num_buckets/max_distance 64/256 and 320/800; plain attention in the WavLM classes —
unispeech_sat_base_plus; view/all frame mask keeping a frame the conv rule drops — the batch of
wavlm_*, unispeech_sat_base_plus, hubert_*. The odd positional kernel, which no fixture has, is
checked against torch's own weight-normed Conv1d below.
"""

import copy
import importlib.util
import json
import os
from functools import cache

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file

from speechport.core.errors import BadInput
from speechport.core.reference.upstreams import (
    DistillerReference,
    WavLMReference,
    float32_state_dict,
    reference_from_checkpoint,
)
from speechport.core.reference.wav2vec2_blocks import (
    ConvPositionalEmbedding,
    conv_length_padding_mask,
    parse_conv_feature_layers,
    relative_position_buckets,
    view_all_padding_mask,
)
from speechport.core.storage.checkpoint import load_checkpoint

from conftest import FIXTURES

UPSTREAMS_DIR = FIXTURES / "s3prl_upstreams"
MANIFEST = json.loads((UPSTREAMS_DIR / "MANIFEST.json").read_text())
UPSTREAMS = {u["id"]: u for u in MANIFEST["upstreams"]}
TOLERANCE = 1e-4

# Every format of every upstream whose file the copy holds. The fairseq_cfg files (pickled
# omegaconf objects, which Speechport does not unpickle yet) are left out of the copy; once they
# are readable and copied, these tests cover them too.
FILES = [
    (uid, fmt)
    for uid, u in UPSTREAMS.items()
    for fmt, entry in u["files"].items()
    if (UPSTREAMS_DIR / u["dir"] / entry["file"]).is_file()
]
CASES = [(uid, fmt, ref) for uid, fmt in FILES for ref in UPSTREAMS[uid]["references"]]

S3PRL_INSTALLED = importlib.util.find_spec("s3prl") is not None


def require_s3prl() -> None:
    if not S3PRL_INSTALLED:
        assert not os.environ.get("CI"), "CI installs S3PRL's code (.ci/setup): the s3prl backend must be tested there"
        pytest.skip("S3PRL is not installed")


@cache
def clip(name: str) -> np.ndarray:
    entry = next(c for c in MANIFEST["clips"] if c["name"] == name)
    samples, _ = soundfile.read(UPSTREAMS_DIR / entry["file"], dtype="float32")
    return samples


@cache
def content(uid: str, fmt: str):
    upstream = UPSTREAMS[uid]
    return load_checkpoint(UPSTREAMS_DIR / upstream["dir"] / upstream["files"][fmt]["file"]).content


@cache
def reference(uid: str, fmt: str):
    return reference_from_checkpoint(content(uid, fmt))


@cache
def s3prl_backend(uid: str, fmt: str):
    from speechport.core.families._upstream_s3prl import s3prl_upstream_from_checkpoint

    return s3prl_upstream_from_checkpoint(content(uid, fmt))


def assert_reproduces(model, uid: str, ref_name: str) -> float:
    """Every hidden state on the frames S3PRL treats as valid, and the frame counts; returns the
    largest |difference|."""
    entry = UPSTREAMS[uid]["references"][ref_name]
    expected = load_file(UPSTREAMS_DIR / entry["file"])
    batch = "clips" in entry
    output = model([clip(name) for name in (entry["clips"] if batch else [entry["clip"]])])

    states = sorted(k for k in expected if k.startswith("hidden_state_"))
    assert len(output.hidden_states) == len(states) == entry["n_hidden_states"]
    assert output.valid_frames.tolist() == expected["valid_frames"].tolist()
    kept = expected["s3prl_unmasked_frames"].tolist() if batch else expected["valid_frames"].tolist()
    assert output.unmasked_frames.tolist() == kept

    worst = {}
    for index, name in enumerate(states):
        target = expected[name] if batch else expected[name][None]
        ours = output.hidden_states[index]
        assert ours.shape == target.shape, name
        worst[name] = max((ours[row, :n] - target[row, :n]).abs().max().item() for row, n in enumerate(kept))
    report = ", ".join(f"{name}={diff:.1e}" for name, diff in worst.items())
    assert max(worst.values()) <= TOLERANCE, f"{uid} {ref_name}: {report}"
    return max(worst.values())


# -- the reference ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("uid", "fmt", "ref_name"), CASES)
def test_reference_reproduces_s3prl_hidden_states(uid, fmt, ref_name):
    assert_reproduces(reference(uid, fmt), uid, ref_name)


@pytest.mark.parametrize(("uid", "fmt"), FILES)
def test_reference_family_and_normalisation_follow_the_config(uid, fmt):
    upstream = UPSTREAMS[uid]
    model = reference(uid, fmt)
    assert model.family == upstream["family"]
    assert model.normalize is upstream["normalize"]


def test_fixtures_cover_every_corner():
    def cfg(u):
        return {**u.get("task_cfg", {}), **u.get("model_cfg", u.get("cfg", u.get("config", {}).get("distiller", {})))}

    def batch(u):
        return u["references"]["batch__speechlike_1p0s+noise_0p25s"]

    corners = {
        "extractor_mode default": lambda u: cfg(u).get("extractor_mode") == "default",
        "extractor_mode layer_norm": lambda u: cfg(u).get("extractor_mode") == "layer_norm",
        "layer_norm_first": lambda u: cfg(u).get("layer_norm_first") is True,
        "normalize": lambda u: u["normalize"] is True,
        "conv bias": lambda u: cfg(u).get("conv_bias") is True,
        "even positional kernel": lambda u: (cfg(u)["conv_pos"] // max(1, cfg(u).get("pos_conv_depth", 1))) % 2 == 0,
        "stacked positional convs": lambda u: cfg(u).get("pos_conv_depth", 1) > 1,
        "gated relative bias": lambda u: cfg(u).get("relative_position_embedding") and cfg(u).get("gru_rel_pos"),
        "WavLM classes without relative bias": lambda u: cfg(u).get("relative_position_embedding") is False,
        "non-default num_buckets": lambda u: cfg(u).get("relative_position_embedding") and cfg(u)["num_buckets"] != 320,
        "view/all mask keeps an extra frame": lambda u: batch(u)["s3prl_unmasked_frames"] != batch(u)["valid_frames"],
        "prediction heads": lambda u: u["family"] == "distiller",
    }
    tested = {uid for uid, _ in FILES}
    assert tested == set(UPSTREAMS)
    uncovered = [name for name, covers in corners.items() if not any(covers(UPSTREAMS[uid]) for uid in tested)]
    assert not uncovered


# -- refusals and options --------------------------------------------------------------------------------


def _microsoft(uid: str) -> tuple[dict, dict]:
    opened = content(uid, "microsoft")
    return float32_state_dict(opened["model"]), dict(opened["cfg"])


def test_unknown_and_missing_tensors_are_refused_by_name():
    state, cfg = _microsoft("wavlm_base_plus")
    with pytest.raises(BadInput, match=r"would not use: encoder\.layers\.0\.extra\.weight"):
        WavLMReference({**state, "encoder.layers.0.extra.weight": torch.zeros(1)}, cfg)
    without = {k: v for k, v in state.items() if k != "encoder.layers.1.fc2.bias"}
    with pytest.raises(BadInput, match=r"lacks encoder\.layers\.1\.fc2\.bias"):
        WavLMReference(without, cfg)
    with pytest.raises(BadInput, match="other shapes"):
        WavLMReference(state, {**cfg, "encoder_ffn_embed_dim": 48})


def test_wavlm_classes_route_on_config_flags_not_names():
    # UniSpeech-SAT's tensors under a config that asks for the relative bias: its tensors are missing.
    state, cfg = _microsoft("unispeech_sat_base_plus")
    assert WavLMReference(state, cfg).family == "unispeech_sat"
    with pytest.raises(BadInput, match="relative_attention_bias"):
        WavLMReference(state, {**cfg, "relative_position_embedding": True, "gru_rel_pos": True})
    # WavLM's tensors without the flag: the bias and the gate would go unused, and are refused.
    state, cfg = _microsoft("wavlm_base_plus")
    with pytest.raises(BadInput, match="would not use"):
        WavLMReference(state, {**cfg, "relative_position_embedding": False, "gru_rel_pos": False})


def test_bucket_parameters_come_from_the_config():
    # num_buckets 64: distances from 16 frames on are bucketed logarithmically up to max_distance,
    # so on a 49-frame clip another max_distance changes the result (the fixture match is exact).
    state, cfg = _microsoft("wavlm_base_plus")
    assert (cfg["num_buckets"], cfg["max_distance"]) == (64, 256)
    saved = WavLMReference(state, cfg)([clip("speechlike_1p0s")])
    other = WavLMReference(state, {**cfg, "max_distance": 64})([clip("speechlike_1p0s")])
    assert (saved.hidden_states[1] - other.hidden_states[1]).abs().max() > 1e-3


def test_pretraining_only_tensors_are_ignored_but_nothing_else():
    opened = content("data2vec_audio_base", "s3prl")
    assert isinstance(opened["model_weight"]["_ema"], dict)  # the EMA teacher, not the student weights
    opened = copy.copy(opened)
    opened["model_weight"] = {**opened["model_weight"], "final_proj.weight": torch.zeros(32, 32)}
    reference_from_checkpoint(opened)
    opened["model_weight"]["quantizer.vars"] = torch.zeros(1, 16, 12)  # a wav2vec 2.0 tensor
    with pytest.raises(BadInput, match=r"quantizer\.vars"):
        reference_from_checkpoint(opened)


def test_distiller_without_prediction_heads():
    opened = content("distilhubert", "s3prl_distiller")
    state, section = float32_state_dict(opened["Distiller"]), opened["Config"]["distiller"]
    full = reference("distilhubert", "s3prl_distiller")([clip("speechlike_0p6s")])
    body = DistillerReference(state, section, prediction_heads=False)([clip("speechlike_0p6s")])
    assert len(body.hidden_states) == 1 + section["encoder_layers"]
    for ours, theirs in zip(body.hidden_states, full.hidden_states):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    with pytest.raises(BadInput, match="output_layer"):
        DistillerReference({k: v for k, v in state.items() if not k.startswith("output_layer.")}, section)


def test_unknown_layouts_and_families_are_refused():
    with pytest.raises(BadInput, match="no upstream layout"):
        reference_from_checkpoint({"state_dict": {}})
    with pytest.raises(BadInput, match="unknown upstream family"):
        reference_from_checkpoint(content("hubert_base", "s3prl"), family="conformer")
    renamed = copy.copy(content("hubert_base", "s3prl"))
    renamed["model_cfg"] = {**renamed["model_cfg"], "_name": "speech_to_text"}
    with pytest.raises(BadInput, match="speech_to_text"):
        reference_from_checkpoint(renamed)
    # Naming the family reads the file the way that family's S3PRL loader would.
    assert reference_from_checkpoint(renamed, family="hubert").family == "hubert"


def test_conv_feature_layers_are_parsed_without_running_code():
    assert parse_conv_feature_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")[-1] == (512, 2, 2)
    with pytest.raises(BadInput):
        parse_conv_feature_layers("__import__('os').getcwd()")
    with pytest.raises(BadInput):
        parse_conv_feature_layers("[(512, 10)]")


# -- blocks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [7, 8])
def test_positional_conv_matches_a_weight_normed_conv(kernel):
    torch.manual_seed(kernel)
    dim, groups = 16, 4
    conv = torch.nn.utils.parametrizations.weight_norm(
        torch.nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups), name="weight", dim=2
    )
    x = torch.randn(2, 11, dim)
    with torch.no_grad():
        expected = conv(x.transpose(1, 2))
        if kernel % 2 == 0:  # SamePad
            expected = expected[:, :, :-1]
        expected = torch.nn.functional.gelu(expected).transpose(1, 2)
        weights = {
            "encoder.pos_conv.0.weight_g": conv.parametrizations.weight.original0,
            "encoder.pos_conv.0.weight_v": conv.parametrizations.weight.original1,
            "encoder.pos_conv.0.bias": conv.bias,
        }
        block = ConvPositionalEmbedding(dim, kernel, groups)
        assert {k: tuple(v.shape) for k, v in weights.items()} == block.keys()
        torch.testing.assert_close(block(weights, x), expected, rtol=1e-6, atol=1e-6)


def test_frame_mask_rules():
    layers = parse_conv_feature_layers("[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2")
    lengths = torch.tensor([16000, 4000])
    samples = torch.arange(16000)[None, :] >= lengths[:, None]
    # 4000 samples: 12 frames by the conv formula; fairseq's view/all rule keeps the 13th, whose
    # samples (16000 // 49 = 326 each) are partly real.
    assert (~conv_length_padding_mask(lengths, 49, layers)).sum(1).tolist() == [49, 12]
    assert (~view_all_padding_mask(samples, 49)).sum(1).tolist() == [49, 13]


def test_relative_position_buckets():
    buckets = relative_position_buckets(12, 12, num_buckets=8, max_distance=16)
    # 4 buckets per direction, keys after the query in the upper half; distances below 2 exact,
    # then 2 + floor(log(d / 2) / log(16 / 2) * 2), at most 3: d = 2..5 -> 2, d >= 6 -> 3.
    assert buckets[0].tolist() == [0, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7]
    assert buckets[11].tolist() == [3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 1, 0]


def test_a_batch_needs_a_list_of_waveforms():
    model = reference("hubert_base", "s3prl")
    with pytest.raises(BadInput, match="list of waveforms"):
        model(clip("noise_0p25s"))
    with pytest.raises(BadInput, match="1-D"):
        model([np.zeros((2, 400), dtype=np.float32)])


# -- S3PRL's own modules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("uid", "fmt", "ref_name"), CASES)
def test_s3prl_modules_reproduce_s3prl_hidden_states(uid, fmt, ref_name):
    require_s3prl()
    assert_reproduces(s3prl_backend(uid, fmt), uid, ref_name)


@pytest.mark.parametrize(("uid", "fmt"), FILES)
def test_s3prl_modules_agree_with_the_reference(uid, fmt):
    require_s3prl()
    waves = [clip("speechlike_1p0s"), clip("speechlike_0p6s")]
    ours, theirs = reference(uid, fmt)(waves), s3prl_backend(uid, fmt)(waves)
    assert theirs.unmasked_frames.tolist() == ours.unmasked_frames.tolist()
    for index, (a, b) in enumerate(zip(ours.hidden_states, theirs.hidden_states, strict=True)):
        for row, n in enumerate(ours.unmasked_frames.tolist()):
            assert (a[row, :n] - b[row, :n]).abs().max().item() <= TOLERANCE, (index, row)


def test_distiller_state_0_keeps_zeros_at_padded_frames():
    """DistilHuBERT's encoder zeroes padded frames of feat_final in place, and S3PRL returns that
    very tensor as hidden state 0: it matches on every frame, padding included."""
    entry = UPSTREAMS["distilhubert"]["references"]["batch__speechlike_1p0s+noise_0p25s"]
    expected = load_file(UPSTREAMS_DIR / entry["file"])["hidden_state_00"]
    output = reference("distilhubert", "s3prl_distiller")([clip(name) for name in entry["clips"]])
    assert output.hidden_states[0][1, entry["valid_frames"][1] :].abs().max() == 0
    torch.testing.assert_close(output.hidden_states[0], expected, rtol=0, atol=TOLERANCE)
