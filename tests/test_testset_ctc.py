"""Speech recognition (CTC) models over a test set: whether both models transcribe the set alike, and
how close each comes to the reference text the set gives.

The sets are built here from the CTC fixtures' clips, with reference texts crafted here; each clip's
transcripts are checked against `compare --audio` on that clip alone, and every number over the set
against a hand computation here: edit distances from the textbook dynamic programme, summed over
the clips and divided by the summed lengths.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from speechport.core.families.ctc.recipe import CtcRecipe
from speechport.core.proof.comparison import TRANSCRIPT, SideOutput
from speechport.core.proof.testset_report import render_report
from speechport.core.proof.testset_summary import SUMMARY_FIELDS, summarize
from speechport.core.proof.testset_transcripts import (
    TRANSCRIPTION_FIELDS,
    normalise,
    transcription_aggregates,
    transcription_rows,
    word_edits,
)
from speechport.core.proof.transcripts import edit_distance as edits

from conftest import FIXTURES
from support import levenshtein
from testset_support import results

CTC = FIXTURES / "ctc"
MANIFEST = json.loads((CTC / "MANIFEST.json").read_text())
MODEL = "w2v2_base_ctc"
SOURCE = CTC / MANIFEST["models"][MODEL]["checkpoint"]
HEARD = {f"{clip}.wav": found["transcript"] for clip, found in MANIFEST["models"][MODEL]["references"].items()}
LONG, SHORT, NOISE = "speechlike_1p0s.wav", "speechlike_0p6s.wav", "noise_0p25s.wav"
# Reference texts crafted from what the model hears, with edits counted by construction: the long clip's
# text in lower case with a word more (6 characters inserted, 1 word); the short clip's split in two
# words by a double space, its last character changed (a space inserted and a substitution: 2
# characters; against its one word, 2 words edited). The noise clip's row has an empty text: none.
TEXTS = {LONG: f"{HEARD[LONG].lower()}   extra", SHORT: f"{HEARD[SHORT][:6].lower()}  {HEARD[SHORT][6:-1]}X",
         NOISE: ""}
# The same texts upper-cased with whitespace collapsed, written out by hand.
NORMALISED = {LONG: f"{HEARD[LONG]} EXTRA", SHORT: f"{HEARD[SHORT][:6]} {HEARD[SHORT][6:-1]}X"}


def corpus_rate(pairs, split=False) -> float:
    """Edits summed over (reference, hypothesis) pairs, per unit of the summed references."""
    units = [(ref.split(), hyp.split()) if split else (ref, hyp) for ref, hyp in pairs]
    return sum(levenshtein(ref, hyp) for ref, hyp in units) / max(sum(len(ref) for ref, _ in units), 1)


def cli(*args) -> tuple[int, str, str]:
    from speechport.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def write_set(folder: Path, texts: dict[str, str] | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in HEARD:
        shutil.copy(CTC / "audio" / name, folder / name)
    if texts is not None:
        with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "text"])
            writer.writerows(texts.items())
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The converted folder, and a copy whose output layer has the rows of W and H traded: it hears
    those two letters the other way round, and every other the same."""
    root = tmp_path_factory.mktemp("ctc-models")
    assert cli("convert", SOURCE, "--out", root / "intact", "--quiet")[0] == 0
    shutil.copytree(root / "intact", root / "swapped")
    weights = load_file(root / "swapped/model.safetensors")
    vocab = MANIFEST["models"][MODEL]["vocab"]
    first, second = vocab.index("W"), vocab.index("H")
    for name in ("lm_head.weight", "lm_head.bias"):
        weights[name][[first, second]] = weights[name][[second, first]].clone()
    save_file(weights, root / "swapped/model.safetensors", metadata={"format": "pt"})
    return {"intact": root / "intact", "swapped": root / "swapped"}


def alone(folder: Path, clip: Path) -> dict:
    code, out, err = cli("compare", SOURCE, folder, "--audio", clip, "--json")
    assert code in (0, 1), err
    (found,) = json.loads(out)["clips"]
    return found


@pytest.fixture(scope="module")
def runs(models, tmp_path_factory):
    """The set with texts through the intact model (JSON, then the table by resuming it), the set
    without any text through the swapped one, and each clip through `compare --audio` alone."""
    root = tmp_path_factory.mktemp("ctc-sets")
    found = {}
    texts = write_set(root / "texts", TEXTS)
    code, out, err = cli("compare", SOURCE, models["intact"], "--dataset", texts, "--report", root / "texts-report",
                         "--workers", "1", "--quiet", "--json")
    printed = cli("compare", SOURCE, models["intact"], "--dataset", texts, "--report", root / "texts-report",
                  "--resume", "--quiet")
    found["intact"] = {"code": code, "summary": json.loads(out), "err": err, "report": root / "texts-report",
                       "set": texts, "printed": printed,
                       "alone": {name: alone(models["intact"], texts / name) for name in HEARD}}
    bare = write_set(root / "bare", None)
    code, out, err = cli("compare", SOURCE, models["swapped"], "--dataset", bare, "--report", root / "bare-report",
                         "--workers", "1", "--quiet", "--json")
    found["swapped"] = {"code": code, "summary": json.loads(out), "err": err, "report": root / "bare-report",
                        "set": bare, "alone": {name: alone(models["swapped"], bare / name) for name in HEARD}}
    return found


# -- through the command line ----------------------------------------------------------------------------


def test_each_clips_transcripts_are_what_compare_hears_of_that_clip_alone(runs):
    for run in runs.values():
        lines = results(run["report"])
        assert set(lines) == set(HEARD)
        for name, line in lines.items():
            single = run["alone"][name]
            assert line["transcript_original"] == single["transcript_original"] == HEARD[name]
            assert line["transcript_converted"] == single["transcript_converted"]
            assert line["character_error_rate"] == pytest.approx(single["character_error_rate"])
    intact = results(runs["intact"]["report"])
    assert {name: line["text"] for name, line in intact.items()} == {LONG: TEXTS[LONG], SHORT: TEXTS[SHORT], NOISE: None}
    assert all(line["transcript_converted"] == HEARD[name] for name, line in intact.items())
    swapped = results(runs["swapped"]["report"])
    assert all(line["text"] is None for line in swapped.values())
    # W and H traded: the clips that hold either are heard differently, the noise clip (neither) alike.
    assert swapped[LONG]["transcript_converted"] == HEARD[LONG].translate(str.maketrans("WH", "HW"))
    assert swapped[NOISE]["transcript_converted"] == HEARD[NOISE] and "W" in HEARD[SHORT]


def test_the_sets_transcription_numbers_are_the_hand_computed_ones(runs):
    intact, swapped = runs["intact"], runs["swapped"]
    assert intact["code"] == 0, intact["err"]
    assert swapped["code"] == 1, swapped["err"]  # the traded rows fail the verdict on every clip
    summary = intact["summary"]
    assert json.loads((intact["report"] / "summary.json").read_text())["cer_original"] == summary["cer_original"]
    assert summary["dataset"]["text_column"] == "text"
    # The crafted texts: their edits, counted by construction, are what the programme counts.
    assert levenshtein(NORMALISED[LONG], HEARD[LONG]) == 6 and levenshtein(NORMALISED[SHORT], HEARD[SHORT]) == 2
    pairs = [(NORMALISED[name], HEARD[name]) for name in (LONG, SHORT)]
    assert summary["transcribed_clips"] == 3 and summary["text_clips"] == 2
    assert summary["transcripts_identical"] == 1.0 and summary["transcripts_differing"] == 0
    assert summary["cer_between_models"] == 0.0
    assert summary["cer_original"] == summary["cer_converted"] == pytest.approx(corpus_rate(pairs))
    assert summary["cer_original"] == pytest.approx(8 / (len(NORMALISED[LONG]) + len(NORMALISED[SHORT])))
    assert summary["wer_original"] == summary["wer_converted"] == pytest.approx(corpus_rate(pairs, split=True))
    assert summary["wer_original"] == pytest.approx((1 + 2) / (2 + 2))

    found = swapped["summary"]
    heard = {name: clip["transcript_converted"] for name, clip in swapped["alone"].items()}
    same = sum(heard[name] == HEARD[name] for name in HEARD)
    assert same == 1 and found["transcripts_identical"] == pytest.approx(same / 3)
    assert found["transcripts_differing"] == 2 and found["transcribed_clips"] == 3
    assert found["cer_between_models"] == pytest.approx(corpus_rate([(HEARD[n], heard[n]) for n in HEARD]))
    assert found["cer_between_models"] > 0.05
    # No clip has a text: those numbers are null, and said to be missing.
    assert found["text_clips"] == 0 and found["dataset"]["text_column"] is None
    assert all(found[name] is None for name in ("cer_original", "cer_converted", "wer_original", "wer_converted"))
    for run in (intact, swapped):
        written = json.loads((run["report"] / "summary.json").read_text())
        assert set(TRANSCRIPTION_FIELDS) <= set(written)
        assert {name: written[name] for name in TRANSCRIPTION_FIELDS} == \
               {name: run["summary"][name] for name in TRANSCRIPTION_FIELDS}


def test_the_numbers_are_printed_and_in_the_report_page(runs):
    intact, swapped = runs["intact"], runs["swapped"]
    code, out, err = intact["printed"]
    assert code == 0, err
    summary = intact["summary"]
    pct = lambda value: f"{value * 100:.2f} %"  # noqa: E731
    assert "transcripts       both models transcribe 3 of 3 clips identically; character error rate between them " \
           "0.00 %\n" in out
    assert (f"against the text  character error rate original {pct(summary['cer_original'])}, converted "
            f"{pct(summary['cer_converted'])}; word error rate original {pct(summary['wer_original'])}, converted "
            f"{pct(summary['wer_converted'])} (2 clips with a reference text)\n") in out
    page = (intact["report"] / "report.html").read_text()
    assert "<tr><th>transcripts identical</th><td class=num colspan=2>100.00 %</td>" in page
    assert (f"<tr><th>character error rate against the text</th><td class=num>{pct(summary['cer_original'])}</td>"
            f"<td class=num>{pct(summary['cer_converted'])}</td>") in page
    assert f"<tr><th>word error rate against the text</th><td class=num>{pct(summary['wer_original'])}" in page
    assert "transcribe differently" not in page
    page = (swapped["report"] / "report.html").read_text()
    assert "<h2>Clips the two models transcribe differently (2)</h2>" in page
    assert f"<td>{HEARD[LONG].replace(chr(39), '&#x27;')}</td>" in page  # the original's, escaped
    assert "no clip has a reference text" in page
    assert f"character error rate between the models</th><td class=num colspan=2>" \
           f"{pct(swapped['summary']['cer_between_models'])}</td>" in page


def test_a_resumed_run_reads_the_texts_the_set_gives_now(models, tmp_path):
    """A corrected reference text needs no model to run again; the old one must not be used."""
    folder = write_set(tmp_path / "set", TEXTS)
    run = ("compare", SOURCE, models["intact"], "--dataset", folder, "--report", tmp_path / "report", "--workers", "1",
           "--quiet", "--json")
    code, out, err = cli(*run)
    assert code == 0, err
    assert json.loads(out)["cer_original"] > 0.1
    write_set(folder, {LONG: HEARD[LONG], SHORT: TEXTS[SHORT]})  # the long clip's text now what it hears; noise: no row
    code, out, err = cli(*run, "--resume")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["run"]["resumed"] == 3 and summary["run"]["compared_now"] == 0
    assert summary["cer_original"] == pytest.approx(corpus_rate([(HEARD[LONG], HEARD[LONG]),
                                                                 (NORMALISED[SHORT], HEARD[SHORT])]))
    assert summary["cer_original"] == pytest.approx(2 / (len(HEARD[LONG]) + len(NORMALISED[SHORT])))
    assert {name: line["text"] for name, line in results(tmp_path / "report").items()} == \
           {LONG: HEARD[LONG], SHORT: TEXTS[SHORT], NOISE: None}


def test_a_text_column_that_is_not_there_is_refused_in_one_line_and_nothing_is_written(models, tmp_path):
    folder = write_set(tmp_path / "set", TEXTS)
    code, out, err = cli("compare", SOURCE, models["intact"], "--dataset", folder, "--report", tmp_path / "report",
                         "--text-column", "sentence")
    assert code == 2 and out == ""
    assert err == (f"speechport: error: {folder}: no 'sentence' column to read reference texts "
                   "from; --text-column NAME\n")
    assert not (tmp_path / "report").exists()
    code, _, err = cli("compare", SOURCE, models["intact"], "--audio", folder / LONG, "--text-column", "text")
    assert code == 2 and "argument --text-column: only with --dataset" in err


def test_another_text_column_is_read_when_named(models, tmp_path):
    folder = write_set(tmp_path / "set", None)
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": name, "sentence": text}) + "\n"
                                                   for name, text in TEXTS.items() if text))
    code, out, err = cli("compare", SOURCE, models["intact"], "--dataset", folder, "--report", tmp_path / "report",
                         "--text-column", "sentence", "--workers", "1", "--quiet", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["dataset"]["text_column"] == "sentence" and summary["text_clips"] == 2
    pairs = [(NORMALISED[name], HEARD[name]) for name in (LONG, SHORT)]
    assert summary["cer_converted"] == pytest.approx(corpus_rate(pairs))


# -- the numbers, on crafted records ---------------------------------------------------------------------


def record(original, converted, text=None, verdict="pass", **more) -> dict:
    line = {"key": f"clip{random.random()}", "verdict": verdict, "max_abs_diff": 1e-6, "text": text, **more}
    if original is not None:
        line.update(transcript_original=original, transcript_converted=converted)
    return line


def test_the_aggregates_of_crafted_records():
    records = [
        record("THE CAT", "THE CAT", "the  cat"),  # identical, and right once normalised
        record("THE CAT", "THE CUT", "The hat"),  # one character apart; each one from the text
        record("", "A"),  # the original hears nothing: one character inserted; no text
        record("", ""),  # nothing heard by either: identical, no characters
        record(None, None, "ignored"),  # no transcripts (not a record of a transcribing model)
    ]
    found = transcription_aggregates(records)
    assert found["transcribed_clips"] == 4 and found["transcripts_differing"] == 2
    assert found["transcripts_identical"] == 0.5
    assert found["cer_between_models"] == pytest.approx((0 + 1 + 1 + 0) / (7 + 7 + 0 + 0))
    assert found["text_clips"] == 2
    assert found["cer_original"] == pytest.approx((0 + 1) / (7 + 7))  # THE HAT -> THE CAT
    assert found["cer_converted"] == pytest.approx((0 + 2) / 14)  # THE HAT -> THE CUT
    assert found["wer_original"] == pytest.approx((0 + 1) / 4) and found["wer_converted"] == pytest.approx(1 / 4)
    assert list(found) == list(TRANSCRIPTION_FIELDS)

    without_text = transcription_aggregates(records[2:])
    assert without_text["text_clips"] == 0 and without_text["cer_between_models"] == 1.0  # 1 edit over max(0, 1)
    assert all(without_text[name] is None for name in ("cer_original", "cer_converted", "wer_original",
                                                       "wer_converted"))
    assert transcription_aggregates([record(None, None, "a text")]) == {}
    # An empty transcript against a text: every character and word of the text is an edit.
    empty = transcription_aggregates([record("", "", "two words")])
    assert empty["cer_original"] == 1.0 and empty["wer_converted"] == 1.0
    assert normalise("  it's\tA  test\n") == "IT'S A TEST"
    assert transcription_rows({}) == []
    assert transcription_rows(without_text)[1] == ("against the text", "no clip has a reference text (a 'text' "
                                                   "column gives one, or a .wrd file beside a fairseq manifest)")


def test_edits_are_the_textbook_programme_over_characters_and_words():
    generator = random.Random(7)
    for _ in range(1000):  # a small alphabet: many matches, runs and ties, ends empty now and then
        ref = "".join(generator.choice("AB C'") for _ in range(generator.randint(0, 40)))
        hyp = "".join(generator.choice("AB C'") for _ in range(generator.randint(0, 40)))
        assert edits(ref, hyp) == levenshtein(ref, hyp), (ref, hyp)
    for length in (63, 64, 65, 200):  # past one machine word of bits (rapidfuzz's bit-parallel blocks)
        ref = "".join(generator.choice("ABCD") for _ in range(length))
        hyp = "".join(generator.choice("ABCD") for _ in range(length + generator.randint(-5, 5)))
        assert edits(ref, hyp) == levenshtein(ref, hyp)
    vocabulary = ["A", "CAT", "SAT", "ON", "THE", "MAT", "IT'S"]
    for _ in range(300):
        ref = [generator.choice(vocabulary) for _ in range(generator.randint(0, 9))]
        hyp = [generator.choice(vocabulary[:4]) for _ in range(generator.randint(0, 9))]
        assert word_edits(" ".join(ref), " ".join(hyp)) == levenshtein(ref, hyp), (ref, hyp)
    assert word_edits("THE CAT SAT", "THE MAT") == 2 and word_edits("A B C D", "") == 4
    assert edits("KITTEN", "SITTING") == 3 and edits("", "") == 0


def test_the_recipe_gives_each_models_transcript_and_sums_the_set_up():
    def side(heard):
        return SideOutput(torch.zeros(3, 2), extras={TRANSCRIPT: heard} if heard is not None else {})

    recipe = CtcRecipe.__new__(CtcRecipe)  # clip_answers reads only the two outputs
    assert recipe.clip_answers(side("AB C"), side("AB")) == {"transcript_original": "AB C",
                                                               "transcript_converted": "AB"}
    assert recipe.clip_answers(side(""), side("")) == {"transcript_original": "", "transcript_converted": ""}
    assert recipe.clip_answers(side(None), side("AB")) == {}
    records = [record("AB", "AB", "ab"), record("AB", "AC"),
               record(None, None, verdict="unreadable", error="the clip is digital silence")]
    summary = summarize(records, clips_in_set=3, tolerance=5e-3, recipe_class=CtcRecipe)
    assert summary["transcribed_clips"] == 2 and summary["cer_between_models"] == pytest.approx(1 / 4)
    assert summary["cer_original"] == 0.0 and summary["cer_converted"] == 0.0 and summary["notes"] == []
    # The keys are the recipe's own: none of them is a key every summary has.
    shared = summarize(records, clips_in_set=3, tolerance=5e-3)
    assert not set(TRANSCRIPTION_FIELDS) & (set(shared) | set(SUMMARY_FIELDS))
    assert set(summary) - set(shared) == set(TRANSCRIPTION_FIELDS)


def test_a_set_with_texts_for_a_model_that_does_not_transcribe_says_they_were_not_read():
    records = [{"key": "a.wav", "verdict": "pass", "max_abs_diff": 1e-6, "text": "hello"}]
    summary = summarize(records, clips_in_set=1, tolerance=5e-3)
    assert "transcribed_clips" not in summary
    assert summary["notes"] == ["the set's reference texts were not read: the model does not transcribe (they are "
                                "for speech recognition models)"]


def test_the_report_page_escapes_transcripts_and_texts():
    records = [record("<B>", "<script>", "<img src=x>", key="a&b.wav")]
    summary = summarize(records, clips_in_set=1, tolerance=5e-3, recipe_class=CtcRecipe)
    page = render_report({**summary, "complete": True, "done": 1}, records)
    assert "<script>" not in page and "<img" not in page and "<B>" not in page
    assert "<td>&lt;B&gt;</td><td>&lt;script&gt;</td><td>&lt;img src=x&gt;</td>" in page
    assert "<code>a&amp;b.wav</code>" in page


# -- in the window -------------------------------------------------------------------------------------


def test_the_windows_test_set_view_says_how_alike_both_models_transcribe(make_window, qtbot, models, tmp_path):
    pytest.importorskip("PySide6")
    from PySide6.QtWidgets import QLabel

    from speechport.gui.audition.testset_view import transcription_words

    from gui_support import open_audition

    folder = write_set(tmp_path / "set", TEXTS)
    window = make_window(source=SOURCE)
    page = open_audition(qtbot, window, models["swapped"])
    page.set_mode(True)
    view = page.testset
    assert view.findChild(QLabel, "testsetSummaryTranscripts").text() == "—"
    assert not view.findChild(QLabel, "testsetSummaryTranscripts").isVisibleTo(view)  # nothing to say yet
    view.choose_dataset(folder)
    view.workers_spin.setValue(1)
    assert view.run_button.isEnabled(), view.reason.text()
    view.run_button.click()
    qtbot.waitUntil(lambda: not view.busy(), timeout=600_000)
    summary = json.loads((tmp_path / "set-report/summary.json").read_text())
    assert summary["transcripts_differing"] == 2 and summary["text_clips"] == 2
    shown = view.findChild(QLabel, "testsetSummaryTranscripts").text()
    assert shown == transcription_words(summary)
    assert view.findChild(QLabel, "testsetSummaryTranscripts").isVisibleTo(view)
    assert not view.findChild(QLabel, "testsetSummaryAgreement").isVisibleTo(view)  # no class per clip
    pct = lambda value: f"{value * 100:.2f} %"  # noqa: E731
    assert shown.startswith(f"Both models transcribe 1 of 3 clips identically; character error rate between them "
                            f"{pct(summary['cer_between_models'])}. Against the text: character error rate original "
                            f"{pct(summary['cer_original'])}, converted {pct(summary['cer_converted'])}; ")
    assert summary["cer_original"] != summary["cer_converted"]  # the swapped letters are heard wrong
