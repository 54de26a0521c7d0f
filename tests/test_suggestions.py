"""Suggestions for unmapped keys: the right parameter first, confident only when unambiguous."""

import json

import pytest
import torch

from speechport.core.conversion import prepare
from speechport.core.families.conformer_shaw.recipe import FAIRSEQ2_TO_TRANSFORMERS
from speechport.core.planning.mapping_file import Overrides
from speechport.core.planning.rules import Stage
from speechport.core.planning.suggestions import confident_fixes, name_tokens, similarity

from conftest import CONFORMER_SHAW
from support import load_fs2

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
# fairseq2 key -> the same key renamed the ways people's code spells things
EIGHT_RENAMES = {
    "encoder.layers.0.ffn1.inner_proj.weight": "backbone.encoder.layers.0.ffn1.inner_proj.weight",  # a prefix
    "encoder.layers.1.self_attn.q_proj.weight": "encoder.layers.1.self_attn.query.weight",  # a synonym
    "encoder.layers.1.self_attn.v_proj.bias": "encoder.layers.1.self_attn.value.bias",  # a synonym
    "encoder.layers.0.conv.depthwise_conv.weight": "encoder.layers.0.conv.dw_conv.weight",  # an abbreviation
    "encoder.layers.1.ffn2_layer_norm.weight": "encoder.layers.1.ffn2_ln.weight",  # an abbreviation
    "encoder.layers.0.self_attn.output_proj.bias": "encoder/layers/0/self_attn/output_proj/bias",  # another separator
    "encoder.layers.1.conv.pointwise_conv2.weight": "encoder-layers-1-conv-pointwise_conv2-weight",  # another separator
    "encoder.layers.0.self_attn_layer_norm.weight": "encoder.layers.0.selfAttnLayerNorm.weight",  # camelCase
}


def expected_target(fairseq2_key: str) -> str:
    stage = Stage("fairseq2 -> transformers", FAIRSEQ2_TO_TRANSFORMERS)
    return stage.first_match(fairseq2_key).sub(fairseq2_key)


@pytest.fixture(scope="module")
def eight_renamed(tmp_path_factory):
    state = load_fs2("cs_s64")
    for old, new in EIGHT_RENAMES.items():
        state[new] = state.pop(old)
    path = tmp_path_factory.mktemp("renamed") / "eight.pt"
    torch.save({"model": state}, path)
    return path


def test_names_are_compared_as_words_after_synonyms_and_abbreviations():
    assert name_tokens("encoder.layers.12.selfAttnLayerNorm.weight") == (["encoder", "layers", "attn", "norm", "weight"], [12])
    assert name_tokens("blocks/3/ffn1/fc_out") == (["blocks", "ffn1", "proj", "out"], [3])
    assert similarity("self_attn.query.weight", "self_attn.q.weight") == 1.0
    assert similarity("self_attn.query.weight", "self_attn.linear_q.weight") == 0.75  # all but `linear`
    assert similarity("conv.dw_conv.weight", "conv.depthwise_conv.weight") == 1.0
    assert similarity("ffn1.inner_proj.bias", "ffn1.intermediate_dense.bias") == 1.0
    assert similarity("self_attn.query.weight", "self_attn.linear_k.weight") < similarity(
        "self_attn.query.weight", "self_attn.linear_q.weight")


def test_the_top_suggestion_is_right_for_eight_renames_in_different_styles(eight_renamed):
    prepared = prepare(eight_renamed)
    prepared.hasher.cancel()
    suggestions = prepared.suggestions()
    assert set(suggestions) == set(EIGHT_RENAMES.values())
    for old, new in EIGHT_RENAMES.items():
        best = suggestions[new][0]
        assert best.target == expected_target(old), new
        assert best.shape_matches and best.confident, new
    fixes = confident_fixes(suggestions)
    assert fixes == {new: expected_target(old) for old, new in EIGHT_RENAMES.items()}
    assert prepared.replan(Overrides(rename=fixes)).ok


def test_applied_suggestions_convert_and_verify_with_the_eight_rows_proven_through_fixes(eight_renamed, tmp_path, run_cli):
    prepared = prepare(eight_renamed)
    prepared.hasher.cancel()
    mapping = tmp_path / "fixes.json"
    Overrides(rename=confident_fixes(prepared.suggestions())).save(mapping)
    code, stdout, stderr = run_cli("convert", eight_renamed, "--mapping", mapping, "--out", tmp_path / "out",
                                   "--verify", SPEECH, "--json")
    assert code == 0, stderr
    verification = json.loads(stdout)["verification"]
    assert verification["verdict"] == "pass"
    assert sorted(r["source"] for r in verification["fixes_used"]) == sorted(EIGHT_RENAMES.values())


def test_inspect_says_did_you_mean_and_json_carries_the_ranked_lists(eight_renamed, run_cli):
    code, stdout, _ = run_cli("inspect", eight_renamed)
    assert code == 3
    assert ("did you mean: encoder.layers.1.self_attn.query.weight -> encoder.layers.1.self_attn.linear_q.weight "
            "(same shape, confident)") in stdout
    code, stdout, _ = run_cli("inspect", eight_renamed, "--json")
    ranked = json.loads(stdout)["suggestions"]["encoder.layers.0.conv.dw_conv.weight"]
    assert ranked[0] == {"target": "encoder.layers.0.conv_module.depthwise_conv.weight", "shape_matches": True,
                         "similarity": 1.0, "same_layer": True, "confident": True}
    assert 1 < len(ranked) <= 5 and [r["shape_matches"] for r in ranked] == sorted((r["shape_matches"] for r in ranked), reverse=True)


def test_a_parameter_of_another_shape_is_never_ranked_above_one_that_fits(tmp_path):
    # The layer norm's [64] weight is named like the [64, 64] projection: the projection, which
    # fits, comes first, and the alike-named norm is not offered as confident.
    state = load_fs2("cs_s64")
    state["encoder.layers.0.self_attn.normed_q.weight"] = state.pop("encoder.layers.0.self_attn.q_proj.weight")
    path = tmp_path / "model.pt"
    torch.save({"model": state}, path)
    prepared = prepare(path)
    prepared.hasher.cancel()
    ranked = prepared.suggestions()["encoder.layers.0.self_attn.normed_q.weight"]
    assert ranked[0].target == "encoder.layers.0.self_attn.linear_q.weight" and ranked[0].shape_matches
    assert all(s.shape_matches for s in ranked[: [s.shape_matches for s in ranked].count(True)])


def test_two_keys_wanting_the_same_parameter_are_not_confident(tmp_path):
    state = load_fs2("cs_s64")
    q = state.pop("encoder.layers.0.self_attn.q_proj.weight")
    state["encoder.layers.0.self_attn.query.weight"] = q
    state["encoder.layers.0.self_attn.query_copy.weight"] = q.clone()
    path = tmp_path / "model.pt"
    torch.save({"model": state}, path)
    prepared = prepare(path)
    prepared.hasher.cancel()
    suggestions = prepared.suggestions()
    assert suggestions["encoder.layers.0.self_attn.query.weight"][0].target == "encoder.layers.0.self_attn.linear_q.weight"
    assert suggestions["encoder.layers.0.self_attn.query_copy.weight"][0].target == "encoder.layers.0.self_attn.linear_q.weight"
    assert confident_fixes(suggestions) == {}
