"""Fix, then prove: checkpoints whose names no rule knows convert with the user's fixes, and the
original side follows those fixes only for what it cannot name itself."""

import argparse
import json

import pytest
import torch

from conftest import CONFORMER_SHAW, S3PRL
from support import checkpoint_path, load_fs2

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
FOX = S3PRL / "audio" / "fox_16k.wav"
QUERY = "encoder.layers.1.self_attn.query"
Q_PROJ = "encoder.layers.1.self_attn.q_proj"
LINEAR_Q = "encoder.layers.1.self_attn.linear_q"


@pytest.fixture(scope="module")
def renamed_source(tmp_path_factory):
    """The cs_s64 fixture with layer 1's q_proj saved as `query`: a name no rule knows."""
    state = load_fs2("cs_s64")
    for part in ("weight", "bias"):
        state[f"{QUERY}.{part}"] = state.pop(f"{Q_PROJ}.{part}")
    path = tmp_path_factory.mktemp("renamed") / "model.pt"
    torch.save({"model": state}, path)
    return path


def write_mapping(path, text):
    path.write_text(text)
    return path


RENAME_FIX = (f'[rename]\n"{QUERY}.weight" = "{LINEAR_Q}.weight"\n"{QUERY}.bias" = "{LINEAR_Q}.bias"\n')
SOURCE_RULE_FIX = "[[source_rules]]\nmatch = '\\.self_attn\\.query\\.'\nreplace = '.self_attn.q_proj.'\n"
EXPECTED_FIXES = [{"source": f"{QUERY}.weight", "target": f"{LINEAR_Q}.weight"},
                  {"source": f"{QUERY}.bias", "target": f"{LINEAR_Q}.bias"}]


def test_without_a_fix_the_renamed_key_is_a_plan_problem(run_cli, renamed_source):
    code, stdout, _ = run_cli("inspect", renamed_source)
    assert code == 3 and f"unmapped source: {QUERY}.{{weight, bias}}" not in stdout  # collapsed per key
    assert f"{QUERY}.weight" in stdout


@pytest.mark.parametrize("fix", [RENAME_FIX, SOURCE_RULE_FIX], ids=["rename", "source rule"])
def test_a_fixed_checkpoint_verifies_and_compares_with_the_fixed_rows_listed(run_cli, tmp_path, renamed_source, fix):
    mapping = write_mapping(tmp_path / "fixes.toml", fix)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", renamed_source, "--mapping", mapping, "--out", out,
                                   "--verify", SPEECH, "--json")
    assert code == 0, stderr
    verification = json.loads(stdout)["verification"]
    assert verification["verdict"] == "pass"
    assert sorted(verification["fixes_used"], key=str) == sorted(EXPECTED_FIXES, key=str)
    # compare takes the fixes from the folder's report
    code, stdout, stderr = run_cli("compare", renamed_source, out, "--audio", SPEECH, "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["verdict"] == "pass" and sorted(result["fixes_used"], key=str) == sorted(EXPECTED_FIXES, key=str)
    card = (out / "README.md").read_text()
    assert "2 rows proven only through your fixes" in card and f"`{QUERY}.{{weight, bias}}`" not in card
    code, stdout, _ = run_cli("compare", renamed_source, out, "--audio", SPEECH)
    assert "fixes: 2 rows proven only through your fixes" in stdout


def test_a_fix_that_swaps_canonical_keys_fails_and_names_the_layer(run_cli, tmp_path):
    # Layer 1's q and k projections have the same shape: a mapping file that swaps their targets
    # makes a clean plan, and a wrong model. The original reads them by their own names.
    layer = "encoder.layers.1.self_attn"
    mapping = write_mapping(tmp_path / "swap.toml", "[rename]\n" + "".join(
        f'"{layer}.{a}_proj.{part}" = "{layer}.linear_{b}.{part}"\n'
        for a, b in (("q", "k"), ("k", "q")) for part in ("weight", "bias")))
    out = tmp_path / "out"
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--mapping", mapping, "--out", out, "--quiet")
    assert code == 0, stderr
    code, stdout, _ = run_cli("compare", checkpoint_path("cs_s64"), out, "--audio", SPEECH, "--json")
    result = json.loads(stdout)
    assert code == 1 and result["verdict"] == "fail" and result["fixes_used"] == []
    assert result["clips"][0]["first_divergent_layer"] == "encoder.layers.1"
    code, stdout, _ = run_cli("convert", checkpoint_path("cs_s64"), "--mapping", mapping, "--out", tmp_path / "v",
                              "--verify", SPEECH, "--json")
    assert code == 1 and json.loads(stdout)["verification"]["clips"][0]["first_divergent_layer"] == "encoder.layers.1"


def test_compare_mapping_overrides_the_recorded_fixes(run_cli, tmp_path, renamed_source):
    mapping = write_mapping(tmp_path / "fixes.toml", RENAME_FIX)
    out = tmp_path / "out"
    assert run_cli("convert", renamed_source, "--mapping", mapping, "--out", out, "--quiet")[0] == 0
    (out / "speechport_report.json").unlink()  # a folder without Speechport's report records no fixes
    code, _, stderr = run_cli("compare", renamed_source, out, "--audio", SPEECH)
    assert code == 2 and "not a conversion of model.pt" in stderr
    code, stdout, _ = run_cli("compare", renamed_source, out, "--audio", SPEECH, "--mapping", mapping, "--json")
    assert code == 0 and len(json.loads(stdout)["fixes_used"]) == 2


def test_s3prl_head_with_a_renamed_key_is_proven_through_the_fix(run_cli, tmp_path):
    with torch.serialization.safe_globals([argparse.Namespace]):
        content = torch.load(S3PRL / "sid" / "dev-best.ckpt", weights_only=True)
    for part in ("weight", "bias"):
        content["Downstream"][f"proj.{part}"] = content["Downstream"].pop(f"projector.{part}")
    source = tmp_path / "renamed.ckpt"
    torch.save(content, source)
    mapping = write_mapping(tmp_path / "fixes.toml", '[rename]\n"Downstream.proj.weight" = "projector.weight"\n'
                                                     '"Downstream.proj.bias" = "projector.bias"\n')
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", source, "--base-model", S3PRL / "base_model", "--mapping", mapping,
                                   "--out", out, "--verify", FOX, "--json")
    assert code == 0, stderr
    verification = json.loads(stdout)["verification"]
    assert verification["verdict"] == "pass"
    assert sorted(r["source"] for r in verification["fixes_used"]) == ["Downstream.proj.bias", "Downstream.proj.weight"]


# -- wrapper prefixes -------------------------------------------------------------------------------


def wrapped(tmp_path, prefix, container):
    state = {prefix + key: value for key, value in load_fs2("cs_s64").items()}
    content = {container: state, "epoch": 3} if container else state
    path = tmp_path / "wrapped.pt"
    torch.save(content, path)
    return path


@pytest.mark.parametrize(
    "prefix, container, saved_by",
    [
        ("module.", "model", "torch DistributedDataParallel or DataParallel"),
        ("_orig_mod.", None, "torch.compile"),
        ("model.", "state_dict", "a PyTorch Lightning module"),
        ("module._orig_mod.", None, "torch DistributedDataParallel or DataParallel, then torch.compile"),
    ],
    ids=["DDP", "torch.compile", "Lightning", "DDP around torch.compile"],
)
def test_wrapper_prefixes_are_stripped_as_an_inferred_fix(run_cli, tmp_path, prefix, container, saved_by):
    source = wrapped(tmp_path, prefix, container)
    code, stdout, _ = run_cli("inspect", source)
    assert code == 0
    assert f"note:    inferred fix: wrapper prefix {prefix!r} ({saved_by}) is stripped from every key" in stdout
    code, stdout, _ = run_cli("inspect", source, "--json")
    rows = json.loads(stdout)["plan"]["rows"]
    row = next(r for r in rows if r["source_key"] == f"{prefix}encoder.layers.0.ffn1.inner_proj.weight")
    assert row["target_key"] == "encoder.layers.0.ffn1.intermediate_dense.weight" and not row["by_fix"]
    assert row["via"][0] == "encoder.layers.0.ffn1.inner_proj.weight" and "inferred: wrapper prefix" in row["rule"]
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", source, "--out", out, "--verify", SPEECH, "--json")
    assert code == 0, stderr
    verification = json.loads(stdout)["verification"]
    assert verification["verdict"] == "pass" and verification["fixes_used"] == []


def test_a_mapping_file_may_keep_the_wrapper_prefix(run_cli, tmp_path):
    source = wrapped(tmp_path, "module.", "model")
    keep = tmp_path / "keep.json"
    keep.write_text(json.dumps({"keep_wrapper_prefix": True}))
    code, stdout, _ = run_cli("inspect", source, "--mapping", keep, "--json")
    report = json.loads(stdout)
    assert code == 3 and not any("inferred fix" in note for note in report["plan"]["notes"])
    # ... and a source rule written against the keys as saved then does the stripping.
    strip = tmp_path / "strip.toml"
    strip.write_text("keep_wrapper_prefix = true\n[[source_rules]]\nmatch = '^module\\.'\nreplace = ''\n")
    code, _, stderr = run_cli("inspect", source, "--mapping", strip)
    assert code == 0, stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keep_wrapper_prefix": "yes"}))
    code, _, stderr = run_cli("inspect", source, "--mapping", bad)
    assert code == 2 and "keep_wrapper_prefix must be true or false" in stderr


def test_source_rules_apply_in_turn_and_replace_every_occurrence(run_cli, tmp_path):
    # Layer 1's keys saved with `/` separators under `net/`; two rules, each applied to what the other made.
    state = {("net/" + key.replace(".", "/") if key.startswith("encoder.layers.1.") else key): value
             for key, value in load_fs2("cs_s64").items()}
    source = tmp_path / "slashes.pt"
    torch.save({"model": state}, source)
    fixes = tmp_path / "fixes.toml"
    fixes.write_text("[[source_rules]]\nmatch = '^net/'\nreplace = ''\n[[source_rules]]\nmatch = '/'\nreplace = '.'\n")
    code, stdout, stderr = run_cli("inspect", source, "--mapping", fixes, "--json")
    assert code == 0, stderr
    row = next(r for r in json.loads(stdout)["plan"]["rows"]
               if r["source_key"] == "net/encoder/layers/1/ffn1/inner_proj/weight")
    assert row["via"] == ["encoder/layers/1/ffn1/inner_proj/weight", "encoder.layers.1.ffn1.inner_proj.weight"]
    assert row["target_key"] == "encoder.layers.1.ffn1.intermediate_dense.weight" and row["by_fix"]
    assert "source_rules[1]: '/' -> '.'" in row["rule"]  # the pattern as written, not repr'd


def test_a_prefix_that_does_not_help_is_not_stripped(run_cli, tmp_path):
    # Every key of an S3PRL head starts with its section: no wrapper, nothing inferred.
    code, stdout, _ = run_cli("inspect", S3PRL / "sid" / "dev-best.ckpt", "--base-model", S3PRL / "base_model")
    assert code == 0 and "inferred fix" not in stdout


def test_source_rules_round_trip_through_toml_and_json(tmp_path):
    from speechport.core.planning.mapping_file import Overrides, source_rule

    fixes = Overrides(rename={"a": "b"}, source_rules=[source_rule(r"^backbone\.", ""), source_rule(r"\.query\.", ".q_proj.")])
    for name in ("fixes.toml", "fixes.json"):
        fixes.save(tmp_path / name)
        loaded = Overrides.load(tmp_path / name)
        assert [(r.pattern, r.target) for r in loaded.source_rules] == [(r"^backbone\.", ""), (r"\.query\.", ".q_proj.")]
        assert loaded.rename == {"a": "b"} and all(r.user for r in loaded.source_rules)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[[source_rules]]\nmatch = 'x'\ndrop = 'y'\n", "source_rules[0] needs exactly 'match' and 'replace'"),
        ("[[source_rules]]\nmatch = '(a+)+'\nreplace = ''\n", "repeats a repetition"),
        ("source_rules = 'x'\n", "[[source_rules]] must be a list of tables"),
    ],
)
def test_bad_source_rules_are_refused_naming_them(tmp_path, run_cli, text, expected):
    mapping = write_mapping(tmp_path / "fixes.toml", text)
    code, _, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", mapping)
    assert code == 2 and expected in stderr


def test_a_source_rule_that_matches_nothing_is_a_note(run_cli, tmp_path):
    mapping = write_mapping(tmp_path / "fixes.toml", "[[source_rules]]\nmatch = '^nothing_like_this'\nreplace = ''\n")
    code, stdout, _ = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", mapping)
    assert code == 0 and "source rule source_rules[0] '^nothing_like_this' matches no source key" in stdout
