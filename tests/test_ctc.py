"""Fine-tuned CTC speech recognition checkpoints (fairseq wav2vec_ctc / hubert_ctc) convert to
transformers' *ForCTC with their tokenizer, transcribe through `pipeline` as fairseq's own model code
did, and `compare` says what both models hear; the dictionary is found where fairseq keeps it, and a
missing or hostile one is refused in one line with nothing written."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from speechport.core.families.ctc.dictionary import MAX_DICTIONARY_BYTES
from speechport.core.proof.comparison import DEFAULT_TOLERANCE
from speechport.core.proof.transcripts import (
    Run,
    character_error_rate,
    differing_spans,
    edit_distance,
    greedy_runs,
    transcript,
    words,
)
from speechport.core.storage.checkpoint import load_checkpoint

from conftest import FIXTURES
from support import leftovers, levenshtein

CTC = FIXTURES / "ctc"
MANIFEST = json.loads((CTC / "MANIFEST.json").read_text())
MODELS = MANIFEST["models"]
CLIPS = MANIFEST["clips"]
TARGET_CLASS = {"wav2vec2": "Wav2Vec2ForCTC", "hubert": "HubertForCTC"}
# The fairseq reference feeds F.layer_norm(eps 1e-5) input, transformers' feature extractor eps 1e-7:
# on identical input the two implementations agree to float rounding, far tighter than the tolerance.
SAME_INPUT_TOLERANCE = 1e-4


def checkpoint(model_id: str) -> Path:
    return CTC / MODELS[model_id]["checkpoint"]


def waveform(clip: str):
    samples, rate = soundfile.read(CTC / CLIPS[clip], dtype="float32")
    assert rate == 16000
    return samples


def reference(model_id: str, clip: str) -> dict:
    return load_file(CTC / MODELS[model_id]["references"][clip]["file"])


def alone(model_id: str, folder: Path) -> Path:
    """The checkpoint copied into a folder of its own: no dictionary file beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(checkpoint(model_id), folder))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("ctc")
    folders = {}
    for model_id in MODELS:
        folders[model_id] = root / model_id
        assert main(["convert", str(checkpoint(model_id)), "--out", str(folders[model_id]), "--quiet"]) == 0
    return folders


# -- the converted folder --------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", list(MODELS))
def test_every_fixture_reloads_cleanly_and_reproduces_fairseqs_logits_and_transcripts(converted, model_id):
    folder, expected = converted[model_id], MODELS[model_id]
    processor = transformers.AutoProcessor.from_pretrained(folder)
    assert type(processor).__name__ == "Wav2Vec2Processor"
    config = transformers.AutoConfig.from_pretrained(folder)
    assert config.architectures == [TARGET_CLASS[expected["family"]]]
    model, info = transformers.AutoModelForCTC.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), info  # every parameter filled, nothing left over
    # transformers' convention: fairseq's blank <s> (row 0) is the pad token, the rows unchanged.
    vocab = expected["vocab"]
    assert (config.vocab_size, config.pad_token_id, config.bos_token_id, config.eos_token_id) == (len(vocab), 0, 1, 2)
    assert json.loads((folder / "vocab.json").read_text()) == {
        **{symbol: index for index, symbol in enumerate(vocab)}, "<pad>": 0, "<s>": 1}
    assert processor.feature_extractor.do_normalize is expected["normalize"]
    model.eval()
    for clip, found in expected["references"].items():
        inputs = processor(waveform(clip), sampling_rate=16000, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**inputs).logits[0]
        fairseq_logits = reference(model_id, clip)["logits"][0]
        assert logits.shape == fairseq_logits.shape == (found["frames"], len(vocab))
        difference = float((logits - fairseq_logits).abs().max())
        assert difference <= DEFAULT_TOLERANCE, (clip, difference)  # eps 1e-7 vs 1e-5 moves normalising models' logits
        assert processor.batch_decode(logits.argmax(-1)[None])[0] == found["transcript"]


@pytest.mark.parametrize("model_id", list(MODELS))
def test_the_folder_transcribes_through_the_asr_pipeline(converted, model_id):
    asr = transformers.pipeline("automatic-speech-recognition", model=str(converted[model_id]))
    for clip, found in MODELS[model_id]["references"].items():
        assert asr(waveform(clip))["text"] == found["transcript"], clip


@pytest.mark.parametrize("model_id", list(MODELS))
def test_the_reference_reproduces_fairseq_alone_and_in_a_padded_batch(model_id):
    from speechport.core.families import detect

    opened = load_checkpoint(checkpoint(model_id))
    side = detect(opened).open(opened).original_side()
    ctc = side.reference
    for clip, found in MODELS[model_id]["references"].items():
        output = ctc([torch.from_numpy(waveform(clip))])
        expected = reference(model_id, clip)
        assert float((output.logits[0] - expected["logits"][0]).abs().max()) <= SAME_INPUT_TOLERANCE
        assert float((output.hidden_states[-1][0] - expected["encoder_output"][0]).abs().max()) <= SAME_INPUT_TOLERANCE
        assert ctc.transcribe(output.logits[0]) == found["transcript"]
    batch = MODELS[model_id]["batch"]
    output = ctc([torch.from_numpy(waveform(clip)) for clip in batch["clips"]])
    expected = load_file(CTC / batch["file"])
    with safe_open(CTC / batch["file"], "pt") as file:
        transcripts = json.loads(file.metadata()["transcripts"])
    assert output.valid_frames.tolist() == batch["valid_frames"] == expected["valid_frames"].tolist()
    for index, frames in enumerate(batch["valid_frames"]):
        assert float((output.logits[index, :frames] - expected["logits"][index, :frames]).abs().max()) <= SAME_INPUT_TOLERANCE
        assert ctc.transcribe(output.logits[index, :frames]) == transcripts[index]


# -- compare ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", list(MODELS))
def test_compare_reports_what_both_models_hear(converted, model_id, run_cli):
    clips = list(MODELS[model_id]["references"])
    audio = [arg for clip in clips for arg in ("--audio", CTC / CLIPS[clip])]
    code, stdout, stderr = run_cli("compare", checkpoint(model_id), converted[model_id], *audio, "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["verdict"] == "pass"
    for clip, found in zip(clips, result["clips"]):
        heard = MODELS[model_id]["references"][clip]["transcript"]
        assert found["transcript_original"] == found["transcript_converted"] == heard
        assert found["character_error_rate"] == 0.0
        assert f"both models hear: “{heard}”" in found["notes"]
        assert found["max_abs_diff"] <= SAME_INPUT_TOLERANCE  # identical input: the weights, not the eps
        stages = found["stage_max_abs_diff"]
        assert list(stages)[-1].startswith("logits")
        # The input stage: what transformers' own feature extractor hands the model (eps 1e-7) next to
        # what fairseq's layer_norm gives (eps 1e-5) — differing only for normalising models.
        input_stage = stages["input (waveform the model receives)"]
        assert (input_stage > 1e-5) if MODELS[model_id]["normalize"] else input_stage == 0.0
        spoken = [w["word"] for w in found["details"]["words_original"]]
        assert " ".join(spoken) == heard and found["details"]["words_converted"] == found["details"]["words_original"]
    code, stdout, _ = run_cli("compare", checkpoint(model_id), converted[model_id], *audio[:2])
    assert code == 0 and f"both models hear: “{MODELS[model_id]['references'][clips[0]]['transcript']}”" in stdout


def test_a_damaged_output_layer_is_heard_differently_and_fails(converted, tmp_path, run_cli):
    model_id, clip = "w2v2_base_ctc", "speechlike_1p0s"
    folder = tmp_path / "damaged"
    shutil.copytree(converted[model_id], folder)
    heard = MODELS[model_id]["references"][clip]["transcript"]
    weights = load_file(folder / "model.safetensors")
    vocab = MODELS[model_id]["vocab"]
    first, second = vocab.index(heard[0]), vocab.index(heard[1])  # the first two letters heard trade places
    for name in ("lm_head.weight", "lm_head.bias"):
        weights[name][[first, second]] = weights[name][[second, first]].clone()
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    code, stdout, stderr = run_cli("compare", checkpoint(model_id), folder, "--audio", CTC / CLIPS[clip], "--json")
    assert code == 1, stderr
    found = json.loads(stdout)["clips"][0]
    assert found["verdict"] == "fail" and found["first_divergent_layer"].startswith("logits")
    assert found["transcript_original"] == heard
    swapped = heard.translate(str.maketrans({heard[0]: heard[1], heard[1]: heard[0]}))
    assert found["transcript_converted"] == swapped
    assert found["character_error_rate"] == pytest.approx(character_error_rate(heard, swapped))
    assert found["character_error_rate"] > 0.1
    assert any(note.startswith("the models hear differently (character error rate") for note in found["notes"])


# -- the dictionary --------------------------------------------------------------------------------------


def test_a_checkpoint_without_any_dictionary_is_refused_naming_the_flag(converted, tmp_path, run_cli):
    source = alone("hubert_large_ctc", tmp_path / "alone")
    out = tmp_path / "out"
    for command in (["inspect", source], ["convert", source, "--out", out, "--quiet"],
                    ["compare", source, converted["hubert_large_ctc"], "--audio", CTC / CLIPS["noise_0p25s"]]):
        code, stdout, stderr = run_cli(*command)
        assert code == 2, stderr
        assert stderr.count("\n") == 1 and stderr.startswith("speechport: error: ")
        assert "no dictionary of the model's output symbols" in stderr and stderr.rstrip().endswith("--dictionary FILE")
    code, stdout, _ = run_cli("convert", source, "--out", out, "--json")
    assert code == 2 and json.loads(stdout)["error"]["kind"] == "needs_dictionary"
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_dictionary_is_found_beside_the_checkpoint_or_given(converted, tmp_path, run_cli):
    model_id = "hubert_large_ctc"  # its dictionary is only a dict.ltr.txt
    expected = (converted[model_id] / "vocab.json").read_bytes()
    given = alone(model_id, tmp_path / "given")
    code, _, stderr = run_cli("convert", given, "--out", tmp_path / "given-out", "--quiet",
                              "--dictionary", CTC / MODELS[model_id]["dict_file"])
    assert code == 0, stderr
    assert (tmp_path / "given-out" / "vocab.json").read_bytes() == expected
    # fairseq's task loads dict.<labels>.txt; another name is found when it is the only one there.
    other = alone(model_id, tmp_path / "other")
    shutil.copy(CTC / MODELS[model_id]["dict_file"], other.parent / "dict.letters.txt")
    code, stdout, stderr = run_cli("inspect", other, "--json")
    assert code == 0, stderr
    assert "from dict.letters.txt beside the checkpoint" in json.loads(stdout)["config"]["inferred"]["vocabulary"]
    shutil.copy(CTC / MODELS[model_id]["dict_file"], other.parent / "dict.words.txt")
    code, _, stderr = run_cli("inspect", other)
    assert code == 2 and "2 dictionary files lie beside it (dict.letters.txt, dict.words.txt)" in stderr


def _dictionary_lines(model_id: str) -> list[str]:
    return (CTC / MODELS[model_id]["dict_file"]).read_text(encoding="utf-8").splitlines()


def _duplicate(path: Path) -> str:
    lines = _dictionary_lines("hubert_large_ctc")
    path.write_text("\n".join([*lines[:-1], lines[1]]) + "\n")  # the last symbol replaced by a second E
    return f"{path}: line 28 repeats the symbol 'E' (already line 2)"


def _short(path: Path) -> str:
    path.write_text("\n".join(_dictionary_lines("hubert_large_ctc")[:-2]) + "\n")
    return (f"{path}: the dictionary has 30 symbols (fairseq's 4 special ones included), but the output layer "
            "w2v_encoder.proj has 32 rows: it is not the dictionary this model was fine-tuned with")


def _huge(path: Path) -> str:
    path.write_text("| 1\n")
    os.truncate(path, MAX_DICTIONARY_BYTES + 1)  # sparse: no room taken
    return f"{path}: holds more than {MAX_DICTIONARY_BYTES:,} bytes, far more than a dictionary of symbols; it is not read"


def _not_utf8(path: Path) -> str:
    path.write_bytes("\n".join(_dictionary_lines("hubert_large_ctc")).encode("utf-8").replace(b"Z 7", b"\xff\xfe 7"))
    return f"{path}: not UTF-8 text (byte"


def _special(path: Path) -> str:
    path.write_text("\n".join(["<unk> 5", *_dictionary_lines("hubert_large_ctc")[:-1]]) + "\n")
    return f"{path}: line 1 repeats the symbol '<unk>' (already fairseq's own special symbols)"


def _no_count(path: Path) -> str:
    path.write_text("\n".join([*_dictionary_lines("hubert_large_ctc")[:3], "E"]) + "\n")
    return f"{path}: line 4 is 'E', not 'symbol count' as a fairseq dictionary has it"


HOSTILE = {"duplicate symbol": _duplicate, "too few symbols": _short, "huge file": _huge, "not UTF-8": _not_utf8,
           "a special symbol again": _special, "a line without a count": _no_count}


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("where", ["given", "beside"])
def test_a_hostile_dictionary_is_one_line_exit_2_and_nothing_written(case, where, tmp_path, run_cli):
    source = alone("hubert_large_ctc", tmp_path / "model")
    dictionary = (tmp_path / "hostile.txt") if where == "given" else (source.parent / "dict.ltr.txt")
    phrase = HOSTILE[case](dictionary)
    given = ["--dictionary", dictionary] if where == "given" else []
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("convert", source, "--out", out, "--quiet", *given)
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith(f"speechport: error: {phrase}")
    assert "Traceback" not in stderr and stdout == ""
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_given_dictionary_must_agree_with_the_checkpoints_own(tmp_path, run_cli):
    lines = _dictionary_lines("w2v2_base_ctc")  # this checkpoint carries its dictionary in task_state
    same, other = tmp_path / "same.txt", tmp_path / "other.txt"
    same.write_text("\n".join(lines) + "\n")
    other.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # E before |
    assert run_cli("inspect", checkpoint("w2v2_base_ctc"), "--dictionary", same)[0] == 0
    code, _, stderr = run_cli("inspect", checkpoint("w2v2_base_ctc"), "--dictionary", other)
    assert code == 2
    assert ("differs from the dictionary the checkpoint carries in its task_state (row 4 is 'E' where it has '|')"
            in stderr) and stderr.rstrip().endswith("; leave out --dictionary")


def test_a_dictionary_or_labels_where_they_do_not_apply_are_refused(tmp_path, run_cli):
    upstream = FIXTURES / "s3prl_upstreams" / "upstreams" / "wavlm_base_plus" / "wavlm_base_plus.pt"
    code, _, stderr = run_cli("inspect", upstream, "--dictionary", CTC / MODELS["w2v2_base_ctc"]["dict_file"])
    assert code == 2 and "a wavlm checkpoint writes none" in stderr
    labels = tmp_path / "labels.txt"
    labels.write_text("yes\nno\n")
    code, _, stderr = run_cli("inspect", checkpoint("w2v2_base_ctc"), "--labels", labels)
    assert code == 2 and "a CTC model writes the symbols of its dictionary" in stderr


def test_an_output_folder_holding_the_given_dictionary_is_refused(tmp_path, run_cli):
    source = alone("hubert_large_ctc", tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    dictionary = Path(shutil.copy(CTC / MODELS["hubert_large_ctc"]["dict_file"], out / "letters.txt"))
    code, _, stderr = run_cli("convert", source, "--out", out, "--force", "--dictionary", dictionary)
    assert code == 2 and "it holds the dictionary file" in stderr
    assert dictionary.read_bytes() == (CTC / MODELS["hubert_large_ctc"]["dict_file"]).read_bytes()


# -- the target cache ---------------------------------------------------------------------------------


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "speechport_report.json"}


@pytest.mark.parametrize("model_id", list(MODELS))
def test_the_folder_is_byte_identical_with_and_without_the_cache(model_id, tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    outputs = {}
    for run, extra in (("no-cache", ["--no-cache"]), ("cold", []), ("warm", [])):
        code, _, stderr = run_cli("convert", checkpoint(model_id), "--out", tmp_path / run, "--quiet", *extra)
        assert code == 0, stderr
        outputs[run] = _tree(tmp_path / run)
    assert {"vocab.json", "tokenizer_config.json", "preprocessor_config.json", "config.json"} <= set(outputs["warm"])
    assert outputs["cold"] == outputs["warm"] == outputs["no-cache"]


IMPORTS_SCRIPT = """
import json, sys
from speechport.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "imported": [m for m in ("torch", "transformers") if m in sys.modules]}))
"""


def test_a_warm_cache_converts_a_known_ctc_model_without_torch_or_transformers(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache-home")}

    def isolated(*args) -> dict:
        done = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT, *map(str, args)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    source = checkpoint("hubert_large_ctc")
    assert set(isolated("inspect", source, "--json")["imported"]) == {"torch", "transformers"}  # builds it
    assert isolated("inspect", source, "--json") == {"code": 0, "imported": []}
    assert isolated("convert", source, "--out", tmp_path / "out", "--json", "--quiet") == {"code": 0, "imported": []}
    assert json.loads((tmp_path / "out" / "vocab.json").read_text())["<pad>"] == 0


# -- transcripts -----------------------------------------------------------------------------------------


def test_greedy_decoding_merges_repeats_drops_the_blank_and_spaces_words():
    names = ["<pad>", "<s>", "</s>", "<unk>", "|", "A", "B"]
    best = [0, 5, 5, 0, 5, 4, 4, 6, 0, 6, 6, 0]  # a blank between two A's keeps both; B B likewise
    runs = greedy_runs(best, blank=0)
    assert runs == [Run(5, 1, 2), Run(5, 4, 4), Run(4, 5, 6), Run(6, 7, 7), Run(6, 9, 10)]
    assert transcript(runs, names) == "AA BB"
    assert [w.to_dict() for w in words(runs, names, 0.02)] == [
        {"word": "AA", "start": 0.02, "end": 0.1}, {"word": "BB", "start": 0.14, "end": 0.22}]
    assert transcript(greedy_runs([0, 0, 0], blank=0), names) == ""


def test_the_character_error_rate_counts_edits_per_character_of_the_original():
    generator = random.Random(21)
    for _ in range(500):
        a = "".join(generator.choice("AB C'") for _ in range(generator.randint(0, 14)))
        b = "".join(generator.choice("AB C'") for _ in range(generator.randint(0, 14)))
        assert edit_distance(a, b) == levenshtein(a, b), (a, b)
    assert character_error_rate("THE CAT", "THE CUT") == pytest.approx(1 / 7)
    assert character_error_rate("", "") == 0.0 and character_error_rate("", "AB") == 2.0
    assert differing_spans("THE CAT", "THE CUT") == ([(5, 6)], [(5, 6)])
    assert differing_spans("HELLO", "HELLO") == ([], [])
    # Two letters swapped everywhere: exactly those letters are marked, nothing beside them.
    heard = MODELS["w2v2_base_ctc"]["references"]["speechlike_1p0s"]["transcript"]
    swapped = heard.translate(str.maketrans({"W": "H", "H": "W"}))
    ours, theirs = differing_spans(heard, swapped)
    assert {heard[i] for a, b in ours for i in range(a, b)} == {"W", "H"} == {swapped[i] for a, b in theirs for i in range(a, b)}
    distance = edit_distance(heard, swapped)
    assert distance <= heard.count("W") + heard.count("H")  # "WH" against "HW" is a deletion and an insertion
    # Any fewest-edits alignment: each edit marks at most one character on each side, and what is left
    # unmarked on both sides is the same text.
    marked_ours, marked_theirs = ({i for a, b in spans for i in range(a, b)} for spans in (ours, theirs))
    assert len(marked_ours) <= distance and len(marked_theirs) <= distance <= len(marked_ours) + len(marked_theirs)
    assert "".join(c for i, c in enumerate(heard) if i not in marked_ours) == \
           "".join(c for i, c in enumerate(swapped) if i not in marked_theirs)
    # Two transcripts far longer than a clip's are aligned exactly too, at once.
    long_ours, long_theirs = heard * 60, swapped * 60
    spans_ours, spans_theirs = differing_spans(long_ours, long_theirs)
    assert sum(b - a for a, b in spans_ours) <= edit_distance(long_ours, long_theirs) == 60 * distance


@pytest.mark.parametrize("model_id", list(MODELS))
def test_the_fine_tuned_checkpoint_is_read_as_plain_data_without_consent(model_id):
    with pytest.raises(Exception):  # noqa: B017 - torch's weights-only loader refuses omegaconf's DictConfig
        torch.load(checkpoint(model_id), weights_only=True)
    opened = load_checkpoint(checkpoint(model_id))
    assert opened.reader == "speechport" and not opened.trusted and "omegaconf" not in sys.modules
    assert opened.content["cfg"]["model"]["_name"] == MODELS[model_id]["fairseq_model"]
    own = opened.content["task_state"].get("target_dictionary")
    assert (own["symbols"] == MODELS[model_id]["vocab"]) if MODELS[model_id]["dictionary"] == "task_state" else own is None


def _args_layout(path: Path, encoder_args) -> Path:
    """The fixture as an older fairseq saved it: argparse args (the encoder's in args.w2v_args)."""
    from speechport.core.storage.checkpoint import as_torch

    content = load_checkpoint(checkpoint("w2v2_base_ctc")).content
    arguments = argparse.Namespace(arch="wav2vec_ctc", w2v_args=encoder_args, normalize=False, labels="ltr")
    torch.save({"args": arguments, "model": as_torch(content["model"]), "task_state": {}}, path)
    shutil.copy(CTC / MODELS["w2v2_base_ctc"]["dict_file"], path.parent / "dict.ltr.txt")
    return path


def test_an_older_checkpoint_with_argparse_args_converts_and_hears_the_same(tmp_path, run_cli):
    settings = dict(load_checkpoint(checkpoint("w2v2_base_ctc")).content["cfg"]["model"]["w2v_args"]["model"])
    settings["arch"] = settings.pop("_name")
    source = _args_layout(tmp_path / "args_ctc.pt", argparse.Namespace(**settings))
    code, stdout, stderr = run_cli("convert", source, "--out", tmp_path / "out", "--verify",
                                   CTC / CLIPS["speechlike_1p0s"])
    assert code == 0, stderr
    assert "(ctc, fairseq_args layout)" in stdout
    assert f"both models hear: “{MODELS['w2v2_base_ctc']['references']['speechlike_1p0s']['transcript']}”" in stdout


def test_a_checkpoint_without_its_encoders_config_is_refused_in_one_line(tmp_path, run_cli):
    source = _args_layout(tmp_path / "no_w2v_args.pt", None)
    code, _, stderr = run_cli("inspect", source)
    assert code == 2 and stderr.count("\n") == 1
    assert "args.w2v_args is empty: the checkpoint does not carry its pretrained encoder's config" in stderr


def test_a_config_file_is_checked_against_the_dictionary(converted, tmp_path, run_cli):
    model_id = "hubert_large_ctc"
    config = json.loads((converted[model_id] / "config.json").read_text())
    assert run_cli("inspect", checkpoint(model_id), "--config", converted[model_id] / "config.json")[0] == 0
    wrong = tmp_path / "config.json"
    wrong.write_text(json.dumps({**config, "vocab_size": 30}))
    code, stdout, stderr = run_cli("convert", checkpoint(model_id), "--config", wrong, "--out", tmp_path / "out")
    assert code == 3 and not (tmp_path / "out").exists()
    assert "config conflict: config vocab_size=30, but 32 symbols in dict.ltr.txt beside the checkpoint" in stderr
