import json

import pytest
import torch

from speechport.core.conversion import prepare
from speechport.core.planning.mapping_file import Overrides
from speechport.core.planning.plan import Plan, SourceEntry, Status, TargetTensor, build_plan, collapse_indices
from speechport.core.planning.rules import RuleSet, Stage, drop, rename
from speechport.core.storage.checkpoint import Checkpoint

from conftest import CONFORMER_SHAW
from support import Described, checkpoint_path

REAL_600M = json.loads((CONFORMER_SHAW / "real_600m_keys.json").read_text())
PRETRAINING_ONLY = {
    "quantizer.entries", "quantizer.num_updates", "quantizer.entry_proj.weight", "quantizer.entry_proj.bias",
    "final_proj.weight", "final_proj.bias", "final_target_proj.weight", "final_target_proj.bias",
}


def meta_checkpoint(entries, name="conformer_shaw_600m.pt") -> Checkpoint:
    """The real 600M model's keys and shapes, described only: no weights allocated."""
    state = {e["key"]: Described(e["dtype"], e["shape"]) for e in entries}
    return Checkpoint(CONFORMER_SHAW / name, "torch", {"model": state}, size=0)


def test_collapse_indices_like_transformers_loading_report():
    keys = [f"encoder.layers.{i}.ffn1.bias" for i in range(24)] + ["encoder.layers.3.conv.weight", "encoder.layers.7.conv.weight"]
    assert collapse_indices(keys) == ["encoder.layers.{0...23}.ffn1.bias", "encoder.layers.{3, 7}.conv.weight"]
    assert collapse_indices(["a.1.b"]) == ["a.1.b"]


def test_real_600m_plan_on_meta_device_maps_773_and_drops_pretraining_keys():
    prepared = prepare(meta_checkpoint(REAL_600M["fs2_keys"]))
    prepared.hasher.cancel()
    plan = prepared.plan
    assert prepared.layout == "fairseq2"
    assert plan.ok and plan.problem_lines() == []
    assert plan.counts()["mapped"] == REAL_600M["num_keys_kept_for_hf"] == 773
    dropped = {row.source_key: row.reason for row in plan.rows if row.status is Status.DROPPED}
    assert set(dropped) == PRETRAINING_ONLY
    assert all(reason.startswith("pretraining only") for reason in dropped.values())
    config = prepared.config.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (1024, 24, 16)
    assert (config.intermediate_size, config.conv_depthwise_kernel_size) == (4096, 31)
    assert (config.left_max_position_embeddings, config.right_max_position_embeddings) == (64, 8)
    mapped_params = sum(torch.Size(row.source_shape).numel() for row in plan.mapped())
    assert mapped_params == REAL_600M["num_parameters_kept_for_hf_incl_masked_spec_embed"]


def test_real_600m_fairseq1_names_plan_the_same_targets():
    fs1 = REAL_600M["fs1_keys_derived"] + [
        {"key": e["key"], "shape": e["shape"], "dtype": "float32"}
        for e in REAL_600M["fs1_extra_keys_deleted_by_converter"] if e["shape"]
    ]
    prepared = prepare(meta_checkpoint(fs1, "conformer_shaw.pt"))
    prepared.hasher.cancel()
    plan = prepared.plan
    assert prepared.layout == "fairseq1" and plan.ok
    assert plan.counts()["mapped"] == 773
    fs2 = prepare(meta_checkpoint(REAL_600M["fs2_keys"]))
    fs2.hasher.cancel()
    assert {r.target_key for r in plan.mapped()} == {r.target_key for r in fs2.plan.mapped()}
    by_key = {r.source_key: r for r in plan.rows}
    assert by_key["encoder.layers.5.conv_module.layer_norm2.weight"].target_key == "encoder.layers.5.conv_module.depthwise_layer_norm.weight"
    assert by_key["encoder.layers.5.conv_module.layer_norm2.weight"].via == ["encoder.layers.5.conv.layer_norm.weight"]
    assert "convert_conformer_shaw_checkpoint" in by_key["encoder.layer_norm.weight"].reason


def small_plan(sources, targets, overrides=None):
    rules = RuleSet([Stage("test", [rename(r"^a\.(\d+)\.w$", r"b.\1.w", "a->b"), drop(r"^junk$", "not needed")])])
    return build_plan(recipe="t", layout="t", target_class="T", sources=sources, rules=rules,
                      targets=targets, overrides=overrides)


def test_every_problem_kind_is_reported_at_once():
    sources = [
        SourceEntry("a.0.w", (2, 2), "float32"), SourceEntry("a.1.w", (3, 2), "float32"),
        SourceEntry("weird", (1,), "float32"), SourceEntry("junk", (5,), "float32"),
        SourceEntry("a.9.w", (2, 2), "float32"),
    ]
    targets = {f"b.{i}.w": TargetTensor((2, 2), "float32") for i in range(4)}
    plan = small_plan(sources, targets, Overrides(rename={"a.9.w": "b.0.w"}))
    status = {(r.source_key, r.target_key): r.status for r in plan.rows}
    assert status[("a.0.w", "b.0.w")] is Status.DUPLICATE and status[("a.9.w", "b.0.w")] is Status.DUPLICATE
    assert status[("a.1.w", "b.1.w")] is Status.SHAPE_MISMATCH
    assert status[("weird", None)] is Status.UNMAPPED
    assert status[("junk", None)] is Status.DROPPED
    assert status[(None, "b.2.w")] is Status.MISSING and (None, "b.1.w") not in status  # claimed, wrong shape
    lines = plan.problem_lines()
    assert "shape mismatch: a.1.w -> b.1.w: checkpoint [3, 2] vs model [2, 2]" in lines
    assert "missing target: b.{2...3}.w" in lines
    assert any(line.startswith("unmapped source: weird") for line in lines)
    assert not plan.ok and plan.counts()["duplicate target"] == 2


def test_mapping_file_fixes_problems_and_plan_round_trips(tmp_path):
    sources = [SourceEntry("a.0.w", (2, 2), "float32"), SourceEntry("odd.name", (2, 2), "float32"), SourceEntry("x", (1,), "float32")]
    targets = {"b.0.w": TargetTensor((2, 2), "float32"), "b.1.w": TargetTensor((2, 2), "float32")}
    assert not small_plan(sources, targets).ok
    fixes = tmp_path / "fixes.toml"
    fixes.write_text('[rename]\n"odd.name" = "b.1.w"\n[drop]\n"x" = "an auxiliary head"\n"gone" = "no such key"\n')
    overrides = Overrides.load(fixes)
    plan = small_plan(sources, targets, overrides)
    assert plan.ok, plan.problem_lines()
    assert [n for n in plan.notes if "gone" in n]  # an entry naming no source key is pointed out
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert [r.to_dict() for r in again.rows] == [r.to_dict() for r in plan.rows]
    overrides.save(tmp_path / "fixes.json")
    assert Overrides.load(tmp_path / "fixes.json").to_dict() == overrides.to_dict()


def test_mapping_file_regex_rules_come_before_the_recipe_rules(tmp_path):
    fixes = tmp_path / "fixes.json"
    fixes.write_text(json.dumps({"rules": [{"match": r"^odd\.(\d+)$", "replace": r"b.\1.w"}, {"match": "^x$", "drop": "aux"}]}))
    sources = [SourceEntry("odd.0", (2, 2), "float32"), SourceEntry("x", (1,), "float32")]
    plan = small_plan(sources, {"b.0.w": TargetTensor((2, 2), "float32")}, Overrides.load(fixes))
    assert plan.ok and plan.rows[0].target_key == "b.0.w" and plan.rows[1].reason == "aux"


@pytest.mark.parametrize(
    "text, message",
    [("{not json", "not valid JSON"), ('{"rename": {"a": 1}}', "must map source keys to strings"),
     ('{"renames": {}}', "unknown section"), ('{"rules": [{"match": "("}]}', "exactly one of")],
)
def test_bad_mapping_files_are_bad_input(tmp_path, text, message):
    from speechport.core.errors import BadInput

    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(BadInput, match=message):
        Overrides.load(path)


def test_fixture_plans_have_no_problems():
    for model, layers in (("cs_s64", 2), ("cs_s48", 3)):
        prepared = prepare(checkpoint_path(model))
        prepared.hasher.cancel()
        assert prepared.plan.ok
        assert prepared.plan.counts()["mapped"] == 1 + 4 + 32 * layers  # masked_spec_embed, frontend, blocks
