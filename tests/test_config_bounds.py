"""Configs and tensor values are checked before anything is built from them: a config that could not
describe a model, a tensor the config is read from that has the wrong number of dimensions,
integer weights for floating-point parameters, and NaN or infinite weights are refused as bad
input, in one line naming what is wrong, with nothing written."""

import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from speechport.core.errors import BadInput
from speechport.core.families._upstream import CONTAINER
from speechport.core.planning.plan import PlanRow, Status, TargetTensor, refuse_non_floating_weights
from speechport.core.reference.upstream_settings import ACTIVATIONS, MAX_CONV_LAYERS, parse_conv_feature_layers
from speechport.core.storage.checkpoint import as_torch, load_checkpoint

from conftest import FIXTURES
from support import checkpoint_path, config_path, leftovers, load_fs2, sha256, to_fairseq1, torch_tensors

UPSTREAMS = FIXTURES / "s3prl_upstreams"
SPEECHLIKE = UPSTREAMS / "audio" / "speechlike_1p0s.wav"
SPEECH = FIXTURES / "conformer_shaw" / "audio" / "s_speech_16k_mono.wav"
HANG_GUARD_S = 180  # far beyond what any refusal here takes; only a build that never ends reaches it

# A layout of each kind: (upstream, file, where the file keeps the model's settings, what messages call that).
LAYOUTS = {
    "fairseq_cfg": ("wav2vec2_base", "wav2vec2_base.fairseq_cfg.pt", lambda c: c["cfg"]["model"], "cfg"),
    "fairseq_args": ("wav2vec2_base", "wav2vec2_base.fairseq_args.pt", lambda c: vars(c["args"]), "args"),
    "s3prl": ("hubert_base", "hubert_base.s3prl_converted.pt", lambda c: c["model_cfg"], "model_cfg"),
    "microsoft": ("wavlm_base_plus", "wavlm_base_plus.pt", lambda c: c["cfg"], "cfg"),
    "s3prl_distiller": ("distilhubert", "distilhubert.distiller_states.ckpt", lambda c: c["Config"]["distiller"],
                        "Config.distiller"),
}


def run_speechport(*args):
    """The CLI in a child process: a build that never ends fails the test by its timeout."""
    done = subprocess.run([sys.executable, "-m", "speechport", *map(str, args)], capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    return done.returncode, done.stdout, done.stderr


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and stderr.startswith("speechport: error: "), stderr[:1000]
    assert "Traceback" not in stderr
    return stderr.removeprefix("speechport: error: ").rstrip("\n")


def upstream(layout: str):
    """The layout's fixture, read as torch.load would give it, and how many tensors its model holds."""
    uid, file, _, _ = LAYOUTS[layout]
    content = as_torch(load_checkpoint(UPSTREAMS / "upstreams" / uid / file).content)
    tensors = sum(1 for _ in torch_tensors(content[CONTAINER[layout]]))
    return content, tensors


def hostile_upstream(tmp_path, layout: str, **settings):
    """The layout's fixture with `settings` written over the model's own: (its path, its tensor count)."""
    content, tensors = upstream(layout)
    LAYOUTS[layout][2](content).update(settings)
    path = tmp_path / f"hostile-{LAYOUTS[layout][1]}"
    torch.save(content, path)
    return path, tensors


def edited_config(tmp_path, source, **changes):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(source.read_text()), **changes}))
    return path


def assert_only(tmp_path, *names):
    """Nothing but the test's own inputs in its folder: no output, no half-written folder."""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def wav2vec2_folder(tmp_path_factory):
    from speechport.cli import main

    out = tmp_path_factory.mktemp("bounds") / "wav2vec2_base-hf"
    assert main(["convert", str(UPSTREAMS / "upstreams" / "wav2vec2_base" / "wav2vec2_base.fairseq_cfg.pt"),
                 "--out", str(out), "--quiet"]) == 0
    return out


# -- counts of layers: bounded by the tensors present, before anything is built -------------------------


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_billion_layers_in_the_checkpoints_own_config_are_refused_before_anything_is_built(tmp_path, layout):
    path, tensors = hostile_upstream(tmp_path, layout, encoder_layers=10**9)
    where = LAYOUTS[layout][3]
    code, _, stderr = run_speechport("convert", path, "--out", tmp_path / "out")
    assert code == 2
    assert one_line(stderr) == (f"{path}: {where} encoder_layers is 1000000000, but the checkpoint holds only {tensors} "
                                "tensors: a layer without weights cannot exist")
    assert_only(tmp_path, path.name)


def test_a_billion_positional_convolutions_are_refused_before_anything_is_built(tmp_path):
    content, tensors = upstream("fairseq_cfg")
    content["cfg"]["model"].update(_name="data2vec_audio", pos_conv_depth=10**9)
    path = tmp_path / "data2vec.pt"
    torch.save(content, path)
    code, _, stderr = run_speechport("inspect", path)
    assert code == 2
    assert one_line(stderr) == (f"{path}: cfg pos_conv_depth is 1000000000, but the checkpoint holds only {tensors} "
                                "tensors: a layer without weights cannot exist")


@pytest.mark.parametrize("changes, field", [
    ({"num_hidden_layers": 10**9}, "num_hidden_layers is 1000000000"),
    ({"add_adapter": True, "num_adapter_layers": 10**9}, "num_adapter_layers is 1000000000"),
], ids=["layers", "adapter layers"])
def test_a_config_file_asking_for_a_billion_layers_is_refused_before_anything_is_built(tmp_path, changes, field):
    config = edited_config(tmp_path, config_path("cs_s64"), **changes)
    tensors = len(load_fs2("cs_s64"))
    code, _, stderr = run_speechport("convert", checkpoint_path("cs_s64"), "--config", config, "--out", tmp_path / "out")
    assert code == 2
    assert one_line(stderr) == (f"{config}: {field}, but the checkpoint holds only {tensors} tensors: a layer without "
                                "weights cannot exist")
    assert_only(tmp_path, "config.json")


def test_a_config_file_listing_a_hundred_thousand_conv_layers_is_refused_before_anything_is_built(tmp_path):
    source = UPSTREAMS / "upstreams" / "wav2vec2_base" / "hf_config.json"
    config = edited_config(tmp_path, source, conv_dim=[16] * 100_000, conv_kernel=[2] * 100_000, conv_stride=[2] * 100_000)
    _, tensors = upstream("fairseq_cfg")
    code, _, stderr = run_speechport("inspect", UPSTREAMS / "upstreams" / "wav2vec2_base" / "wav2vec2_base.fairseq_cfg.pt",
                                     "--config", config)
    assert code == 2
    assert one_line(stderr) == (f"{config}: conv_dim lists 100000 layers, but the checkpoint holds only {tensors} "
                                "tensors: a layer without weights cannot exist")


def test_a_config_asking_for_more_layers_than_present_but_not_more_than_tensors_stays_a_plan_problem(tmp_path, run_cli):
    # Three layers for a two-layer checkpoint: a contradiction the plan shows row by row (exit 3), not bad input.
    config = edited_config(tmp_path, config_path("cs_s64"), num_hidden_layers=3)
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--config", config, "--out", tmp_path / "out")
    assert code == 3 and "missing target: encoder.layers.2." in stderr


@pytest.mark.parametrize("layout", ["fairseq_cfg", "microsoft"])
def test_a_fractional_layer_count_is_refused_not_truncated(tmp_path, run_cli, layout):
    path, _ = hostile_upstream(tmp_path, layout, encoder_layers=2.7)
    code, stdout, stderr = run_cli("convert", path, "--out", tmp_path / "out")
    assert code == 2 and stdout == ""
    assert one_line(stderr) == f"{path}: cfg encoder_layers is 2.7; it must be a whole number above 0"
    assert_only(tmp_path, path.name)
    config = edited_config(tmp_path, config_path("cs_s64"), num_hidden_layers=2.7)
    code, _, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--config", config)
    assert code == 2 and one_line(stderr) == f"{config}: num_hidden_layers is 2.7; it must be a whole number above 0"


# -- values of the wrong kind in the checkpoint's own config -------------------------------------------


def embed_dim() -> int:
    content, _ = upstream("fairseq_cfg")
    return content["cfg"]["model"]["encoder_embed_dim"]


@pytest.mark.parametrize("setting, value, expected", [
    ("encoder_layers", "twelve", "cfg encoder_layers is 'twelve'; it must be a whole number above 0"),
    ("encoder_embed_dim", math.nan, "cfg encoder_embed_dim is nan; it must be a whole number above 0"),
    ("encoder_ffn_embed_dim", None, "cfg encoder_ffn_embed_dim is None; it must be a whole number above 0"),
    ("encoder_attention_heads", 0, "cfg encoder_attention_heads is 0; it must be a whole number above 0"),
    ("encoder_attention_heads", 5, "cfg encoder_embed_dim {embed} is not divisible by encoder_attention_heads 5"),
    ("conv_pos", True, "cfg conv_pos is True; it must be a whole number above 0"),
    ("activation_fn", "swoosh", "cfg activation_fn is 'swoosh'; the original code knows " + ", ".join(ACTIVATIONS)),
    ("extractor_mode", "groupnorm", "cfg extractor_mode is 'groupnorm'; the original code knows default, layer_norm"),
    ("layer_norm_first", "false", "cfg layer_norm_first is 'false'; it must be true or false"),
], ids=["text", "nan", "none", "no heads", "heads not dividing", "a flag for a number", "unknown activation",
        "unknown extractor mode", "text for a flag"])
def test_a_setting_no_model_has_is_bad_input_naming_it_in_every_command(tmp_path, run_cli, wav2vec2_folder,
                                                                          setting, value, expected):
    path, _ = hostile_upstream(tmp_path, "fairseq_cfg", **{setting: value})
    expected = f"{path}: " + expected.format(embed=embed_dim())
    code, stdout, stderr = run_cli("inspect", path, "--json")
    assert code == 2 and one_line(stderr) == expected
    assert json.loads(stdout) == {"error": {"kind": "bad_input", "message": expected}}
    code, _, stderr = run_cli("convert", path, "--out", tmp_path / "out")
    assert code == 2 and one_line(stderr) == expected
    assert_only(tmp_path, path.name)
    code, _, stderr = run_cli("compare", path, wav2vec2_folder, "--audio", SPEECHLIKE)  # the original is never built
    assert code == 2 and one_line(stderr) == expected


def test_the_task_configs_normalize_flag_is_checked_too(tmp_path, run_cli):
    content, _ = upstream("fairseq_cfg")
    content["cfg"]["task"]["normalize"] = "no"
    path = tmp_path / "normalize.pt"
    torch.save(content, path)
    code, _, stderr = run_cli("inspect", path)
    assert code == 2 and one_line(stderr) == f"{path}: task normalize is 'no'; it must be true or false"


def test_sixty_thousand_conv_layers_written_out_are_refused_in_one_short_line(tmp_path, run_cli):
    spec = "+".join(["[(16,2,2)]"] * 60_000)
    path, _ = hostile_upstream(tmp_path, "fairseq_cfg", conv_feature_layers=spec)
    code, _, stderr = run_cli("inspect", path)
    assert code == 2
    line = one_line(stderr)
    assert line.startswith(f"{path}: cfg conv_feature_layers '[(16,2,2)]+[(16,2,2)]")
    assert line.endswith(f"' has more brackets and operators than a list of {MAX_CONV_LAYERS} layers needs")
    assert len(line) < len(str(path)) + 400


@pytest.mark.parametrize("spec", [
    "+".join(["[]"] * 60_000),
    "[" * 60_000 + "]" * 60_000,
    "(" * 60_000 + ")" * 60_000,
    "[(1,1,1)]" + "*1" * 60_000,
], ids=["60,000 sums", "nested 60,000 deep", "parenthesised 60,000 deep", "60,000 products"])
def test_a_conv_spec_past_the_bound_is_refused_before_it_is_parsed(spec):
    with pytest.raises(BadInput, match=f"has more brackets and operators than a list of {MAX_CONV_LAYERS} layers needs"):
        parse_conv_feature_layers(spec)


def test_the_conv_layer_bound_is_exactly_where_the_refusal_starts():
    assert len(parse_conv_feature_layers("+".join(["[(1,1,1)]"] * MAX_CONV_LAYERS))) == MAX_CONV_LAYERS
    assert len(parse_conv_feature_layers(f"[(1,1,1)] * {MAX_CONV_LAYERS}")) == MAX_CONV_LAYERS
    for spec in ("+".join(["[(1,1,1)]"] * (MAX_CONV_LAYERS + 1)), f"[(1,1,1)] * {MAX_CONV_LAYERS + 1}",
                 f"[(1,1,1)] * {MAX_CONV_LAYERS} + [(1,1,1)]", "[(1,1,1)] * 1000000000"):
        with pytest.raises(BadInput, match=f"lists more than {MAX_CONV_LAYERS} layers, more than any feature extractor"):
            parse_conv_feature_layers(spec)


# -- values of the wrong kind in a config file ----------------------------------------------------------


@pytest.mark.parametrize("changes, expected", [
    ({"hidden_size": "48"}, "hidden_size is '48'; it must be a whole number above 0"),
    ({"num_attention_heads": 0}, "num_attention_heads is 0; it must be a whole number above 0"),
    ({"num_attention_heads": 5}, "hidden_size 64 is not divisible by num_attention_heads 5"),
    ({"conv_depthwise_kernel_size": [31]}, "conv_depthwise_kernel_size is [31]; it must be a whole number above 0"),
    ({"layer_norm_eps": math.nan}, "layer_norm_eps is nan; a config holds finite numbers only"),
    ({"layer_norm_eps": "small"}, "Field 'layer_norm_eps' expected float, got str (value: 'small')"),
    ({"apply_spec_augment": "no"}, "Field 'apply_spec_augment' expected bool, got str (value: 'no')"),
], ids=["text for a size", "no heads", "heads not dividing", "a list for a size", "nan", "text for a float",
        "a number for a text"])
def test_a_config_file_value_of_the_wrong_kind_is_one_line_of_bad_input(tmp_path, run_cli, changes, expected):
    config = edited_config(tmp_path, config_path("cs_s64"), **changes)
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--config", config, "--out", tmp_path / "out")
    assert code == 2 and one_line(stderr) == f"{config}: {expected}"
    assert_only(tmp_path, "config.json")


def test_an_upstream_config_file_with_a_text_size_is_bad_input(tmp_path, run_cli):
    config = edited_config(tmp_path, UPSTREAMS / "upstreams" / "hubert_base" / "hf_config.json", intermediate_size="64")
    code, _, stderr = run_cli("inspect", UPSTREAMS / "upstreams" / "hubert_base" / "hubert_base.fairseq_cfg.pt",
                              "--config", config)
    assert code == 2 and one_line(stderr) == f"{config}: intermediate_size is '64'; it must be a whole number above 0"


@pytest.mark.parametrize("field", ["hidden_act", "feat_extract_activation"])
def test_a_config_file_naming_an_activation_transformers_lacks_is_bad_input(tmp_path, run_cli, field):
    from transformers.activations import ACT2FN

    config = edited_config(tmp_path, UPSTREAMS / "upstreams" / "wav2vec2_base" / "hf_config.json", **{field: "swoosh"})
    code, _, stderr = run_cli("inspect", UPSTREAMS / "upstreams" / "wav2vec2_base" / "wav2vec2_base.fairseq_cfg.pt",
                              "--config", config)
    assert code == 2
    assert one_line(stderr) == (f"{config}: {field} is 'swoosh', no activation transformers knows "
                                f"({', '.join(sorted(ACT2FN))})")


# -- the activation: what the original computes, named as transformers names it -------------------------


def test_every_activation_the_original_computes_has_its_transformers_name():
    from transformers.activations import ACT2FN

    from speechport.core.reference import wav2vec2_blocks

    assert set(ACTIVATIONS) == set(wav2vec2_blocks.ACTIVATIONS)
    assert set(ACTIVATIONS.values()) <= set(ACT2FN)
    x = torch.linspace(-4, 4, 801)
    for ours, theirs in ACTIVATIONS.items():
        torch.testing.assert_close(ACT2FN[theirs](x), wav2vec2_blocks.activation(ours)(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu_squared", "gelu_accurate", "tanh"])
def test_an_upstream_with_another_activation_converts_and_is_proven(tmp_path, run_cli, activation):
    path, _ = hostile_upstream(tmp_path, "fairseq_cfg", activation_fn=activation)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", path, "--out", out, "--verify", SPEECHLIKE, "--json")
    assert code == 0, stderr
    assert json.loads((out / "config.json").read_text())["hidden_act"] == ACTIVATIONS[activation]
    assert json.loads(stdout)["verification"]["verdict"] == "pass"


# -- tensors the config is read from ---------------------------------------------------------------------


@pytest.mark.parametrize("naming", ["fairseq2", "fairseq1"])
@pytest.mark.parametrize("key, dims", [
    ("encoder.layers.0.self_attn.sdpa.rel_k_embed.weight", 2),
    ("encoder.layers.0.ffn1.inner_proj.weight", 2),
    ("encoder.layers.0.conv.depthwise_conv.weight", 3),
    ("encoder_frontend.model_dim_proj.weight", 2),
], ids=["rel_k_embed", "ffn1", "depthwise conv", "model_dim_proj"])
def test_a_scalar_where_the_config_reads_a_matrix_is_bad_input_naming_the_files_key(tmp_path, run_cli, naming, key, dims):
    fs2 = load_fs2("cs_s64")
    state = to_fairseq1(fs2) if naming == "fairseq1" else fs2
    (in_file,) = [name for name, tensor in state.items() if tensor is fs2[key]]  # its name in this file
    state[in_file] = torch.tensor(1.0)
    path = tmp_path / "model.pt"
    torch.save({"model": state}, path)
    code, _, stderr = run_cli("convert", path, "--out", tmp_path / "out")
    assert code == 2
    assert one_line(stderr) == (f"{path}: {in_file} has shape []; a conformer_shaw checkpoint holds a {dims}-dimensional "
                                "tensor there")
    assert_only(tmp_path, "model.pt")


# -- integer weights for floating-point parameters -------------------------------------------------------

QUANTIZED = "encoder.layers.0.ffn1.inner_proj.weight"
REFUSED_INTEGERS = ("weights that are not floating point (quantized integers, say) cannot be converted or compared "
                    "as they are; dequantize them to floating point first")


def quantized(tmp_path, keys=(QUANTIZED,)):
    state = load_fs2("cs_s64")
    for key in keys:
        state[key] = state[key].to(torch.int8)
    path = tmp_path / "quantized.pt"
    torch.save({"model": state}, path)
    return path


def test_integer_weights_for_floating_parameters_are_refused_by_inspect_and_convert(tmp_path, run_cli):
    path = quantized(tmp_path)
    before = sha256(path)
    expected = (f"{path}: {QUANTIZED} is int8 in the checkpoint, where the model's parameter is float32: "
                f"{REFUSED_INTEGERS}")
    code, stdout, stderr = run_cli("inspect", path, "--json")
    assert code == 2 and json.loads(stdout) == {"error": {"kind": "bad_input", "message": expected}}
    code, _, stderr = run_cli("convert", path, "--out", tmp_path / "out")
    assert code == 2 and one_line(stderr) == expected
    assert_only(tmp_path, path.name)
    assert sha256(path) == before


def test_every_layer_of_quantized_weights_is_named_collapsed(tmp_path, run_cli):
    keys = [f"encoder.layers.{i}.ffn{n}.inner_proj.weight" for i in (0, 1) for n in (1, 2)]
    path = quantized(tmp_path, keys)
    code, _, stderr = run_cli("inspect", path)
    assert code == 2
    assert one_line(stderr) == (f"{path}: encoder.layers.{{0...1}}.ffn1.inner_proj.weight, "
                                "encoder.layers.{0...1}.ffn2.inner_proj.weight are int8 in the checkpoint, where the "
                                f"model's parameters are float32: {REFUSED_INTEGERS}")


def test_a_fix_that_maps_an_integer_tensor_onto_a_float_parameter_is_refused_before_writing(tmp_path):
    from speechport.core.conversion import convert, prepare
    from speechport.core.planning.mapping_file import Overrides

    state = load_fs2("cs_s64")
    state["their.own.name"] = state.pop(QUANTIZED).to(torch.int8)  # unmapped: the plan opens, with a problem
    path = tmp_path / "model.pt"
    torch.save({"model": state}, path)
    prepared = prepare(path)
    assert not prepared.plan.ok
    fixes = Overrides()
    fixes.rename["their.own.name"] = "encoder.layers.0.ffn1.intermediate_dense.weight"
    assert prepared.replan(fixes).ok  # as the window replans a fix: shapes fit
    with pytest.raises(BadInput) as refused:
        convert(prepared, tmp_path / "out")
    assert str(refused.value) == (f"{path}: their.own.name is int8 in the checkpoint, where the model's parameter is "
                                  f"float32: {REFUSED_INTEGERS}")
    assert_only(tmp_path, "model.pt")


def test_comparing_integer_weights_with_a_folder_holding_them_is_bad_input(tmp_path, run_cli):
    folder = tmp_path / "old-conversion"
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", folder, "--quiet")
    assert code == 0, stderr
    weights = load_file(folder / "model.safetensors")  # as a conversion that copied int8 bytes wrote it
    target = "encoder.layers.0.ffn1.intermediate_dense.weight"
    weights[target] = weights[target].to(torch.int8)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    path = quantized(tmp_path)
    code, _, stderr = run_cli("compare", path, folder, "--audio", SPEECH)
    assert code == 2
    assert one_line(stderr) == (f"{path}: {QUANTIZED} is int8 in the checkpoint, where the model's parameter is "
                                f"float32: {REFUSED_INTEGERS}")


def test_integer_parameters_of_the_target_take_integer_tensors():
    def row(key, dtype):
        return PlanRow(key, (3,), dtype, key, (3,), Status.MAPPED)

    targets = {"counter": TargetTensor((3,), "int64"), "weight": TargetTensor((3,), "float32"),
               "half": TargetTensor((3,), "float16")}
    refuse_non_floating_weights([row("counter", "int64"), row("weight", "float32"), row("half", "bfloat16")],
                                targets, "model.pt")
    with pytest.raises(BadInput, match="^model.pt: weight is bool in the checkpoint, where the model's parameter is "
                                       "float32: "):
        refuse_non_floating_weights([row("counter", "int64"), row("weight", "bool")], targets, "model.pt")
    dropped = PlanRow("weight", (3,), "int8", None, None, Status.DROPPED)  # not copied: nothing to refuse
    refuse_non_floating_weights([dropped], targets, "model.pt")


# -- NaN or infinite weights: the checkpoint's fault, not the clip's ---------------------------------------

POISONED = "encoder.layers.1.ffn2_layer_norm.weight"


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_non_finite_weights_are_named_instead_of_blaming_the_clip(tmp_path, run_cli, value):
    state = load_fs2("cs_s64")
    state[POISONED][3] = value
    path = tmp_path / "poisoned.pt"
    torch.save({"model": state}, path)
    expected = (f"{path}: the checkpoint's weights hold NaN or infinite values, in {POISONED} (1 of "
                f"{state[POISONED].numel()} values): neither model can give a number to compare, on any clip; use a "
                "checkpoint whose weights are finite")
    code, _, stderr = run_cli("convert", path, "--out", tmp_path / "out", "--verify", SPEECH)
    assert code == 2 and one_line(stderr) == expected and "varied sound" not in stderr
    assert_only(tmp_path, path.name)
    code, _, stderr = run_cli("convert", path, "--out", tmp_path / "out", "--quiet")  # bytes are copied, unread
    assert code == 0, stderr
    code, stdout, stderr = run_cli("compare", path, tmp_path / "out", "--audio", SPEECH, "--json")
    assert code == 2 and json.loads(stdout)["error"]["message"] == expected


def test_non_finite_weights_of_an_upstream_are_named_too(tmp_path, run_cli, wav2vec2_folder):
    content, _ = upstream("fairseq_cfg")
    key = "encoder.layers.0.fc1.weight"
    content["model"][key][0, :5] = math.inf
    path = tmp_path / "poisoned.pt"
    torch.save(content, path)
    code, _, stderr = run_cli("compare", path, wav2vec2_folder, "--audio", SPEECHLIKE)
    assert code == 2
    assert f": the checkpoint's weights hold NaN or infinite values, in {key} (5 of " in one_line(stderr)


def test_weights_are_searched_only_when_an_output_is_not_finite(run_cli, wav2vec2_folder, monkeypatch):
    from speechport.core.proof import verification

    searched = []
    monkeypatch.setattr(verification, "refuse_non_finite_weights", searched.append)
    code, _, stderr = run_cli("compare", UPSTREAMS / "upstreams" / "wav2vec2_base" / "wav2vec2_base.fairseq_cfg.pt",
                              wav2vec2_folder, "--audio", SPEECHLIKE)
    assert code == 0, stderr
    assert searched == []
