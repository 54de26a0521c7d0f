"""A proof is about the model the source really is: an S3PRL head is refused on a base model other
than the upstream it records (unless the user accepts it, and then everything says so); a UnitY
speech encoder never converts whole by dropping what it computes after its inner encoder; a user's
drop of a row the original computes with never yields a pass; and the files that crashed on the way
(a crafted Args.downstream, a foreign architectures[0]) are bad input in one line."""

import argparse
import json
import shutil

import pytest
import torch
import transformers

from speechport.core.families import detect
from speechport.core.families.s3prl_heads import identity
from speechport.core.storage.checkpoint import load_checkpoint

from conftest import CONFORMER_SHAW, FIXTURES, S3PRL
from support import leftovers, sha256, unity_checkpoint

UPSTREAMS_DIR = FIXTURES / "s3prl_upstreams"
MANIFEST = json.loads((UPSTREAMS_DIR / "MANIFEST.json").read_text())
S3PRL_MANIFEST = json.loads((S3PRL / "MANIFEST.json").read_text())
TASKS = {task["name"]: task for task in MANIFEST["downstream_tasks"]}
BASE = S3PRL / "base_model"
SID = S3PRL / "sid" / "dev-best.ckpt"
WAVLM_SID = UPSTREAMS_DIR / TASKS["wavlm_sid"]["checkpoint"]
WAVLM_FILE = UPSTREAMS_DIR / TASKS["wavlm_sid"]["upstream_file"]
HUBERT_FILE = UPSTREAMS_DIR / "upstreams" / "hubert_base" / "hubert_base.s3prl_converted.pt"
CLIP = UPSTREAMS_DIR / "audio" / "speechlike_1p0s.wav"
FOX = S3PRL / "audio" / "fox_16k.wav"
SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
CONSENT = "--base-model-mismatch-ok"
WAVLM_ON_HUBERT = ("the head was trained on a wavlm upstream ('wavlm_local') with 3 hidden states, but the base model "
                   "is a hubert upstream file with 3 hidden states")


def one_error_line(stderr: str, *phrases: str) -> bool:
    return stderr.count("\n") == 1 and stderr.startswith("speechport: error: ") and all(p in stderr for p in phrases)


def modified_head(tmp_path, source, change, name="head.ckpt"):
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(source, weights_only=True)
    change(checkpoint)
    path = tmp_path / name
    torch.save(checkpoint, path)
    return path


def base_folder(tmp_path, config_class, name, **changes):
    """A transformers base folder with the S3PRL fixture's sizes (2 layers: 3 hidden states), seeded weights."""
    values = {k: v for k, v in transformers.Wav2Vec2Config.from_pretrained(BASE).to_dict().items()
              if k not in ("model_type", "architectures", "transformers_version")}
    config = config_class(**{**values, **changes})
    torch.manual_seed(0)
    folder = tmp_path / name
    getattr(transformers, config_class.__name__.replace("Config", "Model"))(config).save_pretrained(folder)
    shutil.copy(BASE / "preprocessor_config.json", folder)
    return folder


# -- 1. an S3PRL head on the upstream it records -------------------------------------------------------


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_a_head_on_an_upstream_file_of_another_family_is_refused_naming_both(run_cli, tmp_path, command):
    # The wavlm_local head with a HuBERT file as its base: both models would run on the same wrong base.
    out = tmp_path / "out"
    extra = ["--out", out, "--verify", CLIP] if command == "convert" else []
    code, stdout, stderr = run_cli(command, WAVLM_SID, "--base-model", HUBERT_FILE, *extra)
    assert code == 2 and one_error_line(stderr, WAVLM_ON_HUBERT, CONSENT), stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_head_on_a_transformers_folder_of_another_family_is_refused(run_cli, tmp_path):
    hubert = base_folder(tmp_path, transformers.HubertConfig, "hubert_base")
    code, _, stderr = run_cli("convert", SID, "--base-model", hubert, "--out", tmp_path / "out")
    assert code == 2 and one_error_line(
        stderr, "the head was trained on a wav2vec2 upstream ('hf_wav2vec2_custom') with 3 hidden states, "
                "but the base model is a hubert model with 3 hidden states"), stderr
    assert not (tmp_path / "out").exists()


def test_a_base_model_with_another_layer_count_is_refused_naming_both(run_cli, tmp_path):
    deeper = base_folder(tmp_path, transformers.Wav2Vec2Config, "deeper", num_hidden_layers=3)
    code, _, stderr = run_cli("inspect", SID, "--base-model", deeper)
    assert code == 2 and one_error_line(
        stderr, "a wav2vec2 upstream ('hf_wav2vec2_custom') with 3 hidden states, but the base model is a wav2vec2 "
                "model with 4 hidden states"), stderr


def test_an_unknown_upstream_name_is_no_refusal_but_its_layer_count_still_is(run_cli, tmp_path):
    def rename_upstream(checkpoint):
        checkpoint["Args"].upstream = "our_lab_encoder_local"

    head = modified_head(tmp_path, SID, rename_upstream)
    code, _, stderr = run_cli("inspect", head, "--base-model", BASE)
    assert code == 0, stderr
    deeper = base_folder(tmp_path, transformers.Wav2Vec2Config, "deeper", num_hidden_layers=3)
    code, _, stderr = run_cli("inspect", head, "--base-model", deeper)
    assert code == 2 and one_error_line(
        stderr, "the head was trained on an upstream ('our_lab_encoder_local') with 3 hidden states, but the base "
                "model is a wav2vec2 model with 4 hidden states"), stderr


def every_fixture_head() -> list:
    heads = [pytest.param(S3PRL / task["checkpoint"], BASE, "wav2vec2", id=f"s3prl-{task['name']}")
             for task in S3PRL_MANIFEST["tasks"]]
    return heads + [pytest.param(UPSTREAMS_DIR / task["checkpoint"], UPSTREAMS_DIR / task["upstream_file"],
                                 task["upstream_family"], id=task["name"]) for task in MANIFEST["downstream_tasks"]]


@pytest.mark.parametrize("head, base, family", every_fixture_head())
def test_every_fixture_head_records_the_upstream_it_is_given(head, base, family):
    # Not passing for want of knowing: each head's Args.upstream names a family the table knows, its
    # Featurizer counts the hidden states, and both equal its base model's.
    checkpoint = load_checkpoint(head)
    recipe = detect(checkpoint).open(checkpoint, base)
    recorded = identity.trained_on(checkpoint.content)
    assert recorded.families == (family,) and recorded.hidden_states == 3
    assert family in recipe.base_identity().families and recipe.base_identity().hidden_states == 3
    assert recipe.base_mismatch() is None


@pytest.mark.parametrize("name, family", [
    ("wavlm_local", "wavlm"), ("wavlm_base_plus", "wavlm"), ("hubert_local", "hubert"),
    ("hubert_large_ll60k", "hubert"), ("mhubert_base_vp_en_es_fr_it3", "hubert"), ("wav2vec2_local", "wav2vec2"),
    ("hf_wav2vec2_custom", "wav2vec2"), ("xls_r_300m", "wav2vec2"), ("unispeech_sat_local", "unispeech_sat"),
    ("data2vec_large_ll60k", "data2vec"), ("distilhubert", "distiller"), ("distiller_local", "distiller"),
    # Other architectures: unknown, never refused for their name alone.
    ("wav2vec2_conformer_relpos", None), ("wav2vec", None), ("vq_wav2vec", None), ("lighthubert_small", None),
    ("fbank", None), ({"name": "wavlm"}, None), (None, None),
])
def test_s3prl_upstream_names_map_to_their_family(name, family):
    assert identity.upstream_family(name) == family


def test_the_mismatch_accepted_converts_and_the_report_card_and_comparisons_say_so(run_cli, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", WAVLM_SID, "--base-model", HUBERT_FILE, "--out", out, "--verify", CLIP,
                                   CONSENT, "--json")
    assert code == 0, stderr
    report = json.loads((out / "speechport_report.json").read_text())
    mismatch = report["base_model_mismatch"]
    assert mismatch["accepted"] is True and mismatch["sentence"] == WAVLM_ON_HUBERT
    assert mismatch["trained_on"] == {"family": "wavlm", "hidden_states": 3, "upstream": "wavlm_local",
                                      "upstream_ckpt": TASKS["wavlm_sid"]["args"]["upstream_ckpt"]}
    assert mismatch["base_model"]["family"] == "hubert" and mismatch["base_model"]["hidden_states"] == 3
    assert mismatch["note"] in report["plan"]["notes"]
    assert mismatch["note"] in report["verification"]["clips"][0]["notes"]
    card = (out / "README.md").read_text()
    assert f"- **Base model mismatch**: {WAVLM_ON_HUBERT}: used anyway" in card

    code, _, stderr = run_cli("compare", WAVLM_SID, out, "--base-model", HUBERT_FILE, "--audio", CLIP)
    assert code == 2 and one_error_line(stderr, WAVLM_ON_HUBERT, CONSENT), stderr  # consent is asked every time
    code, stdout, stderr = run_cli("compare", WAVLM_SID, out, "--base-model", HUBERT_FILE, "--audio", CLIP, CONSENT,
                                   "--json")
    assert code == 0, stderr
    clip = json.loads(stdout)["clips"][0]
    assert clip["max_abs_diff"] < 1e-4 and mismatch["note"] in clip["notes"]

    code, stdout, _ = run_cli("inspect", WAVLM_SID, "--base-model", HUBERT_FILE, CONSENT, "--json")
    assert code == 0 and mismatch["note"] in json.loads(stdout)["plan"]["notes"]


def test_in_the_window_the_refusal_is_a_message_and_nothing_can_be_converted(make_window, qtbot, tmp_path):
    from gui_support import convert_button, message, wait_idle

    window = make_window(source=WAVLM_SID, base_model=HUBERT_FILE, output=tmp_path / "out")
    wait_idle(qtbot, window)
    shown = message(window)
    assert window.prepared is None and WAVLM_ON_HUBERT in shown and "give the base model the head was trained on" in shown
    assert "--base-model-mismatch-ok" not in shown and "Traceback" not in shown  # the flag is the command line's
    assert not convert_button(window).isEnabled() and not (tmp_path / "out").exists()


def test_a_head_on_its_own_upstream_says_nothing_of_a_mismatch(run_cli, tmp_path):
    out = tmp_path / "out"
    assert run_cli("convert", WAVLM_SID, "--base-model", WAVLM_FILE, "--out", out, CONSENT)[0] == 0
    report = json.loads((out / "speechport_report.json").read_text())
    assert report["base_model_mismatch"] is None and "mismatch" not in (out / "README.md").read_text()


# -- 2. a UnitY speech encoder is never converted as its inner encoder under its own name ---------------

LAYER_NORMS = ("inner_layer_norm.weight", "inner_layer_norm.bias", "layer_norm.weight", "layer_norm.bias")


def drop_mapping(path, speech, style):
    if style == "drop":
        lines = ["[drop]", *(f'"{speech}.{key}" = "no module for it in Wav2Vec2BertModel"' for key in LAYER_NORMS)]
    else:
        lines = ["[[rules]]", f"match = '^{speech}\\.(inner_)?layer_norm\\.'", 'drop = "no module for it"']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("style", ["drop", "rules"])
@pytest.mark.parametrize("m4t", [False, True], ids=["speech encoder", "whole M4T checkpoint"])
def test_dropping_the_whole_encoders_layer_norms_is_a_plan_problem_naming_what_it_computes(run_cli, tmp_path, m4t,
                                                                                          style):
    source = unity_checkpoint(tmp_path / "unity.pt", m4t)
    speech = "speech_encoder" if m4t else "encoder"
    mapping = drop_mapping(tmp_path / "fixes.toml", speech, style)
    before = sha256(source)
    out = tmp_path / "out"
    code, _, stderr = run_cli("convert", source, "--mapping", mapping, "--out", out, "--verify", SPEECH)
    modules = ", ".join(f"{speech}.{m}" for m in ("inner_layer_norm", "proj1", "proj2", "adaptor_layers", "layer_norm"))
    assert code == 3, stderr
    assert (f"config conflict: config architectures=['Wav2Vec2BertModel'], but the source is the whole UnitY speech "
            f"encoder, which after its inner encoder computes with {modules}; ") in stderr
    assert "unmapped source" not in stderr  # the drops were taken: the conflict alone stops it
    assert not out.exists() and leftovers(tmp_path) == [] and sha256(source) == before
    code, stdout, _ = run_cli("inspect", source, "--mapping", mapping, "--json")
    assert code == 3 and json.loads(stdout)["ok"] is False


def test_the_whole_encoder_is_compared_only_with_a_folder_that_says_it_holds_the_inner_encoder(run_cli, tmp_path):
    source = unity_checkpoint(tmp_path / "unity.pt", False)
    inner = tmp_path / "inner"
    assert run_cli("convert", source, "--recipe", "unity_inner_encoder", "--out", inner)[0] == 0
    code, stdout, stderr = run_cli("compare", source, inner, "--audio", SPEECH, "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["recipe"] == "unity_speech_encoder" and result["clips"][0]["max_abs_diff"] < 5e-3
    assert any(note.startswith("both models are the source's inner conformer encoder") for note in result["clips"][0]["notes"])

    # The same weights in a folder that does not say so (its report says the whole encoder, or is gone).
    report = json.loads((inner / "speechport_report.json").read_text())
    report["recipe"]["name"] = "unity_speech_encoder"
    (inner / "speechport_report.json").write_text(json.dumps(report))
    code, _, stderr = run_cli("compare", source, inner, "--audio", SPEECH)
    assert code == 2 and one_error_line(stderr, "the source is the whole UnitY speech encoder",
                                        "Speechport can run only its inner encoder",
                                        "--recipe unity_inner_encoder"), stderr
    (inner / "speechport_report.json").unlink()
    code, _, stderr = run_cli("compare", source, inner, "--audio", SPEECH)
    assert code == 2 and "Speechport can run only its inner encoder" in stderr


@pytest.mark.parametrize("case", ["unity whole encoder", "s3prl diarization LSTM"])
def test_a_users_drop_of_a_row_the_original_computes_with_never_passes(run_cli, tmp_path, case):
    # Whatever the family, dropping a row the original computes with either stops the conversion or
    # leaves a comparison against the whole original, which then fails.
    out = tmp_path / "out"
    if case == "unity whole encoder":
        source = unity_checkpoint(tmp_path / "unity.pt", False)
        mapping = drop_mapping(tmp_path / "fixes.toml", "encoder", "drop")
        code, _, _ = run_cli("convert", source, "--mapping", mapping, "--out", out, "--verify", SPEECH)
        assert code == 3 and not out.exists()
        return
    lstm = [f"model.rnn.{name}_l0" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    mapping = tmp_path / "fixes.toml"
    mapping.write_text("[drop]\n" + "".join(f'"Downstream.{key}" = "no LSTM in transformers"\n' for key in lstm))
    code, _, _ = run_cli("convert", S3PRL / "sd_lstm" / "best-states-dev.ckpt", "--base-model", BASE,
                         "--mapping", mapping, "--out", out, "--verify", FOX)
    verification = json.loads((out / "speechport_report.json").read_text())["verification"]
    assert code == 1 and verification["verdict"] == "fail" and verification["clips"][0]["max_abs_diff"] > 0.5


# -- 3. crafted files that crashed: one line, exit 2 -----------------------------------------------------


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_args_downstream_that_is_no_name_is_bad_input(run_cli, tmp_path, command):
    def make_it_a_dict(checkpoint):
        checkpoint["Args"].downstream = {"name": "voxceleb1"}

    head = modified_head(tmp_path, SID, make_it_a_dict)
    out = tmp_path / "out"
    extra = ["--out", out] if command == "convert" else []
    code, stdout, stderr = run_cli(command, head, "--base-model", BASE, *extra, "--json")
    assert code == 2 and one_error_line(stderr, "Args.downstream is a dict, not the name of an S3PRL downstream"), stderr
    assert json.loads(stdout)["error"]["kind"] == "bad_input"
    assert not out.exists()


@pytest.mark.parametrize("architectures", [["BertModel"], ["Foo", "Wav2Vec2Model"], [5]], ids=["Bert", "Foo", "number"])
def test_a_base_model_folder_naming_a_foreign_class_is_bad_input(run_cli, tmp_path, architectures):
    base = tmp_path / "base"
    shutil.copytree(BASE, base)
    config = json.loads((base / "config.json").read_text())
    config["architectures"] = architectures
    (base / "config.json").write_text(json.dumps(config))
    code, _, stderr = run_cli("convert", SID, "--base-model", base, "--out", tmp_path / "out")
    first = architectures[0]
    assert code == 2 and one_error_line(stderr, f"its config names '{first}' as its model class, which is no wav2vec2 "
                                                "model"), stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("first", ["Foo", "Wav2Vec2ForCTC", "Wav2Vec2Model"])
def test_a_converted_head_folder_naming_a_foreign_class_first_is_bad_input(run_cli, tmp_path, first):
    out = tmp_path / "sid"
    assert run_cli("convert", SID, "--base-model", BASE, "--out", out)[0] == 0
    config = json.loads((out / "config.json").read_text())
    config["architectures"] = [first, *config["architectures"]]  # the head's class is still listed, second
    (out / "config.json").write_text(json.dumps(config))
    code, _, stderr = run_cli("compare", SID, out, "--base-model", BASE, "--audio", FOX)
    assert code == 2 and one_error_line(stderr, f"its config names '{first}' as its model class, which no s3prl "
                                                "conversion makes"), stderr
