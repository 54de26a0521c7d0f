"""Every comparison made against a converted folder is recorded in its report and model card, and a
folder whose weights changed since never claims a pass: built here, the hostile cases included (a
read-only folder, a folder not converted by Speechport, a report that is a FIFO, a link or huge, a
recorder killed mid-write, two recording at once)."""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap

import pytest

from speechport.core.proof import record as proof_record
from speechport.core.proof.model_card import VERIFICATION_HEADING, WEIGHTS_CHANGED
from speechport.core.proof.record import (
    CARD_NAME,
    MAX_VERIFICATIONS,
    NOT_SPEECHPORTS,
    folder_proof,
    record_verification,
)
from speechport.core.proof.report import MAX_REPORT_BYTES, REPORT_NAME, load_report, read_at_most, read_report

from conftest import CONFORMER_SHAW
from support import checkpoint_path, sha256

SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
NOISE = CONFORMER_SHAW / "audio" / "s_noise_8k_mono.wav"
SOURCE = checkpoint_path("cs_s64")
EDITED_TENSOR = "encoder.layers.1.ffn2_layer_norm.weight"


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """cs_s64 converted with `--verify` on the speech clip."""
    from speechport.cli import main

    folder = tmp_path_factory.mktemp("record") / "cs_s64"
    assert main(["convert", str(SOURCE), "--out", str(folder), "--verify", str(SPEECH), "--quiet"]) == 0
    return folder


@pytest.fixture
def folder(verified, tmp_path):
    """A copy of the verified folder, for one test to change."""
    copy = tmp_path / "cs_s64"
    shutil.copytree(verified, copy)
    return copy


def report_of(folder) -> dict:
    return json.loads((folder / REPORT_NAME).read_text())


def card_section(folder) -> str:
    """The model card's Verification section."""
    card = (folder / CARD_NAME).read_text()
    section = card.split(f"\n{VERIFICATION_HEADING}\n", 1)[1]
    return section.split("\n## ", 1)[0]


def edit_weights_in_place(path, key: str = EDITED_TENSOR, factor: float = 1.5) -> None:
    """Scale the first value of one tensor in a safetensors file, in place: same size, same
    modification time; only the change time moves."""
    before = os.stat(path)
    with open(path, "r+b") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        start = 8 + length + header[key]["data_offsets"][0]
        handle.seek(start)
        (value,) = struct.unpack("<f", handle.read(4))
        handle.seek(start)
        handle.write(struct.pack("<f", value * factor))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size


def temporary_files(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# -- what a record holds -----------------------------------------------------------------------------


def test_convert_verify_records_the_clip_the_verdict_and_the_weights_compared(verified):
    report = report_of(verified)
    latest = report["verification"]
    assert report["verifications"] == [latest] and report["verifications_dropped"] == 0
    assert latest["verdict"] == "pass" and latest["tolerance"] == 5e-3 and latest["original_backend"] == "reference"
    assert latest["by"] == "speechport convert --verify" and latest["fixes_used"] == []
    when = datetime.datetime.fromisoformat(latest["when"])
    assert when.utcoffset() == datetime.timedelta(0)
    assert latest["weights_sha256"] == sha256(verified / "model.safetensors")  # what `sha256sum` prints
    assert latest["weight_files"] == {"model.safetensors": latest["weights_sha256"]}
    import soundfile

    clip = latest["clips"][0]
    assert clip["max_abs_diff"] <= 5e-3 and clip["clip"]["name"] == SPEECH.name
    assert clip["clip"]["sha256"] == sha256(SPEECH) and clip["clip"]["segment"] is None
    assert clip["clip"]["seconds"] == pytest.approx(soundfile.info(str(SPEECH)).duration, abs=1e-3)
    section = card_section(verified)
    assert "**pass** at tolerance 0.005" in section and latest["weights_sha256"] in section
    assert f"| `{SPEECH.name}` |" in section and sha256(SPEECH)[:12] in section


def test_compare_adds_to_the_history_the_latest_first_with_the_part_compared(folder, run_cli):
    code, stdout, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH, "--start", "1", "--duration", "2")
    assert code == 0
    assert stdout.splitlines()[-1] == f"recorded in {folder / REPORT_NAME} and {CARD_NAME}"
    report = report_of(folder)
    first, second = report["verifications"]
    assert report["verification"] == first and first["by"] == "speechport compare"
    assert second["by"] == "speechport convert --verify"
    assert first["clips"][0]["segment"] == [1.0, 3.0] and first["clips"][0]["clip"]["segment"] == [1.0, 3.0]
    assert first["weights_sha256"] == second["weights_sha256"] == sha256(folder / "model.safetensors")
    section = card_section(folder)
    assert "Every comparison recorded, the latest first:" in section
    history = [line for line in section.splitlines() if line.startswith("| 20")]
    assert len(history) == 2 and "speechport compare" in history[0] and "[1–3 s]" in history[0]
    assert all(line.endswith("| these |") for line in history)


def test_compare_json_says_whether_it_was_recorded(folder, run_cli):
    code, stdout, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH, "--json")
    assert code == 0
    assert json.loads(stdout)["record"] == {"recorded": True, "report": str(folder / REPORT_NAME), "reason": None,
                                            "model_card": True, "model_card_reason": None}


def test_a_failed_comparison_is_recorded_as_a_failure(folder, run_cli):
    edit_weights_in_place(folder / "model.safetensors")
    code, _, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH)
    assert code == 1
    latest = report_of(folder)["verification"]
    assert latest["verdict"] == "fail" and latest["clips"][0]["first_divergent_layer"] == "encoder.layers.1"
    assert "**fail** at tolerance" in card_section(folder)


def test_shards_are_digested_as_sha256sum_lines(tmp_path, run_cli):
    folder = tmp_path / "sharded"
    code, _, _ = run_cli("convert", SOURCE, "--out", folder, "--max-shard-size", "200KB", "--verify", SPEECH)
    assert code == 0
    latest = report_of(folder)["verification"]
    shards = sorted(name for name in os.listdir(folder) if name.endswith(".safetensors"))
    assert len(shards) > 1 and sorted(latest["weight_files"]) == shards
    lines = "".join(f"{sha256(folder / name)}  {name}\n" for name in shards)
    assert latest["weights_sha256"] == hashlib.sha256(lines.encode()).hexdigest()


# -- never a pass for other weights ------------------------------------------------------------------


def test_weights_edited_after_a_pass_no_longer_claim_it(folder, run_cli):
    passed = report_of(folder)["verification"]
    edit_weights_in_place(folder / "model.safetensors")  # same size, same modification time

    proof = folder_proof(folder)  # what the window shows
    assert proof.latest == passed and proof.current_sha256 == sha256(folder / "model.safetensors")
    assert not proof.holds

    from speechport.core.proof.model_card import latest_sentence, verification_text

    said = latest_sentence(proof.latest, proof.current_sha256)
    assert said.startswith(WEIGHTS_CHANGED) and "it was a pass" in said
    card = verification_text(report_of(folder), proof.current_sha256)  # the card, written for these weights
    assert card.startswith("**Not verified for these weights**") and "**pass**" not in card

    code, _, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH)  # compared again: recorded for these weights
    assert code == 1
    report = report_of(folder)
    assert report["verification"]["verdict"] == "fail"
    assert report["verifications"][1]["weights_sha256"] == passed["weights_sha256"] != proof.current_sha256
    section = card_section(folder)
    assert "**pass**" not in section
    old_row = [line for line in section.splitlines() if "speechport convert --verify" in line]
    assert len(old_row) == 1 and "| (pass) |" in old_row[0] and f"other: `{passed['weights_sha256'][:12]}" in old_row[0]


def test_weights_changed_while_compared_are_not_recorded(folder, run_cli, monkeypatch):
    from speechport.core.proof import verification

    real = verification.compare_clips

    def edited_meanwhile(sides, *args, **kwargs):
        comparison = real(sides, *args, **kwargs)
        edit_weights_in_place(folder / "model.safetensors", factor=1.0)  # the same bytes, rewritten
        return comparison

    monkeypatch.setattr(verification, "compare_clips", edited_meanwhile)
    before = (folder / REPORT_NAME).read_bytes()
    code, stdout, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH)
    assert code == 0
    assert stdout.splitlines()[-1] == ("not recorded in the folder: the weights changed while they were compared, so "
                                       "this comparison is not of the weights there now")
    assert (folder / REPORT_NAME).read_bytes() == before


# -- folders that cannot take a record ----------------------------------------------------------------


def test_a_folder_not_converted_by_speechport_is_compared_and_says_so(folder, run_cli):
    (folder / REPORT_NAME).unlink()
    card = (folder / CARD_NAME).read_bytes()
    code, stdout, stderr = run_cli("compare", SOURCE, folder, "--audio", SPEECH)
    assert code == 0 and stderr == ""
    assert stdout.splitlines()[-2:] == ["verdict: pass (tolerance 0.005 on max |diff|)",
                                        f"not recorded in the folder: {NOT_SPEECHPORTS}"]
    assert (folder / CARD_NAME).read_bytes() == card and not (folder / REPORT_NAME).exists()


def test_a_read_only_folder_is_compared_and_says_it_could_not_be_recorded(folder, run_cli, monkeypatch):
    before = {name: (folder / name).read_bytes() for name in (REPORT_NAME, CARD_NAME)}
    if os.geteuid() == 0:  # permission bits do not stop root: the file system refuses, as a read-only mount does
        real_open = os.open

        def read_only(path, flags, *args, dir_fd=None, **kwargs):
            if flags & os.O_CREAT and dir_fd is not None:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

        monkeypatch.setattr(os, "open", read_only)
    else:
        folder.chmod(0o555)
    try:
        code, stdout, stderr = run_cli("compare", SOURCE, folder, "--audio", SPEECH, "--json")
    finally:
        folder.chmod(0o755)
    assert code == 0 and stderr == ""
    said = json.loads(stdout)
    assert said["verdict"] == "pass"
    assert said["record"]["recorded"] is False and said["record"]["reason"] == "the folder is read-only"
    assert {name: (folder / name).read_bytes() for name in before} == before and temporary_files(folder) == []


def test_a_report_that_is_a_link_is_not_followed(folder, tmp_path, run_cli):
    elsewhere = tmp_path / "elsewhere.json"
    shutil.move(folder / REPORT_NAME, elsewhere)
    (folder / REPORT_NAME).symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    code, stdout, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH)
    assert code == 0
    assert stdout.splitlines()[-1] == (f"not recorded in the folder: its {REPORT_NAME} is a symbolic link (to "
                                       f"{elsewhere}), which is not followed: the report of another folder is never "
                                       "written through it")
    assert elsewhere.read_bytes() == before and (folder / REPORT_NAME).is_symlink()


def test_a_fifo_as_the_report_never_blocks(folder):
    """In a process of its own, so that a blocking open would show as a hang the limit ends."""
    (folder / REPORT_NAME).unlink()
    os.mkfifo(folder / REPORT_NAME)
    done = subprocess.run(
        [sys.executable, "-m", "speechport", "compare", str(SOURCE), str(folder), "--audio", str(SPEECH)],
        capture_output=True, text=True, timeout=600)  # the limit only ends a hang
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (f"not recorded in the folder: its {REPORT_NAME} is a named pipe (FIFO), "
                                            "not a regular file")


def test_a_huge_report_is_refused_unread(folder, monkeypatch):
    huge = folder / REPORT_NAME
    with open(huge, "r+b") as handle:
        handle.truncate(MAX_REPORT_BYTES + 1)  # sparse: what it says it holds, never read
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    assert read_report(folder) is None
    recorded = record_verification(folder, {"verdict": "pass", "clips": []})
    assert not recorded.recorded
    assert recorded.reason == (f"its {REPORT_NAME} holds {MAX_REPORT_BYTES + 1:,} bytes, more than a report "
                               f"Speechport writes ({MAX_REPORT_BYTES:,} at most)")
    assert reads == [] and huge.stat().st_size == MAX_REPORT_BYTES + 1


def test_reading_stops_past_the_limit(tmp_path):
    """A file that grows past what it said it holds is read no further than the limit."""
    path = tmp_path / "big"
    path.write_bytes(b"x" * (3 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_at_most(fd, 1 << 20) is None
        assert os.lseek(fd, 0, os.SEEK_CUR) == (1 << 20) + 1
    finally:
        os.close(fd)


def test_a_report_nested_too_deep_is_not_recorded_and_left_as_it_is(folder):
    deep = '{"speechport_report": 1, "x": ' + "[" * 100 + "]" * 100 + "}"
    (folder / REPORT_NAME).write_text(deep)
    recorded = record_verification(folder, {"verdict": "pass", "clips": []})
    assert not recorded.recorded and recorded.reason.startswith(f"its {REPORT_NAME} nests lists or tables more than")
    assert (folder / REPORT_NAME).read_text() == deep
    with pytest.raises(Exception, match="nests lists"):
        load_report(folder / REPORT_NAME)


# -- the history ----------------------------------------------------------------------------------


def crafted_folder(tmp_path):
    """The least a Speechport folder needs to be recorded in: a report and a model card."""
    folder = tmp_path / "crafted"
    folder.mkdir()
    (folder / REPORT_NAME).write_text(json.dumps({"speechport_report": 1, "plan": {"rows": []}, "verification": None,
                                                  "verifications": [], "verifications_dropped": 0}))
    (folder / CARD_NAME).write_text("# crafted\n\n## Verification\n\nNot yet.\n\n## Usage\n\nload it\n")
    return folder


def entry(number: int) -> dict:
    return {"verdict": "pass", "tolerance": 5e-3, "when": f"2026-01-01T00:00:{number % 60:02d}+00:00",
            "weights_sha256": "ab" * 32, "clips": [], "number": number}


def test_the_history_keeps_the_latest_and_counts_what_it_drops(tmp_path):
    folder = crafted_folder(tmp_path)
    extra = 7
    for number in range(MAX_VERIFICATIONS + extra):
        assert record_verification(folder, entry(number)).recorded
    report = report_of(folder)
    kept = [e["number"] for e in report["verifications"]]
    assert kept == list(range(MAX_VERIFICATIONS + extra - 1, extra - 1, -1))
    assert report["verification"]["number"] == MAX_VERIFICATIONS + extra - 1
    assert report["verifications_dropped"] == extra
    card = (folder / CARD_NAME).read_text()
    assert card.startswith("# crafted\n") and card.endswith("## Usage\n\nload it\n")
    assert f"{extra} older comparisons no longer kept." in card and card.count(VERIFICATION_HEADING) == 1


# -- killed or concurrent recorders ---------------------------------------------------------------


RECORDER = textwrap.dedent("""
    import json, os, signal, sys, time
    from speechport.core.proof import record, report

    folder, first, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if mode == "slow":  # read, wait, write: without the lock two recorders would overwrite each other
        real = record.load_report
        def slow(*args, **kwargs):
            data = real(*args, **kwargs)
            time.sleep(0.05)
            return data
        record.load_report = slow
    elif mode in ("mid-write", "before-rename", "between-report-and-card"):
        real_write, real_replace = os.write, os.replace
        replaced = []
        def killed():
            os.kill(os.getpid(), signal.SIGKILL)
        def write(fd, data):
            if mode == "mid-write":
                real_write(fd, bytes(data[: len(data) // 2]))
                killed()
            return real_write(fd, data)
        def replace(*args, **kwargs):
            if mode == "before-rename" or (mode == "between-report-and-card" and replaced):
                killed()
            replaced.append(args)
            return real_replace(*args, **kwargs)
        os.write, os.replace = write, replace
    for number in range(first, first + count):
        entry = {"verdict": "pass", "tolerance": 0.005, "when": "2026-01-01T00:00:00+00:00",
                 "weights_sha256": "ab" * 32, "clips": [], "number": number}
        assert record.record_verification(folder, entry).recorded
""")


def run_recorder(folder, first: int, count: int, mode: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RECORDER, str(folder), str(first), str(count), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("moment", ["mid-write", "before-rename", "between-report-and-card"])
def test_a_recorder_killed_at_any_moment_leaves_the_old_report_or_the_new_one(tmp_path, moment):
    folder = crafted_folder(tmp_path)
    assert record_verification(folder, entry(0)).recorded
    old_report, old_card = (folder / REPORT_NAME).read_bytes(), (folder / CARD_NAME).read_bytes()
    recorder = run_recorder(folder, 1, 1, moment)
    recorder.communicate(timeout=600)
    assert recorder.returncode == -signal.SIGKILL

    numbers = [e["number"] for e in report_of(folder)["verifications"]]  # whole JSON: never half a file
    if moment == "between-report-and-card":
        assert numbers == [1, 0] and (folder / CARD_NAME).read_bytes() == old_card
    else:
        assert numbers == [0] and (folder / REPORT_NAME).read_bytes() == old_report
        assert (folder / CARD_NAME).read_bytes() == old_card
        assert len(temporary_files(folder)) == 1  # the dead recorder's, removed by the next one

    assert record_verification(folder, entry(2)).recorded
    assert temporary_files(folder) == []
    assert [e["number"] for e in report_of(folder)["verifications"]][0] == 2


def test_recorders_at_once_lose_no_entry(tmp_path):
    folder = crafted_folder(tmp_path)
    recorders, each = 4, 5
    running = [run_recorder(folder, index * each, each, "slow") for index in range(recorders)]
    for process in running:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr.decode()
    report = report_of(folder)
    assert sorted(e["number"] for e in report["verifications"]) == list(range(recorders * each))
    assert temporary_files(folder) == []


def test_recording_never_touches_the_weights(folder, run_cli):
    weights = {name: (folder / name).stat() for name in os.listdir(folder) if name.endswith(".safetensors")}
    code, _, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH, "--audio", NOISE)
    assert code == 0
    for name, before in weights.items():
        after = (folder / name).stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns) == \
            (before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    assert [c["clip"]["name"] for c in report_of(folder)["verification"]["clips"]] == [SPEECH.name, NOISE.name]


def test_an_unchanged_folder_is_not_hashed_again(folder, run_cli, monkeypatch):
    from speechport.core.storage import hashing

    code, _, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH)  # hashed once (copied: a new file)
    assert code == 0
    hashed = []

    class CountingHashlib:  # what the hashing module hashes files with, counted
        @staticmethod
        def sha256(*args):
            hashed.append(args)
            return hashlib.sha256(*args)

    monkeypatch.setattr(hashing, "hashlib", CountingHashlib)
    code, _, _ = run_cli("compare", SOURCE, folder, "--audio", SPEECH)
    assert code == 0 and hashed == []
    assert proof_record.folder_proof(folder).holds and hashed == []
