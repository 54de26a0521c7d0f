"""End-to-end: the shared conformer_shaw checkpoints convert, reload cleanly and reproduce the
genuine fairseq2 outputs through their own saved feature extractor."""

import json

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoFeatureExtractor, Wav2Vec2BertModel

from speechport.core.conversion import convert, prepare
from speechport.core.errors import Cancelled
from speechport.core.progress import Progress

from conftest import CONFORMER_SHAW
from support import MODELS, checkpoint_path, config_path, leftovers, load_fs2, sha256, to_fairseq1

MANIFEST = json.loads((CONFORMER_SHAW / "MANIFEST.json").read_text())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Every shared model converted with and without --config, through the CLI."""
    from speechport.cli import main

    root = tmp_path_factory.mktemp("converted")
    folders = {}
    for model in MODELS:
        for with_config in (False, True):
            out = root / f"{model}-{'config' if with_config else 'inferred'}"
            args = ["convert", str(checkpoint_path(model)), "--out", str(out), "--quiet"]
            if with_config:
                args += ["--config", str(config_path(model))]
            assert main(args) == 0
            folders[(model, with_config)] = out
    return folders


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("with_config", [False, True], ids=["inferred", "config"])
def test_reloads_with_every_loading_list_empty(converted, model, with_config):
    folder = converted[(model, with_config)]
    hf_model, info = Wav2Vec2BertModel.from_pretrained(folder, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    assert type(extractor).__name__ == "SeamlessM4TFeatureExtractor" and extractor.padding_value == 1
    assert json.loads((folder / "preprocessor_config.json").read_text())["processor_class"] == "Wav2Vec2BertProcessor"
    expected = json.loads(config_path(model).read_text())
    config = hf_model.config.to_dict()
    for field, value in expected.items():
        if field == "torch_dtype":  # transformers 5 calls it dtype
            field = "dtype"
        assert config[field] == value, field


@pytest.mark.parametrize("model", MODELS)
def test_inferred_and_given_config_give_the_same_weights(converted, model):
    inferred = (converted[(model, False)] / "model.safetensors").read_bytes()
    given = (converted[(model, True)] / "model.safetensors").read_bytes()
    assert inferred == given


CASES = [(name, case) for name, case in MANIFEST["cases"].items()]


@pytest.mark.parametrize("name, case", CASES, ids=[c[0] for c in CASES])
def test_converted_model_reproduces_the_genuine_fairseq2_output(converted, name, case):
    folder = converted[(case["model"], False)]
    model = Wav2Vec2BertModel.from_pretrained(folder).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    waveform = load_file(CONFORMER_SHAW / case["inputs_file"])["waveform_16k_0"][0]
    reference = load_file(CONFORMER_SHAW / case["file"])
    inputs = extractor(waveform.numpy(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        output = model(**inputs).last_hidden_state
    valid = int(reference["output_seq_lens"][0])
    diff = (output[0, :valid] - reference["last_hidden_state"][0, :valid]).abs().max().item()
    assert diff < 5e-3, f"{name}: max |diff| {diff:.3g} on {valid} valid frames"
    assert diff < 1e-3  # in practice about 1e-5; a mapping error is orders of magnitude larger


@pytest.mark.parametrize("model", MODELS)
def test_folder_contents_card_and_report(converted, model):
    folder = converted[(model, False)]
    assert {p.name for p in folder.iterdir()} == {
        "model.safetensors", "config.json", "preprocessor_config.json", "README.md", "speechport_report.json"}
    card = (folder / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "feature-extraction"
    # base_model is a Hub id or absent, never a file name; the card's text names the source file.
    assert "base_model" not in metadata and "`conformer_shaw_fs2.pt`" in card
    assert "pretraining only: quantizer" in card and sha256(checkpoint_path(model)) in card
    report = json.loads((folder / "speechport_report.json").read_text())
    assert report["source"]["sha256"] == sha256(checkpoint_path(model))
    assert report["source"]["stored_dtypes"] == {"float32": len(load_fs2(model)) - 1, "int64": 1}
    assert report["source"]["read_by"] == "speechport"
    assert report["recipe"]["name"] == "conformer_shaw" and report["recipe"]["layout"] == "fairseq2"
    assert len(report["plan"]["rows"]) == len(load_fs2(model))  # one row per source key
    assert {d["source_key"] for d in report["dropped"]} >= {"quantizer.entries", "final_proj.weight"}
    assert all(d["reason"] for d in report["dropped"])
    assert report["versions"]["transformers"] and report["config"]["origin"] == "inferred"


@pytest.mark.parametrize("model", MODELS)
def test_fairseq1_layout_converts_to_the_identical_folder(tmp_path, converted, model):
    fs1_file = tmp_path / "conformer_shaw.pt"
    torch.save({"model": to_fairseq1(load_fs2(model))}, fs1_file)
    prepared = prepare(fs1_file)
    assert prepared.layout == "fairseq1"
    assert prepared.plan.ok, prepared.plan.problem_lines()
    dropped = {r.source_key for r in prepared.plan.rows if r.status.value == "dropped"}
    assert {"encoder.layer_norm.weight", "encoder.layer_norm.bias", "quantizer.vars"} <= dropped
    out = convert(prepared, tmp_path / "out").output
    reference = converted[(model, False)]
    for name in ("model.safetensors", "config.json", "preprocessor_config.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_sharded_above_the_shard_size(tmp_path, converted):
    prepared = prepare(checkpoint_path("cs_s64"))
    result = convert(prepared, tmp_path / "sharded", max_shard_size="200KB")
    files = sorted(p.name for p in result.output.iterdir() if "safetensors" in p.name)
    assert files == ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                     "model-00003-of-00003.safetensors", "model.safetensors.index.json"]
    _, info = Wav2Vec2BertModel.from_pretrained(result.output, output_loading_info=True)
    assert not any(info.values())
    single = load_file(converted[("cs_s64", False)] / "model.safetensors")
    index = json.loads((result.output / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(single)
    for key, filename in index["weight_map"].items():
        with safe_open(result.output / filename, "pt") as shard:
            assert torch.equal(shard.get_tensor(key), single[key])


def test_weights_are_copied_file_to_file(converted):
    report = json.loads((converted[("cs_s64", False)] / "speechport_report.json").read_text())
    assert report["output"]["tensors_copied_file_to_file"] == 69
    assert report["output"]["tensors_written_from_memory"] == 0


def test_cancel_in_the_middle_leaves_nothing(tmp_path):
    prepared = prepare(checkpoint_path("cs_s48"))
    seen = []

    def cancel_after_a_few_tensors(event):
        seen.append(event)
        if event.stage == "writing weights" and event.items_done >= 3:
            progress.cancel()

    progress = Progress(cancel_after_a_few_tensors, min_interval=0.0)
    with pytest.raises(Cancelled):
        convert(prepared, tmp_path / "out", progress=progress)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []
    assert any(e.stage == "writing weights" and e.items_done >= 3 for e in seen)


def test_force_replaces_a_folder_only_once_the_new_one_is_complete(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous conversion")
    prepared = prepare(checkpoint_path("cs_s64"))
    events = []

    def old_folder_still_there(event):
        events.append((out / "old.txt").exists())

    convert(prepared, out, force=True, progress=Progress(old_folder_still_there, min_interval=0.0))
    # Intact through every step; gone only at the final report, after the new folder was in place.
    assert len(events) > 5 and all(events[:-1]) and not events[-1]
    assert not (out / "old.txt").exists() and (out / "model.safetensors").exists()
    assert leftovers(tmp_path) == []
