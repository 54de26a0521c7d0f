"""Reading a test set in every form it comes in, and refusing the ones that cannot be read as one.

No model runs here: these tests are about which clips a set names, with which labels, parts and
trials, and about refusals made before anything is read or run.
"""

import json
import os
import shutil

import pytest

from speechport.core.errors import BadInput
from speechport.core.proof.datasets import MAX_LIST_BYTES, read_dataset

from conftest import CONFORMER_SHAW, S3PRL
from support import checkpoint_path

SPEECH = CONFORMER_SHAW / "audio/s_speech_16k_mono.wav"
FOX = S3PRL / "audio/fox_16k.wav"


def clips(dataset):
    return [(c.key, os.path.relpath(c.path, dataset.path if dataset.path.is_dir() else dataset.path.parent), c.label,
             c.start, c.duration) for c in dataset.clips]


def test_a_folder_is_every_audio_file_under_it_in_sorted_order(tmp_path):
    for name in ("b/z.wav", "a.flac", "b/a.WAV", "c/d/e.ogg", ".hidden/x.wav", "notes.txt", "b/.x.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"not decoded here")
    dataset = read_dataset(tmp_path)
    assert dataset.form == "folder" and dataset.trials == () and not dataset.labelled
    assert [c.key for c in dataset.clips] == ["a.flac", "b/a.WAV", "b/z.wav", "c/d/e.ogg"]
    assert [c.index for c in dataset.clips] == [0, 1, 2, 3]
    assert all(os.path.isabs(c.path) for c in dataset.clips)


def test_a_folders_metadata_gives_labels_and_parts_and_a_file_listed_twice_is_two_clips(tmp_path):
    shutil.copy(SPEECH, tmp_path / "speech.wav")
    shutil.copy(FOX, tmp_path / "fox.wav")
    (tmp_path / "sub").mkdir()
    shutil.copy(FOX, tmp_path / "sub/unlisted.wav")
    (tmp_path / "metadata.csv").write_text(
        "file_name,label,start,duration\nspeech.wav,yes,0.5,1\nspeech.wav,no,2,1.5\nfox.wav,7,,\nmissing.wav,no,,\n")
    dataset = read_dataset(tmp_path)
    assert dataset.label_column == "label"
    assert clips(dataset) == [
        ("fox.wav", "fox.wav", "7", None, None),
        ("speech.wav@0.5+1", "speech.wav", "yes", 0.5, 1.0),
        ("speech.wav@2+1.5", "speech.wav", "no", 2.0, 1.5),
        ("sub/unlisted.wav", "sub/unlisted.wav", None, None, None),
        ("missing.wav", "missing.wav", "no", None, None),  # named by a row: compared, and found unreadable then
    ]
    assert dataset.notes == ("1 audio file under the folder is not in metadata.csv: compared without a label",)


def test_metadata_jsonl_and_another_label_column(tmp_path):
    shutil.copy(FOX, tmp_path / "fox.wav")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "fox.wav", "speaker": "id10270", "start": 1}) + "\n")
    dataset = read_dataset(tmp_path, label_column="speaker")
    assert clips(dataset) == [("fox.wav", "fox.wav", "id10270", 1.0, None)]
    with pytest.raises(BadInput, match="no 'emotion' column to read labels from"):
        read_dataset(tmp_path, label_column="emotion")


@pytest.mark.parametrize("form, name, text", [
    ("csv", "set.csv", "file_name,label\naudio/fox.wav,a\n{speech},b\n"),
    ("tsv", "set.tsv", "file_name\tlabel\naudio/fox.wav\ta\n{speech}\tb\n"),
    ("jsonl", "set.jsonl", '{{"file_name": "audio/fox.wav", "label": "a"}}\n\n{{"file_name": "{speech}", "label": "b"}}\n'),
])
def test_manifests_read_paths_relative_to_themselves(tmp_path, form, name, text):
    (tmp_path / "lists").mkdir()
    manifest = tmp_path / "lists" / name
    manifest.write_text(text.format(speech=SPEECH))
    dataset = read_dataset(manifest)
    assert dataset.form == form and dataset.label_column == "label"
    assert [(c.key, c.path, c.label) for c in dataset.clips] == [
        ("audio/fox.wav", str(tmp_path / "lists/audio/fox.wav"), "a"), (str(SPEECH), str(SPEECH), "b")]


def test_a_fairseq_manifest_is_its_root_then_paths_with_frames(tmp_path):
    manifest = tmp_path / "valid.tsv"
    manifest.write_text(f"{S3PRL / 'audio'}\nfox_16k.wav\t49459\ngo_short_16k.wav\t8000\n")
    dataset = read_dataset(manifest)
    assert dataset.form == "fairseq"
    assert [(c.key, c.path) for c in dataset.clips] == [("fox_16k.wav", str(FOX)),
                                                        ("go_short_16k.wav", str(S3PRL / "audio/go_short_16k.wav"))]
    manifest.write_text(f"{S3PRL / 'audio'}\nfox_16k.wav 49459\n")
    with pytest.raises(BadInput, match=r"line 2 is not 'path<TAB>frames' as a fairseq manifest's lines are"):
        read_dataset(manifest)


def test_reference_texts_come_from_the_text_column_or_the_one_named(tmp_path):
    shutil.copy(FOX, tmp_path / "fox.wav")
    shutil.copy(SPEECH, tmp_path / "speech.wav")
    (tmp_path / "metadata.csv").write_text("file_name,label,text\nfox.wav,a,\" the quick  fox \"\nspeech.wav,b,\n")
    dataset = read_dataset(tmp_path)
    assert [(c.key, c.label, c.text) for c in dataset.clips] == [("fox.wav", "a", "the quick  fox"),
                                                                  ("speech.wav", "b", None)]  # empty: no text
    assert dataset.text_column == "text" and dataset.describe().endswith("(reference texts from the 'text' column)")
    manifest = tmp_path / "lists/set.jsonl"
    _write(manifest, json.dumps({"file_name": "a.wav", "sentence": "one"}) + "\n"
           + json.dumps({"file_name": "b.wav", "sentence": 7}) + "\n" + json.dumps({"file_name": "c.wav"}) + "\n")
    dataset = read_dataset(manifest, text_column="sentence")
    assert [(c.key, c.text) for c in dataset.clips] == [("a.wav", "one"), ("b.wav", "7"), ("c.wav", None)]
    assert read_dataset(manifest).text_column is None  # no `text` column: none, and nothing refused
    with pytest.raises(BadInput, match="no 'transcription' column to read reference texts from"):
        read_dataset(manifest, text_column="transcription")
    _write(manifest, json.dumps({"file_name": "a.wav", "text": ["not", "text"]}) + "\n")
    with pytest.raises(BadInput, match=r"line 1: the 'text' column holds .* not text"):
        read_dataset(manifest)


def test_a_fairseq_manifests_word_transcripts_beside_it_give_each_clip_its_text(tmp_path):
    manifest = tmp_path / "dev.tsv"
    manifest.write_text(f"{S3PRL / 'audio'}\nfox_16k.wav\t49459\n\ngo_short_16k.wav\t8000\n")
    words = tmp_path / "dev.wrd"
    words.write_text("THE QUICK\u2028FOX\r\nGO\n", newline="")  # CRLF; a line separator inside a text is not a line end
    dataset = read_dataset(manifest)
    assert [(c.key, c.text) for c in dataset.clips] == [("fox_16k.wav", "THE QUICK\u2028FOX"), ("go_short_16k.wav", "GO")]
    assert dataset.text_column == "dev.wrd" and dataset.describe().endswith("(reference texts from dev.wrd)")
    words.write_text("THE QUICK FOX\n")
    with pytest.raises(BadInput) as refused:
        read_dataset(manifest)
    assert str(refused.value) == (f"{words}: has 1 line for the 2 clips of dev.tsv; fairseq's word transcripts hold one "
                                  "line per clip, in the manifest's order")
    words.unlink()
    os.mkfifo(words)  # never opened: the read would block
    with pytest.raises(BadInput, match="is a named pipe"):
        read_dataset(manifest)
    words.unlink()
    assert all(c.text is None for c in read_dataset(manifest).clips)


def test_a_kaldi_wav_scp_with_plain_paths(tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt1 {FOX}\nutt2 relative/speech.wav\n")
    dataset = read_dataset(scp)
    assert dataset.form == "kaldi"
    assert [(c.key, c.path) for c in dataset.clips] == [("utt1", str(FOX)), ("utt2", str(tmp_path / "relative/speech.wav"))]
    scp.write_text(f"utt1 {FOX}\nutt1 {SPEECH}\n")
    with pytest.raises(BadInput, match="line 2: the utterance id 'utt1' is given twice"):
        read_dataset(scp)


@pytest.mark.parametrize("entry, why", [
    ("sox {clip} -t wav - |", "is a command to run, whose output would be the audio"),
    ("-", "is Kaldi's standard input"),
    ("{clip}.ark:1234", "is a byte offset into a Kaldi archive"),
])
def test_a_wav_scp_entry_that_is_no_plain_path_is_refused_and_nothing_runs(run_cli, tmp_path, entry, why):
    marker = tmp_path / "the command ran"
    clip = f"{FOX} ; touch '{marker}'" if "|" in entry else str(FOX)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"good {SPEECH}\nhostile {entry.format(clip=clip)}\n")
    report = tmp_path / "report"
    code, out, err = run_cli("compare", checkpoint_path("cs_s64"), tmp_path / "no-folder-needed", "--dataset", scp,
                             "--report", report)
    assert code == 2 and out == ""
    assert err.startswith(f"speechport: error: {scp}: line 2 ('hostile'): ")
    assert f"{why}, not a file; Speechport reads only plain paths from a wav.scp and never runs a command" in err
    assert "(nothing was run and nothing was read)" in err and err.count("\n") == 1
    assert not marker.exists() and not report.exists()


def test_a_trial_list_names_each_clip_once_and_keeps_its_trials(tmp_path):
    trials = tmp_path / "veri_test.txt"
    trials.write_text("1 a/1.wav a/2.wav\n0 a/1.wav b/1.wav\n\n1 b/1.wav b/2.wav\n")
    dataset = read_dataset(trials)
    assert dataset.form == "trials"
    assert [c.key for c in dataset.clips] == ["a/1.wav", "a/2.wav", "b/1.wav", "b/2.wav"]
    assert [(t.target, t.enroll, t.test) for t in dataset.trials] == [
        (True, "a/1.wav", "a/2.wav"), (False, "a/1.wav", "b/1.wav"), (True, "b/1.wav", "b/2.wav")]


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "absent", "no such test set (a folder of clips, a manifest, a wav.scp or a trial list)"),
    (lambda tmp: _write(tmp / "empty-folder/readme.txt", "x").parent, "the test set holds no clip to compare on "
                                                                       "(no audio file under the folder)"),
    (lambda tmp: shutil.copy(FOX, tmp / "fox.wav") and tmp / "fox.wav",
     "is one audio clip, not a test set; compare on it with --audio"),
    (lambda tmp: _write(tmp / "set.csv", "path,label\nfox.wav,a\n"),
     "line 2 has no 'file_name' column (the path of its clip, relative to the manifest); its columns: label, path"),
    (lambda tmp: _write(tmp / "set.csv", "file_name,start\nfox.wav,soon\n"),
     "line 2: start 'soon' is not a number of seconds 0 or more"),
    (lambda tmp: _write(tmp / "set.csv", "file_name,duration\nfox.wav,0\n"),
     "line 2: duration '0' is not a number of seconds above 0"),
    (lambda tmp: _write(tmp / "set.jsonl", '{"file_name": "fox.wav"}\n[1, 2]\n'),
     "line 2 is not a JSON object with a 'file_name' key"),
    (lambda tmp: _write(tmp / "clips.txt", "fox.wav\nspeech.wav\n"), "not a test set Speechport reads"),
    (lambda tmp: _write(tmp / "set.csv", "file_name,file_name\nfox.wav,x\n"), "the header names a column twice"),
])
def test_a_set_that_cannot_be_read_is_refused_in_one_line(run_cli, tmp_path, make, message):
    dataset = make(tmp_path)
    report = tmp_path / "report"
    code, out, err = run_cli("compare", checkpoint_path("cs_s64"), tmp_path, "--dataset", dataset, "--report", report)
    assert code == 2 and out == "" and err.startswith("speechport: error: ") and err.count("\n") == 1
    assert message in err
    assert not report.exists()


def test_a_fifo_as_the_set_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "set.csv"
    os.mkfifo(fifo)
    with pytest.raises(BadInput, match="is a named pipe"):
        read_dataset(fifo)


def test_a_list_larger_than_the_limit_is_refused_before_it_is_read(tmp_path):
    manifest = tmp_path / "set.csv"
    with open(manifest, "wb") as handle:
        handle.truncate(MAX_LIST_BYTES + 1)  # sparse: nothing to read, only a size
    with pytest.raises(BadInput, match=f"a test set's list is read whole, and at most {MAX_LIST_BYTES >> 20} MiB"):
        read_dataset(manifest)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
