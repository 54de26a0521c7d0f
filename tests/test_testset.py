"""`speechport compare --dataset`: proof on a test set, with local worker processes.

The sets are built here from the fixtures' clips. What each clip's line says is checked against
`compare --audio` run on that clip alone; what the set says as a whole is computed here by hand,
from those single runs or from the genuine S3PRL outputs the fixtures hold.
"""

import functools
import html
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from safetensors.torch import load_file, save_file

from speechport.core.conversion import open_sides
from speechport.core.proof.datasets import read_dataset
from speechport.core.proof.testset import RESULTS_NAME, run_testset
from speechport.core.proof.testset_clip import ClipOptions, OpenModels
from speechport.core.proof.testset_pool import MAX_ATTEMPTS
from speechport.core.proof.testset_summary import SUMMARY_FIELDS, WORST_SHOWN

from conftest import CONFORMER_SHAW, S3PRL
from support import checkpoint_path
from testset_support import (
    UNREADABLE,
    alive,
    assert_same,
    build_clip_set,
    child_pids,
    eer_by_bisection,
    kill_process_on,
    nearest_rank,
    results,
    without_timing,
)

SOURCE = checkpoint_path("cs_s64")
SPEECH = CONFORMER_SHAW / "audio/s_speech_16k_mono.wav"
BASE = S3PRL / "base_model"
HEADS = {"sid": S3PRL / "sid/dev-best.ckpt", "asv": S3PRL / "asv/states-2.ckpt", "sd": S3PRL / "sd/best-states-dev.ckpt"}
S3PRL_CLIPS = ("fox_16k", "go_short_16k", "commands_44k_stereo")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("converted")
    folders = {"cs_s64": root / "cs_s64"}
    assert main(["convert", str(SOURCE), "--out", str(folders["cs_s64"]), "--quiet"]) == 0
    for head, checkpoint in HEADS.items():
        folders[head] = root / head
        assert main(["convert", str(checkpoint), "--base-model", str(BASE), "--out", str(folders[head]), "--quiet"]) == 0
    return folders


def run_json(run_cli, *args):
    code, out, err = run_cli("compare", *args, "--json")
    return code, (json.loads(out) if out.strip() else None), err


@pytest.fixture(scope="module")
def conformer_run(converted, tmp_path_factory):
    """One test set through two workers, and each of its clips through `compare --audio` alone."""
    from speechport.cli import main

    root = tmp_path_factory.mktemp("conformer-set")
    clips = build_clip_set(root / "set")
    report = root / "report"
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["compare", str(SOURCE), str(converted["cs_s64"]), "--dataset", str(clips), "--report",
                     str(report), "--workers", "2", "--quiet"])
    alone = {}
    for record in results(report).values():
        args = ["compare", str(SOURCE), str(converted["cs_s64"]), "--audio", record["path"], "--json"]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            single = main(args)
        alone[record["key"]] = (single, json.loads(out.getvalue()) if single in (0, 1) else None, err.getvalue())
    return {"code": code, "report": report, "set": clips, "alone": alone, "printed": printed.getvalue()}


def test_each_clips_line_is_what_compare_says_of_that_clip_alone(conformer_run):
    lines = results(conformer_run["report"])
    assert set(lines) == {"made/stereo_22k.wav", "noise_8k.wav", "s3prl/commands_44k_stereo.wav",
                          "s3prl/fox_16k.wav", "s3prl/go_short_16k.wav", "short_0p3s.flac", "speech.wav",
                          *UNREADABLE}
    for key, line in lines.items():
        code, alone, err = conformer_run["alone"][key]
        assert line["key"] == key and line["path"] == str(conformer_run["set"] / key)
        assert line["size"] == os.path.getsize(line["path"])
        if key in UNREADABLE:
            assert code == 2 and line["verdict"] == "unreadable" and UNREADABLE[key] in line["error"]
            assert err == f"speechport: error: {line['error']}\n"  # the very sentence compare says
            assert line["max_abs_diff"] is None and line["audio"] == line["path"]
            continue
        assert code == 0 and line["error"] is None
        (clip,) = alone["clips"]
        assert_same(without_timing({k: line[k] for k in clip}), without_timing(clip), key)
        assert line["seconds_original"] > 0 and line["seconds_converted"] > 0
        assert line["models"] == lines["speech.wav"]["models"]
    import hashlib

    speech = lines["speech.wav"]
    assert speech["sha256"] == hashlib.sha256((conformer_run["set"] / "speech.wav").read_bytes()).hexdigest()


def test_the_summary_is_what_the_clips_add_up_to(conformer_run):
    assert conformer_run["code"] == 0  # every readable clip passes; the unreadable ones do not fail the set
    summary = json.loads((conformer_run["report"] / "summary.json").read_text())
    assert set(SUMMARY_FIELDS) <= set(summary)
    alone = {key: found[1]["clips"][0] for key, found in conformer_run["alone"].items() if found[1]}
    diffs = {key: clip["max_abs_diff"] for key, clip in alone.items()}
    assert (summary["clips"], summary["passed"], summary["failed"], summary["unreadable"], summary["errors"]) == \
           (10, 7, 0, 3, 0)
    assert summary["verdict"] == "pass" and summary["complete"] is True
    expected = {"median": nearest_rank(diffs.values(), 50), "p95": nearest_rank(diffs.values(), 95),
                "p99": nearest_rank(diffs.values(), 99), "worst": max(diffs.values())}
    assert_same(summary["max_abs_diff"], expected)
    assert [c["key"] for c in summary["worst_clips"]] == sorted(diffs, key=lambda k: -diffs[k])[:WORST_SHOWN]
    for name in ("top1_agreement", "accuracy_original", "accuracy_converted", "eer_original", "eer_converted"):
        assert summary[name] is None  # an encoder gives no answer per clip
    assert summary["run"]["workers"] == 2 and summary["run"]["compared_now"] == 10
    assert len(summary["run"]["worker_peak_memory_bytes"]) == 2


def test_the_printed_summary_says_once_why_each_clip_was_not_compared(conformer_run):
    lines = results(conformer_run["report"])
    printed = conformer_run["printed"].splitlines()
    for key in UNREADABLE:
        reason = lines[key]["error"].removeprefix(f"{lines[key]['path']}: ")
        assert reason != lines[key]["error"]  # the reason as compare says it names the file first
        assert f"not compared: {key}: {reason}" in printed  # the key names it once
    assert printed[-1] == "verdict: pass (tolerance 0.005 on max |diff|)"


def test_the_report_is_one_self_contained_page(conformer_run):
    page = (conformer_run["report"] / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "tolerance 0.005" in page
    assert "<script" not in page and "src=" not in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "pass: every clip compared agrees within the tolerance" in page
    lines = results(conformer_run["report"])
    for key in UNREADABLE:
        reason = html.escape(lines[key]["error"].removeprefix(f"{lines[key]['path']}: "))
        assert f"<code>{key}</code></td><td>{reason}</td>" in page  # listed with why, the path not said twice
    assert "2 workers (processes); 10 clips compared in this run, 0 kept from an earlier one" in page


def test_a_damaged_conversion_fails_the_set_and_names_the_layer(run_cli, converted, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(converted["cs_s64"], damaged)
    weights = load_file(damaged / "model.safetensors")
    weights["encoder.layers.1.ffn2_layer_norm.weight"] *= 1.03
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    clips = tmp_path / "set"
    clips.mkdir()
    shutil.copy(S3PRL / "audio/fox_16k.wav", clips / "fox.wav")
    shutil.copy(SPEECH, clips / "speech.wav")
    code, summary, _ = run_json(run_cli, SOURCE, damaged, "--dataset", clips, "--report", tmp_path / "r", "--workers", "1")
    assert code == 1 and summary["verdict"] == "fail" and (summary["passed"], summary["failed"]) == (0, 2)
    assert {c["first_divergent_layer"] for c in summary["worst_clips"]} == {"encoder.layers.1"}
    assert summary["max_abs_diff"]["worst"] > 5e-3
    assert "fail: 2 clips beyond the tolerance" in (tmp_path / "r/report.html").read_text()


def test_parts_of_clips_from_the_metadata_are_compared_as_compare_start_and_duration_would(run_cli, converted,
                                                                                             tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    shutil.copy(S3PRL / "audio/fox_16k.wav", clips / "fox.wav")
    (clips / "metadata.csv").write_text("file_name,start,duration\nfox.wav,0.5,1.25\nfox.wav,2,0.75\n")
    code, summary, _ = run_json(run_cli, SOURCE, converted["cs_s64"], "--dataset", clips, "--report", tmp_path / "r",
                                "--workers", "1")
    assert code == 0 and summary["passed"] == 2
    lines = results(tmp_path / "r")
    for key, start, duration in (("fox.wav@0.5+1.25", "0.5", "1.25"), ("fox.wav@2+0.75", "2", "0.75")):
        code, alone, _ = run_json(run_cli, SOURCE, converted["cs_s64"], "--audio", clips / "fox.wav", "--start", start,
                                  "--duration", duration)
        assert code == 0
        assert lines[key]["segment"] == [float(start), float(start) + float(duration)]
        assert_same(without_timing({k: lines[key][k] for k in alone["clips"][0]}), without_timing(alone["clips"][0]))


def test_speaker_identification_top1_agreement_and_accuracy_against_labels(run_cli, converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    for name in S3PRL_CLIPS:
        shutil.copy(S3PRL / f"audio/{name}.wav", clips / f"{name}.wav")
    shutil.copy(SPEECH, clips / "speech.wav")
    labels = {"fox_16k.wav": "LABEL_3", "go_short_16k.wav": "2", "commands_44k_stereo.wav": "3"}  # names or indices
    (clips / "metadata.csv").write_text("file_name,label\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))
    code, summary, _ = run_json(run_cli, HEADS["sid"], converted["sid"], "--base-model", BASE, "--dataset", clips,
                                "--report", tmp_path / "r", "--workers", "2", "--channels", "mean")
    assert code == 0 and summary["passed"] == 4
    # By hand, from what S3PRL itself and transformers computed on these clips (the fixtures' logits):
    original = {f"{c}.wav": int(np.load(S3PRL / f"sid/reference/{c}.s3prl_logits.npy").argmax()) for c in S3PRL_CLIPS}
    theirs = {f"{c}.wav": int(np.load(S3PRL / f"sid/expected_hf/{c}.hf_logits.npy").argmax()) for c in S3PRL_CLIPS}
    lines = results(tmp_path / "r")
    for key in original:
        assert lines[key]["top1"]["original_index"] == original[key]
        assert lines[key]["top1"]["converted_index"] == theirs[key]
    # The fourth clip has no fixture output: compare alone says what the two models chose there.
    code, alone, _ = run_json(run_cli, HEADS["sid"], converted["sid"], "--base-model", BASE, "--audio",
                              clips / "speech.wav", "--channels", "mean")
    details = alone["clips"][0]["details"]
    assert lines["speech.wav"]["top1"]["original"] == details["top5"][0]["label"]
    agree = sum(original[k] == theirs[k] for k in original) + details["top1_agrees"]
    assert summary["top1_agreement"] == pytest.approx(agree / 4)

    def right(index, label):
        return f"LABEL_{index}" == label or (label.isdigit() and int(label) == index)

    assert summary["labelled_clips"] == 3
    assert summary["accuracy_original"] == pytest.approx(sum(right(original[k], v) for k, v in labels.items()) / 3)
    assert summary["accuracy_converted"] == pytest.approx(sum(right(theirs[k], v) for k, v in labels.items()) / 3)
    assert 0 < summary["accuracy_original"] < 1  # the labels were chosen so that one is wrong
    assert summary["eer_original"] is None and summary["speaker_frame_disagreement"] is None


def test_speaker_verification_eer_on_a_trial_list(run_cli, converted, tmp_path):
    clips = tmp_path / "voxceleb"
    clips.mkdir()
    for name in S3PRL_CLIPS:
        shutil.copy(S3PRL / f"audio/{name}.wav", clips / f"{name}.wav")
    pairs = [(1, "fox_16k", "fox_16k"), (0, "fox_16k", "go_short_16k"), (1, "go_short_16k", "go_short_16k"),
             (0, "go_short_16k", "commands_44k_stereo"), (1, "fox_16k", "commands_44k_stereo"),
             (0, "commands_44k_stereo", "fox_16k"), (1, "commands_44k_stereo", "commands_44k_stereo"),
             (0, "go_short_16k", "fox_16k")]
    trials = clips / "veri_test.txt"
    trials.write_text("".join(f"{label} {a}.wav {b}.wav\n" for label, a, b in pairs))
    code, summary, _ = run_json(run_cli, HEADS["asv"], converted["asv"], "--base-model", BASE, "--dataset", trials,
                                "--report", tmp_path / "r", "--workers", "2", "--channels", "mean")
    assert code == 0 and summary["passed"] == 3 and (summary["trials"], summary["trials_scored"]) == (8, 8)

    # By hand: S3PRL's own verification embeddings (l2-normalised ReLU(linear1)), and the same transform of
    # the embeddings transformers gives (the fixtures' outputs of both, on these clips).
    def unit(vector):
        return vector / np.linalg.norm(vector)

    s3prl = {c: unit(np.load(S3PRL / f"asv/reference/{c}.s3prl_embedding.npy")[0].astype(float)) for c in S3PRL_CLIPS}
    hf = {c: unit(np.maximum(np.load(S3PRL / f"asv/expected_hf/{c}.hf_embeddings.npy")[0].astype(float), 0))
          for c in S3PRL_CLIPS}
    targets = [bool(label) for label, _, _ in pairs]
    ours = [float(s3prl[a] @ s3prl[b]) for _, a, b in pairs]
    theirs = [float(hf[a] @ hf[b]) for _, a, b in pairs]
    assert summary["eer_original"] == pytest.approx(eer_by_bisection(ours, targets), abs=1e-9)
    assert summary["eer_converted"] == pytest.approx(eer_by_bisection(theirs, targets), abs=1e-9)
    assert summary["score_max_abs_diff"] == pytest.approx(max(abs(a - b) for a, b in zip(ours, theirs)), abs=1e-5)
    assert 0 < summary["eer_original"] < 0.5  # the trials were chosen so that the scores do not separate them


def test_diarization_frame_disagreement_per_clip(run_cli, converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    for name in S3PRL_CLIPS:
        shutil.copy(S3PRL / f"audio/{name}.wav", clips / f"{name}.wav")
    # A conversion whose speaker 1 is decided with the opposite bias: its logits are S3PRL's minus 2b.
    damaged = tmp_path / "sd-damaged"
    shutil.copytree(converted["sd"], damaged)
    weights = load_file(damaged / "model.safetensors")
    bias = float(weights["classifier.bias"][1])
    weights["classifier.bias"][1] = -bias
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    expected = {}
    for clip in S3PRL_CLIPS:
        logits = np.load(S3PRL / f"sd/reference/{clip}.s3prl_frame_logits.npy")[0].astype(float)
        moved = logits.copy()
        moved[:, 1] -= 2 * bias
        expected[f"{clip}.wav"] = float(((logits > 0) != (moved > 0)).any(axis=1).mean())
    for folder, code_expected, shares in ((converted["sd"], 0, dict.fromkeys(expected, 0.0)), (damaged, 1, expected)):
        report = tmp_path / f"r-{folder.name}"
        code, summary, _ = run_json(run_cli, HEADS["sd"], folder, "--base-model", BASE, "--dataset", clips,
                                    "--report", report, "--workers", "1", "--channels", "mean")
        assert code == code_expected
        lines = results(report)
        for key, share in shares.items():
            assert lines[key]["speaker_frame_disagreement"] == pytest.approx(share, abs=1e-9)
        found = summary["speaker_frame_disagreement"]
        assert found["mean"] == pytest.approx(sum(shares.values()) / 3, abs=1e-9)
        assert found["worst"] == pytest.approx(max(shares.values()), abs=1e-9)
        assert found["clips_with_any"] == sum(share > 0 for share in shares.values())
    assert 0 < max(expected.values()) < 1  # some frames, not all: the decisions really were counted


# -- resuming, stopping, a worker that dies -------------------------------------------------------------


def many_parts(tmp_path, count):
    """A manifest of `count` parts of the speech clip: enough work to stop a run in the middle of."""
    clips = tmp_path / "parts"
    clips.mkdir()
    shutil.copy(SPEECH, clips / "speech.wav")
    rows = "".join(f"speech.wav,{0.01 * i:.2f},0.5\n" for i in range(count))
    (clips / "parts.csv").write_text("file_name,start,duration\n" + rows)
    return clips / "parts.csv"


def cli_process(*args):
    """`speechport compare ARGS` in a process group of its own, as a terminal runs it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "speechport", "compare", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, limit_s=600):
    """Wait until `condition()` holds; the limit only turns a hang into a failure."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def lines_in(path):
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_run_killed_in_the_middle_is_resumed_without_comparing_again_what_it_finished(converted, tmp_path):
    manifest = many_parts(tmp_path, 40)
    report = tmp_path / "report"
    process = cli_process(SOURCE, converted["cs_s64"], "--dataset", manifest, "--report", report, "--workers", "1",
                          "--quiet")
    wait_for(lambda: lines_in(report / RESULTS_NAME) >= 5 or process.poll() is not None)
    workers = child_pids(process.pid)
    process.send_signal(signal.SIGSTOP)  # held still while it is looked at, then killed outright
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    done_before = (report / RESULTS_NAME).read_bytes()
    process.kill()
    process.wait()
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    assert process.returncode == -signal.SIGKILL
    complete_lines = done_before[: done_before.rfind(b"\n") + 1]
    assert 5 <= complete_lines.count(b"\n") < 40, "the run was not stopped in the middle"
    wait_for(lambda: not any(alive(pid) for pid in workers))  # orphaned workers end by themselves
    assert not (report / "summary.json").exists()

    rerun = cli_process(SOURCE, converted["cs_s64"], "--dataset", manifest, "--report", report, "--workers", "1",
                        "--resume", "--json")
    out, err = rerun.communicate()
    assert rerun.returncode == 0, err
    summary = json.loads(out)
    kept = complete_lines.count(b"\n")
    assert summary["run"]["resumed"] == kept and summary["run"]["compared_now"] == 40 - kept
    assert summary["passed"] == 40 and summary["complete"] is True
    after = (report / RESULTS_NAME).read_bytes()
    assert after.startswith(complete_lines)  # what was done is kept as it was, not compared again
    assert len(results(report)) == 40


def test_ctrl_c_stops_the_run_keeps_what_is_done_and_says_so(converted, tmp_path):
    manifest = many_parts(tmp_path, 40)
    report = tmp_path / "report"
    process = cli_process(SOURCE, converted["cs_s64"], "--dataset", manifest, "--report", report, "--workers", "2")
    wait_for(lambda: lines_in(report / RESULTS_NAME) >= 3 or process.poll() is not None)
    workers = child_pids(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl+C in a terminal: to every process of the group
    out, err = process.communicate()
    assert process.returncode == 130 and out == ""
    summary = json.loads((report / "summary.json").read_text())
    done = summary["done"]
    assert 3 <= done < 40 and summary["complete"] is False and summary["verdict"] is None
    assert err.strip().endswith(f"interrupted by SIGINT; nothing was left half-written; {done} of 40 clips are kept "
                                f"in {report / RESULTS_NAME}; resume to compare the rest (--resume)")
    assert len(results(report)) == done
    wait_for(lambda: not any(alive(pid) for pid in workers))  # stopped with the run, none left behind
    assert "no verdict: the run was stopped before every clip was compared" in (report / "report.html").read_text()


def test_resume_compares_again_the_clips_whose_file_or_models_changed(run_cli, converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    for name in S3PRL_CLIPS:
        shutil.copy(S3PRL / f"audio/{name}.wav", clips / f"{name}.wav")
    report = tmp_path / "r"
    args = [SOURCE, converted["cs_s64"], "--dataset", clips, "--report", report, "--workers", "1"]
    assert run_json(run_cli, *args)[0] == 0
    first = results(report)
    # A half-written line, as a killed run may leave; one clip edited in place, at the same size.
    with open(report / RESULTS_NAME, "ab") as handle:
        handle.write(b'{"key": "fox_16k.wav", "verdict": "pa')
    data, rate = soundfile.read(clips / "go_short_16k.wav", dtype="int16")
    data[100] = data[100] + 1 if data[100] < 32767 else data[100] - 1
    soundfile.write(clips / "go_short_16k.wav", data, rate, subtype="PCM_16")
    assert os.path.getsize(clips / "go_short_16k.wav") == first["go_short_16k.wav"]["size"]
    code, summary, _ = run_json(run_cli, *args, "--resume")
    assert code == 0 and summary["run"]["resumed"] == 2 and summary["run"]["compared_now"] == 1
    assert "1 clip was compared again: its file changed since" in summary["notes"]
    assert "1 line of results.jsonl that a stopped run left unfinished were dropped" in summary["notes"]
    second = results(report)
    assert second["fox_16k.wav"] == first["fox_16k.wav"]
    assert second["go_short_16k.wav"]["sha256"] != first["go_short_16k.wav"]["sha256"]
    # Another tolerance is another comparison: every clip again.
    code, summary, _ = run_json(run_cli, *args, "--resume", "--tolerance", "0.001")
    assert code == 0 and summary["run"]["resumed"] == 0 and summary["run"]["compared_now"] == 3
    assert "3 clips were compared again: the models or the options changed since" in summary["notes"]


def test_a_worker_that_dies_has_its_clip_given_to_another(converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    for name in S3PRL_CLIPS:
        shutil.copy(S3PRL / f"audio/{name}.wav", clips / f"{name}.wav")
    dataset = read_dataset(clips)
    opener = functools.partial(kill_process_on, "go_short_16k.wav", tmp_path / "killed once", open_sides)
    models = OpenModels(opener, str(SOURCE), str(converted["cs_s64"]))
    outcome = run_testset(models, dataset, tmp_path / "r", options=ClipOptions(), workers=1)
    assert (tmp_path / "killed once").exists()
    assert outcome.summary["passed"] == 3 and outcome.summary["run"]["workers"] == 2  # one more was started
    assert len(results(tmp_path / "r")) == 3
    # A clip that kills every worker it is given to is recorded, and the run goes on.
    opener = functools.partial(kill_process_on, "go_short_16k.wav", None, open_sides)
    outcome = run_testset(OpenModels(opener, str(SOURCE), str(converted["cs_s64"])), dataset, tmp_path / "r2",
                          options=ClipOptions(), workers=1)
    lines = results(tmp_path / "r2")
    assert outcome.summary["passed"] == 2 and outcome.summary["unreadable"] == 1
    assert lines["go_short_16k.wav"]["error"] == (f"{clips / 'go_short_16k.wav'}: the worker comparing it died "
                                                  f"{MAX_ATTEMPTS} times (killed by SIGKILL), so it was not compared")


# -- the report folder and the command line -------------------------------------------------------------


def test_the_report_folder_is_refused_before_anything_runs(run_cli, converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    shutil.copy(S3PRL / "audio/fox_16k.wav", clips / "fox.wav")
    base = [SOURCE, converted["cs_s64"], "--dataset", clips]
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / RESULTS_NAME).write_text("")
    other = tmp_path / "documents"
    other.mkdir()
    (other / "letter.txt").write_text("keep me")
    for report, message in (
        (earlier, f"{earlier}: holds the results of an earlier run; continue it, or choose another report folder; "
                  "to continue it: --resume"),
        (other, f"{other}: the report folder is not empty and holds no test-set results"),
        (converted["cs_s64"] / "testset", "it is inside the converted model's folder"),
    ):
        before = sorted(os.listdir(report)) if report.exists() else None
        code, out, err = run_cli("compare", *base, "--report", report)
        assert code == 2 and out == "" and message in err and err.count("\n") == 1
        assert (sorted(os.listdir(report)) if report.exists() else None) == before


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(run_cli, converted, tmp_path):
    import fcntl

    clips = tmp_path / "set"
    clips.mkdir()
    shutil.copy(S3PRL / "audio/fox_16k.wav", clips / "fox.wav")
    report = tmp_path / "r"
    report.mkdir()
    with open(report / RESULTS_NAME, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = run_cli("compare", SOURCE, converted["cs_s64"], "--dataset", clips, "--report", report, "--resume")
    assert code == 2 and "another run is writing its results there" in err
    assert (report / RESULTS_NAME).read_text() == ""


@pytest.mark.parametrize("args, message", [
    (["--audio", "x.wav", "--dataset", "set"], "argument --dataset: not allowed with argument --audio"),
    ([], "one of the arguments --audio --dataset is required"),
    (["--dataset", "set", "--save-outputs", "out"], "argument --save-outputs: not allowed with argument --dataset"),
    (["--audio", "x.wav", "--workers", "2"], "argument --workers: only with --dataset"),
    (["--audio", "x.wav", "--resume"], "argument --resume: only with --dataset"),
    (["--dataset", "set", "--workers", "0"], "argument --workers: '0' must be a whole number above 0"),
])
def test_the_test_set_flags_are_checked_before_anything_is_read(run_cli, args, message):
    code, out, err = run_cli("compare", SOURCE, "converted", *args)
    assert code == 2 and out == "" and message in err


def test_a_set_where_no_clip_can_be_compared_is_bad_input(run_cli, converted, tmp_path):
    clips = tmp_path / "set"
    (clips / "bad").mkdir(parents=True)
    soundfile.write(clips / "bad/silent.wav", np.zeros(16000, dtype="float32"), 16000)
    (clips / "bad/corrupt.wav").write_bytes(b"nothing audible")
    code, out, err = run_cli("compare", SOURCE, converted["cs_s64"], "--dataset", clips, "--report", tmp_path / "r",
                             "--workers", "1", "--json")
    assert code == 2
    assert json.loads(out)["error"]["message"] == (f"{clips}: no clip of the test set could be compared; why, for each "
                                                   f"one, is in {tmp_path / 'r' / RESULTS_NAME}")
    assert len(results(tmp_path / "r")) == 2


def test_a_clip_named_like_markup_is_shown_as_its_name(run_cli, converted, tmp_path):
    clips = tmp_path / "set"
    clips.mkdir()
    shutil.copy(S3PRL / "audio/fox_16k.wav", clips / "<script>alert(1)<script>.wav")
    code, _, _ = run_json(run_cli, SOURCE, converted["cs_s64"], "--dataset", clips, "--report", tmp_path / "r",
                          "--workers", "1")
    page = (tmp_path / "r/report.html").read_text()
    assert code == 0 and "<script" not in page and "&lt;script&gt;alert(1)&lt;script&gt;.wav" in page
