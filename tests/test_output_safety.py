"""The output folder never destroys an input and never leaves debris.

An output folder that is or holds an input is refused, force or not; a symbolic link is written
through; a run killed at any moment leaves the old folder or the new one (and what it left beside
them is tidied by the next run); a signal exits 128+N with nothing left; a full disk or an I/O
error is bad input with nothing left. The kills are real: a conversion in a child process that
SIGKILLs itself at the chosen moment.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speechport.core import demo
from speechport.core.errors import BadInput
from speechport.core.storage import output_folder, safetensors_writer
from speechport.core.storage.output_folder import (
    BACKUP_MARK,
    LOCK_SUFFIX,
    PROBE_MARK,
    STAGED_MARK,
    backup_name,
    exchange_folders,
    leftover_pattern,
    lock_name,
    probe_name,
    staged_name,
)

from conftest import CONFORMER_SHAW, FIXTURES, S3PRL
from support import checkpoint_path, config_path, sha256

CONVERTED = ["README.md", "config.json", "model.safetensors", "preprocessor_config.json", "speechport_report.json"]
CLIP = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
OLD = {"keep.txt": b"the old folder"}
ON_LINUX = sys.platform.startswith("linux")


# -- helpers --------------------------------------------------------------------------------------


def listing(parent: Path, name: str = "out") -> list[str]:
    """The names in `parent`, with the token of what a run leaves beside `name` shown as `*`."""
    pattern = leftover_pattern(name)
    names = []
    for entry in os.listdir(parent):
        match = pattern.fullmatch(entry)
        names.append(f".{name}{match[1]}*{match[3] or ''}" if match else entry)
    return sorted(names)


def tree(folder: Path) -> dict[str, object]:
    """Every file (its bytes) and link (its target) under `folder`, by relative path."""
    found: dict[str, object] = {}
    for path in sorted(Path(folder).rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = "folder"
    return found


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


def make_old(out: Path) -> Path:
    out.mkdir(parents=True)
    for name, data in OLD.items():
        (out / name).write_bytes(data)
    return out


def copy_source(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(checkpoint_path("cs_s64"), folder / "model.pt"))


@pytest.fixture(scope="module")
def reference_weights(tmp_path_factory) -> str:
    """sha256 of model.safetensors converted from cs_s64 by a run nobody disturbed."""
    from speechport.core.conversion import convert, prepare

    out = tmp_path_factory.mktemp("reference") / "out"
    convert(prepare(checkpoint_path("cs_s64")), out)
    return sha256(out / "model.safetensors")


def assert_converted(out: Path, reference: str) -> None:
    assert sorted(os.listdir(out)) == CONVERTED
    assert sha256(out / "model.safetensors") == reference


@pytest.fixture
def never_prepared(monkeypatch):
    """A refusal must come before the checkpoint is read."""
    from speechport.core import conversion

    def prepare(*args, **kwargs):
        raise AssertionError("the checkpoint was read before the output folder was refused")

    monkeypatch.setattr(conversion, "prepare", prepare)


# -- an output folder that would destroy an input ----------------------------------------------------


def _copy(source: Path, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(source, destination))


UPSTREAM_HEAD = FIXTURES / "s3prl_upstreams" / "downstream" / "wavlm_sid" / "dev-best.ckpt"
UPSTREAM_FILE = FIXTURES / "s3prl_upstreams" / "upstreams" / "wavlm_base_plus" / "wavlm_base_plus.pt"


def _s3prl_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A SUPERB head and a copy of its base model folder."""
    source = _copy(S3PRL / "sid" / "dev-best.ckpt", tmp_path / "heads" / "sid.ckpt")
    base = Path(shutil.copytree(S3PRL / "base_model", tmp_path / "models" / "base"))
    return source, base


def _labels(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"speaker_{i}\n" for i in range(7)))
    return path


def _case(tmp_path: Path, case: str, monkeypatch) -> tuple[list, str, str, Path]:
    """(CLI arguments, relation, what is named, its resolved path) for one way of aiming at an input."""
    source = copy_source(tmp_path / "work" / "src")
    args = ["convert", source]
    out, relation, what, named = source.parent, "holds", "the source checkpoint", source
    if case == "the source's folder":
        pass
    elif case == "an ancestor of it":
        out = tmp_path
    elif case == "dir/./ alias":
        out = f"{source.parent}/./"
    elif case == "dir/../dir alias":
        out = f"{source.parent}/../src"
    elif case == "relative path":
        monkeypatch.chdir(source.parent)
        out = "."
    elif case == "the source file itself":
        out, relation = source, "is"
    elif case == "a link to the source's folder":
        out = tmp_path / "link"
        out.symlink_to(source.parent, target_is_directory=True)
    elif case == "a link to a link to an ancestor":
        (tmp_path / "link1").symlink_to(tmp_path / "work")
        out = tmp_path / "link2"
        out.symlink_to(tmp_path / "link1")
    elif case == "the config's folder":
        named = _copy(config_path("cs_s64"), tmp_path / "configs" / "config.json")
        args, out, what = [*args, "--config", named], named.parent, "the config file"
    elif case == "the mapping file's folder":
        named = tmp_path / "fixes" / "fixes.json"
        named.parent.mkdir()
        named.write_text("{}")
        args, out, what = [*args, "--mapping", named], named.parent, "the mapping file"
    elif case == "the verification clip's folder":
        named = _copy(CLIP, tmp_path / "clips" / "clip.wav")
        args, out, what = [*args, "--verify", named], named.parent, "the verification clip"
    elif case == "the base model folder":
        source, named = _s3prl_inputs(tmp_path)
        args, out, what, relation = ["convert", source, "--base-model", named], named, "the base model folder", "is"
    elif case == "an ancestor of the base model folder":
        source, named = _s3prl_inputs(tmp_path)
        args, out, what = ["convert", source, "--base-model", named], named.parent, "the base model folder"
    elif case == "the base model file's folder":
        source = _copy(UPSTREAM_HEAD, tmp_path / "heads" / "sid.ckpt")
        named = _copy(UPSTREAM_FILE, tmp_path / "models" / "upstream.pt")
        args, out, what = ["convert", source, "--base-model", named], named.parent, "the base model file"
    elif case == "the labels file's folder":
        source, base = _s3prl_inputs(tmp_path)
        named = _labels(tmp_path / "labels" / "speakers.txt")
        args, out, what = ["convert", source, "--base-model", base, "--labels", named], named.parent, "the labels file"
    else:
        raise AssertionError(case)
    return [*args, "--out", out], relation, what, named.resolve()


CASES = [
    "the source's folder", "an ancestor of it", "dir/./ alias", "dir/../dir alias", "relative path",
    "the source file itself", "a link to the source's folder", "a link to a link to an ancestor", "the config's folder",
    "the mapping file's folder", "the verification clip's folder", "the base model folder",
    "an ancestor of the base model folder", "the base model file's folder", "the labels file's folder",
]


@pytest.mark.parametrize("force", [True, False], ids=["--force", "no --force"])
@pytest.mark.parametrize("case", CASES)
def test_output_folder_holding_an_input_is_refused_before_anything_is_read(
    tmp_path, run_cli, monkeypatch, never_prepared, case, force
):
    args, relation, what, named = _case(tmp_path, case, monkeypatch)
    before = tree(tmp_path)
    code, stdout, stderr = run_cli(*args, *(["--force"] if force else []))
    assert code == 2, stderr
    assert stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("speechport: error: "), stderr
    assert f": refused as the output folder: it {relation} {what} ({named}), which converting into it could destroy; " \
           "choose another folder\n" in stderr
    assert tree(tmp_path) == before


def test_refusal_with_json_is_a_bad_input_object(tmp_path, run_cli, never_prepared):
    source = copy_source(tmp_path / "src")
    code, stdout, stderr = run_cli("convert", source, "--out", tmp_path, "--force", "--json")
    assert code == 2
    error = json.loads(stdout)["error"]
    assert error["kind"] == "bad_input" and error["message"] == stderr.removeprefix("speechport: error: ").rstrip("\n")
    assert f"it holds the source checkpoint ({source})" in error["message"]
    assert sha256(source) == sha256(checkpoint_path("cs_s64"))


def test_bind_mount_like_alias_is_seen_by_identity(tmp_path, monkeypatch):
    """Two paths to one folder that no path arithmetic relates (a bind mount) are refused by inode."""
    source = copy_source(tmp_path / "src")
    alias = tmp_path / "mounted"
    alias.mkdir()
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # a bind mount: the alias resolves to itself, yet is the same folder
        return real_stat(source.parent if Path(path) == alias else path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(BadInput) as refused:
        output_folder.check_output_path(alias, True, output_folder.protected_inputs(source=source))
    monkeypatch.undo()
    assert str(refused.value) == f"{alias}: refused as the output folder: it holds the source checkpoint ({source}), " \
        "which converting into it could destroy; choose another folder"
    assert sorted(os.listdir(tmp_path)) == ["mounted", "src"] and os.listdir(source.parent) == ["model.pt"]


def test_convert_itself_refuses_every_input_of_the_prepared_conversion(tmp_path):
    """The library entry point (and the window, which calls it) refuses too, not only the CLI."""
    from speechport.core.conversion import convert, prepare

    source = copy_source(tmp_path / "src")
    config = _copy(config_path("cs_s64"), tmp_path / "configs" / "config.json")
    mapping = tmp_path / "fixes" / "fixes.json"
    mapping.parent.mkdir()
    mapping.write_text("{}")
    clip = _copy(CLIP, tmp_path / "clips" / "clip.wav")
    prepared = prepare(source, config=config, mapping=mapping)
    before = tree(tmp_path)
    for named, what in ((source, "the source checkpoint"), (config, "the config file"), (mapping, "the mapping file"),
                        (clip, "the verification clip")):
        with pytest.raises(BadInput) as refused:
            convert(prepared, named.parent, force=True, verify=[clip])
        assert f"{named.parent}: refused as the output folder: it holds {what} ({named})" in str(refused.value)
    assert tree(tmp_path) == before


def test_convert_refuses_the_base_model_folder_and_the_labels_folder(tmp_path):
    from speechport.core.conversion import convert, prepare

    source, base = _s3prl_inputs(tmp_path)
    labels = _labels(tmp_path / "labels" / "speakers.txt")
    prepared = prepare(source, base_model=base, labels=labels)
    assert prepared.labels_path == labels
    before = tree(tmp_path)
    for out, message in ((base, f"it is the base model folder ({base})"),
                         (tmp_path / "models", f"it holds the base model folder ({base})"),
                         (labels.parent, f"it holds the labels file ({labels})")):
        with pytest.raises(BadInput) as refused:
            convert(prepared, out, force=True)
        assert message in str(refused.value)
    assert tree(tmp_path) == before


def test_demo_refuses_an_output_folder_holding_its_own_files(tmp_path, run_cli, monkeypatch):
    bundled = tmp_path / "demo"
    shutil.copytree(demo.DEMO_CHECKPOINT.parent, bundled)
    monkeypatch.setattr(demo, "DEMO_CHECKPOINT", bundled / demo.DEMO_CHECKPOINT.name)
    monkeypatch.setattr(demo, "DEMO_CLIPS", tuple(bundled / clip.name for clip in demo.DEMO_CLIPS))
    from speechport.core import conversion

    monkeypatch.setattr(conversion, "prepare", lambda *a, **k: pytest.fail("the demo checkpoint was read"))
    before = tree(tmp_path)
    code, _, stderr = run_cli("demo", "--out", bundled, "--force")
    assert code == 2 and stderr.count("\n") == 1
    assert f"{bundled}: refused as the output folder: it holds the source checkpoint ({bundled / demo.DEMO_CHECKPOINT.name})" in stderr
    clip = tmp_path / "clips" / "clip.wav"
    clip.parent.mkdir()
    monkeypatch.setattr(demo, "DEMO_CLIPS", (clip,))
    code, _, stderr = run_cli("demo", "--out", tmp_path / "clips", "--force")
    assert code == 2 and f"it holds the verification clip ({clip})" in stderr
    assert tree(tmp_path) == {**before, "clips": "folder"}


# -- symbolic links as the output ------------------------------------------------------------------------


@pytest.mark.parametrize("swap", ["one-step exchange", "two renames"])
def test_a_link_as_the_output_is_written_through_and_keeps_pointing_at_the_new_folder(
    tmp_path, run_cli, monkeypatch, reference_weights, swap
):
    if swap == "two renames":
        monkeypatch.setattr(output_folder, "exchange_folders", lambda first, second: False)
    real = make_old(tmp_path / "models" / "real")
    link = tmp_path / "links" / "out"
    link.parent.mkdir()
    link.symlink_to(Path("..") / "models" / "real", target_is_directory=True)
    code, stdout, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", link, "--force")
    assert code == 0, stderr
    assert f"-> {link}\n" in stdout
    assert link.is_symlink() and os.readlink(link) == str(Path("..") / "models" / "real")
    assert_converted(real, reference_weights)
    assert listing(link.parent) == ["out"]
    assert listing(real.parent, "real") == ["real"]


def test_a_dangling_link_is_written_through_to_its_target(tmp_path, run_cli, reference_weights):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "elsewhere" / "new")
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", link)
    assert code == 0, stderr
    assert_converted(tmp_path / "elsewhere" / "new", reference_weights)
    assert listing(tmp_path) == ["elsewhere", "out"] and listing(tmp_path / "elsewhere", "new") == ["new"]


def test_a_loop_of_links_is_refused(tmp_path, run_cli):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "a", "--force")
    assert code == 2
    assert stderr == f"speechport: error: {tmp_path / 'a'}: the symbolic links lead round in a loop; choose another output folder\n"
    assert listing(tmp_path) == ["a", "b"]


# -- killed at any moment ------------------------------------------------------------------------------

# One process imports torch and transformers once (seconds); each conversion below runs in a fork
# of it, in its own folder, with one moment patched. It reads the jobs as one JSON line, prints
# {job: pid} once they are started, then {"job": name, "status": exit status} as each one ends.
HARNESS = r"""
import json, os, signal, sys, time
from pathlib import Path

import transformers
from transformers import Wav2Vec2BertModel  # noqa: F401 - imported once, before the forks
import speechport.cli
from speechport.core import conversion  # noqa: F401
from speechport.core.storage import output_folder, safetensors_writer  # noqa: F401

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def patch(mode, job):
    if mode == "kill while writing":
        copy, calls = safetensors_writer._Copier.copy, []
        def copy_then_die(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 10:
                die()
            return copy(self, *args, **kwargs)
        safetensors_writer._Copier.copy = copy_then_die
    elif mode == "kill right after the exchange":
        exchange = output_folder.exchange_folders
        def exchange_then_die(first, second):
            assert exchange(first, second)
            die()
        output_folder.exchange_folders = exchange_then_die
    elif mode.startswith("no exchange"):
        output_folder.exchange_folders = lambda first, second: False
        rename = os.rename
        def rename_then_die(source, destination, *args, **kwargs):
            rename(source, destination, *args, **kwargs)
            if mode == "no exchange, kill between the renames" and output_folder.BACKUP_MARK in Path(destination).name:
                die()
            if mode == "no exchange, kill after the renames" and output_folder.STAGED_MARK in Path(source).name:
                die()
        os.rename = rename_then_die
    elif mode == "stall while writing":
        copy, marker = safetensors_writer._Copier.copy, Path(job["marker"])
        def stalled_copy(self, *args, **kwargs):  # a disk that stops answering until a signal comes
            marker.touch()
            time.sleep(300)
            return copy(self, *args, **kwargs)
        safetensors_writer._Copier.copy = stalled_copy
    elif mode == "file size limit":
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    else:
        raise SystemExit(f"unknown mode {mode}")

def run(job):
    os.chdir(job["folder"])
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    patch(job["mode"], job)
    code = speechport.cli.main(job["argv"])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

jobs = json.loads(sys.stdin.readline())
names = {}
for name, job in jobs.items():
    pid = os.fork()
    if pid == 0:
        try:
            run(job)
        finally:
            os._exit(99)
    names[pid] = name
print(json.dumps({name: pid for pid, name in names.items()}), flush=True)
while names:
    pid, status = os.wait()
    print(json.dumps({"job": names.pop(pid), "status": os.waitstatus_to_exitcode(status)}), flush=True)
"""


def convert_args(out: Path, *more) -> list:
    return ["convert", checkpoint_path("cs_s64"), "--out", out, "--quiet", *more]


KILLS = {
    # mode: (an old folder there?, the listing right after the kill, which folder `out` holds then)
    "kill while writing": (True, [".out.partial-*", ".out.partial-*.lock", "out"], "old"),
    "kill while writing, nothing there before": (False, [".out.partial-*", ".out.partial-*.lock"], None),
    "kill right after the exchange": (True, [".out.partial-*", ".out.partial-*.lock", "out"], "new"),
    "no exchange, kill between the renames": (True, [".out.partial-*", ".out.partial-*.lock", ".out.replaced-*"], None),
    "no exchange, kill after the renames": (True, [".out.partial-*.lock", ".out.replaced-*", "out"], "new"),
}


class Children:
    """The conversions of this module that run in child processes (see `HARNESS`)."""

    def __init__(self, base: Path, jobs: dict[str, dict]):
        self.jobs = jobs
        for name, job in jobs.items():
            logs = base / "logs" / name.replace(" ", "_").replace(",", "")
            logs.mkdir(parents=True)
            job.update(stdout=str(logs / "stdout"), stderr=str(logs / "stderr"), argv=[str(a) for a in job["argv"]],
                       folder=str(job["folder"]))
        env = {k: v for k, v in os.environ.items() if k != "SPEECHPORT_DEBUG"}
        self.server = subprocess.Popen([sys.executable, "-c", HARNESS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, env=env)
        self.server.stdin.write(json.dumps(jobs) + "\n")
        self.server.stdin.close()
        line = self.server.stdout.readline()
        assert line, f"the harness failed to start (exit status {self.server.wait()})"
        self.pids: dict[str, int] = json.loads(line)
        self.statuses: dict[str, int] = {}

    def folder(self, name: str) -> Path:
        return Path(self.jobs[name]["folder"])

    def result(self, name: str) -> tuple[int, str, str]:
        """(exit status, negative for a signal; stdout; stderr) once the job has ended."""
        while name not in self.statuses:
            line = self.server.stdout.readline()
            assert line, "the harness ended early"
            ended = json.loads(line)
            self.statuses[ended["job"]] = ended["status"]
        job = self.jobs[name]
        return self.statuses[name], Path(job["stdout"]).read_text(), Path(job["stderr"]).read_text()

    def close(self) -> None:
        for name, pid in self.pids.items():
            if name not in self.statuses:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.server.stdout.read()
        self.server.stdout.close()
        self.server.wait(timeout=60)


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    base = tmp_path_factory.mktemp("children")
    jobs = {}
    for mode, (had_old, _, _) in KILLS.items():
        folder = base / mode.replace(" ", "_").replace(",", "")
        folder.mkdir()
        if had_old:
            make_old(folder / "out")
        jobs[mode] = {"mode": mode.removesuffix(", nothing there before"), "folder": folder,
                      "argv": convert_args(folder / "out", "--force")}
    (base / "sigterm" / "parent").mkdir(parents=True)
    make_old(base / "sigterm" / "parent" / "out")
    jobs["sigterm"] = {"mode": "stall while writing", "folder": base / "sigterm", "marker": str(base / "writing"),
                       "argv": convert_args(base / "sigterm" / "parent" / "out", "--force")}
    (base / "file_size_limit" / "parent").mkdir(parents=True)
    jobs["file size limit"] = {"mode": "file size limit", "folder": base / "file_size_limit",
                               "argv": convert_args(base / "file_size_limit" / "parent" / "out")}
    started = Children(base, jobs)
    yield started
    started.close()


@pytest.mark.parametrize("mode", list(KILLS))
def test_killed_at_any_moment_the_next_run_finds_the_old_folder_or_the_new_one(children, run_cli, reference_weights, mode):
    had_old, after_kill, holds = KILLS[mode]
    tmp_path = children.folder(mode)
    out = tmp_path / "out"
    code, _, stderr = children.result(mode)
    assert code == -signal.SIGKILL, stderr
    assert listing(tmp_path) == after_kill
    if holds == "old":
        assert files(out) == OLD
    elif holds == "new":
        assert_converted(out, reference_weights)
    if mode == "no exchange, kill between the renames":  # the old folder is set aside, not lost
        (backup,) = tmp_path.glob(f".out{BACKUP_MARK}*")
        assert files(backup) == OLD

    # The next run aimed at the same folder tidies up first: the old folder is back where the kill
    # came mid-swap; without --force, a non-empty folder is then refused as always.
    code, _, stderr = run_cli(*convert_args(out))
    restored = holds == "old" or mode == "no exchange, kill between the renames"
    if had_old:
        assert code == 2 and stderr == f"speechport: error: {out}: the output folder exists and is not empty " \
            "(choose another folder, or replace it once the new one is complete); to replace it: --force\n"
        assert listing(tmp_path) == ["out"]
        if restored:
            assert files(out) == OLD
        else:
            assert_converted(out, reference_weights)
    else:
        assert code == 0, stderr
        assert listing(tmp_path) == ["out"]
        assert_converted(out, reference_weights)
    code, _, stderr = run_cli(*convert_args(out, "--force"))
    assert code == 0, stderr
    assert listing(tmp_path) == ["out"]
    assert_converted(out, reference_weights)


def test_sigterm_while_writing_exits_143_and_leaves_the_old_folder(children):
    out = children.folder("sigterm") / "parent" / "out"
    marker = Path(children.jobs["sigterm"]["marker"])
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists()
    assert listing(out.parent) == [".out.partial-*", ".out.partial-*.lock", "out"]  # caught in the middle
    os.kill(children.pids["sigterm"], signal.SIGTERM)
    code, stdout, stderr = children.result("sigterm")
    assert code == 143, stderr
    assert stdout == "" and stderr == "speechport: interrupted by SIGTERM; nothing was left half-written\n"
    assert listing(out.parent) == ["out"] and files(out) == OLD


@pytest.fixture
def survivable_signals():
    """Should the CLI not take these signals itself, the test fails instead of pytest dying of them."""
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield received
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("old", [True, False], ids=["replacing", "new folder"])
def test_signals_exit_128_plus_n_with_nothing_left(tmp_path, run_cli, monkeypatch, survivable_signals, signum, code, old):
    out = tmp_path / "out"
    if old:
        make_old(out)
    copy, calls = safetensors_writer._Copier.copy, []

    def copy_then_signal(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signum)
        return copy(self, *args, **kwargs)

    monkeypatch.setattr(safetensors_writer._Copier, "copy", copy_then_signal)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    status, stdout, stderr = run_cli(*convert_args(out, "--force", "--json"))
    assert status == code
    name = signal.Signals(signum).name
    assert stderr == f"speechport: interrupted by {name}; nothing was left half-written\n"
    assert json.loads(stdout) == {"error": {"kind": "interrupted", "message": stderr[12:].rstrip()}}
    assert len(calls) == 3  # it stopped at once
    assert listing(tmp_path) == (["out"] if old else [])
    if old:
        assert files(out) == OLD
    assert {s: signal.getsignal(s) for s in before} == before  # the previous handlers are back
    assert survivable_signals == []


def test_a_second_signal_does_not_cut_the_cleanup_short(tmp_path, run_cli, monkeypatch, survivable_signals):
    out = tmp_path / "out"
    copy, calls = safetensors_writer._Copier.copy, []

    def copy_then_signal(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return copy(self, *args, **kwargs)

    remove = output_folder._remove

    def remove_with_another_signal(path):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        return remove(path)

    monkeypatch.setattr(safetensors_writer._Copier, "copy", copy_then_signal)
    monkeypatch.setattr(output_folder, "_remove", remove_with_another_signal)
    status, _, stderr = run_cli(*convert_args(out))
    assert status == 143 and stderr == "speechport: interrupted by SIGTERM; nothing was left half-written\n"
    assert listing(tmp_path) == []
    assert survivable_signals == []


# -- what killed runs left: stale or alive ---------------------------------------------------------------


def _leave(parent: Path, token: str, *, lock: bool, staged: bool = True, backup: bool = False) -> None:
    if lock:
        (parent / lock_name("out", token)).touch()
    if staged:
        (parent / staged_name("out", token)).mkdir()
        (parent / staged_name("out", token) / "model.safetensors").write_bytes(b"half")
    if backup:
        make_old(parent / backup_name("out", token))


def test_a_live_runs_folders_are_left_alone_and_removed_once_it_is_gone(tmp_path, run_cli, reference_weights):
    _leave(tmp_path, "alive123", lock=True, backup=True)
    held = os.open(tmp_path / lock_name("out", "alive123"), os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running conversion holds it
        code, _, stderr = run_cli(*convert_args(tmp_path / "out"))
        assert code == 0, stderr
        assert listing(tmp_path) == [".out.partial-*", ".out.partial-*.lock", ".out.replaced-*", "out"]
        assert (tmp_path / staged_name("out", "alive123") / "model.safetensors").read_bytes() == b"half"
    finally:
        os.close(held)  # what the kernel does when that process dies
    output_folder.check_output_path(tmp_path / "out", force=True)
    assert listing(tmp_path) == ["out"]
    assert_converted(tmp_path / "out", reference_weights)


def test_stale_folders_without_a_lock_or_with_a_free_one_are_removed(tmp_path, run_cli, reference_weights):
    _leave(tmp_path, "nolock12", lock=False)
    _leave(tmp_path, "freelock", lock=True)
    _leave(tmp_path, "onlylock", lock=True, staged=False)
    _leave(tmp_path, "gone_now", lock=False, staged=False, backup=True)  # no output folder: it is put back
    (tmp_path / probe_name("out", "probe123")).mkdir()
    code, _, stderr = run_cli(*convert_args(tmp_path / "out"))
    assert code == 2 and "exists and is not empty" in stderr
    assert listing(tmp_path) == ["out"] and files(tmp_path / "out") == OLD
    code, _, stderr = run_cli(*convert_args(tmp_path / "out", "--force"))
    assert code == 0, stderr
    assert listing(tmp_path) == ["out"]
    assert_converted(tmp_path / "out", reference_weights)


def test_only_the_exact_names_for_this_output_are_ever_removed(tmp_path, run_cli):
    lookalikes = [
        ".out.partial-short", ".out.partial-toolong123", ".out.partial-ABCDEFGH", "out.partial-12345678",
        ".out.partial-12345678.bak", ".out.replaced-12345678.lock", ".outx.partial-12345678", ".other.partial-12345678",
        ".out.probe-12345678.lock", "..out.partial-12345678", ".out.partial-12345678x", ".out.lock",
    ]
    for name in lookalikes:
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.txt").write_text("keep")
    (tmp_path / probe_name("out", "notempty")).mkdir()
    (tmp_path / probe_name("out", "notempty") / "mine.txt").write_text("keep")  # not a probe of ours: it holds a file
    code, _, stderr = run_cli(*convert_args(tmp_path / "out"))
    assert code == 0, stderr
    assert sorted(os.listdir(tmp_path)) == sorted([*lookalikes, probe_name("out", "notempty"), "out"])
    assert all((tmp_path / name / "mine.txt").read_text() == "keep" for name in lookalikes)


def test_naming_constants_make_the_names_the_pattern_recognises():
    pattern = leftover_pattern("my model")
    assert pattern.fullmatch(staged_name("my model", "abcd1234")).groups() == (STAGED_MARK, "abcd1234", None)
    assert pattern.fullmatch(lock_name("my model", "abcd1234")).groups() == (STAGED_MARK, "abcd1234", LOCK_SUFFIX)
    assert pattern.fullmatch(backup_name("my model", "abcd1234")).groups() == (BACKUP_MARK, "abcd1234", None)
    assert pattern.fullmatch(probe_name("my model", "abcd1234")).groups() == (PROBE_MARK, "abcd1234", None)
    assert pattern.fullmatch(staged_name("my_model", "abcd1234")) is None
    dotted = leftover_pattern("my.model")  # the name is matched literally
    assert dotted.fullmatch(staged_name("my.model", "abcd1234")) is not None
    assert dotted.fullmatch(staged_name("myXmodel", "abcd1234")) is None


# -- the one-step exchange and its fallback ---------------------------------------------------------------


def _two_folders(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "a").write_text("first")
    (second / "b").write_text("second")
    return first, second


@pytest.mark.skipif(not ON_LINUX, reason="renameat2 is Linux's")
def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    first, second = _two_folders(tmp_path)
    assert exchange_folders(first, second) is True
    assert os.listdir(first) == ["b"] and os.listdir(second) == ["a"]


@pytest.mark.skipif(not ON_LINUX, reason="renameat2 is Linux's")
def test_exchange_by_raw_system_call_where_glibc_lacks_renameat2(tmp_path):
    first, second = _two_folders(tmp_path)
    renameat2 = output_folder._renameat2_syscall(ctypes.CDLL(None, use_errno=True))
    assert renameat2 is not None, os.uname().machine
    assert renameat2(os.fsencode(first), os.fsencode(second), 2) == 0
    assert os.listdir(first) == ["b"] and os.listdir(second) == ["a"]


def test_exchange_unsupported_is_false_and_other_errors_raise(tmp_path, monkeypatch):
    first, second = _two_folders(tmp_path)

    def failing(code):
        def renameat2(old, new, flags):
            ctypes.set_errno(code)
            return -1
        return lambda: renameat2

    for code in (errno.ENOSYS, errno.EINVAL):
        monkeypatch.setattr(output_folder, "_renameat2", failing(code))
        assert exchange_folders(first, second) is False
    monkeypatch.setattr(output_folder, "_renameat2", failing(errno.EACCES))
    with pytest.raises(PermissionError):
        exchange_folders(first, second)
    monkeypatch.setattr(output_folder, "_renameat2", lambda: None)  # not Linux
    assert exchange_folders(first, second) is False
    assert os.listdir(first) == ["a"] and os.listdir(second) == ["b"]


@pytest.mark.parametrize("swap", ["one-step exchange", "two renames"])
def test_force_replaces_with_nothing_left_beside(tmp_path, run_cli, monkeypatch, reference_weights, swap):
    used = []
    exchange = output_folder.exchange_folders

    def recorded(first, second):
        used.append(swap)
        return exchange(first, second) if swap == "one-step exchange" else False

    monkeypatch.setattr(output_folder, "exchange_folders", recorded)
    out = make_old(tmp_path / "out")
    code, _, stderr = run_cli(*convert_args(out, "--force"))
    assert code == 0, stderr
    assert used == [swap]
    assert listing(tmp_path) == ["out"]
    assert_converted(out, reference_weights)


def test_a_failed_move_into_place_puts_the_old_folder_back(tmp_path, run_cli, monkeypatch):
    """Without the one-step exchange, the old folder is set aside first; if the new one then
    cannot be moved in, the old one goes back."""
    monkeypatch.setattr(output_folder, "exchange_folders", lambda first, second: False)
    rename = os.rename

    def refuse_the_new_folder(source, destination, *args, **kwargs):
        if STAGED_MARK in Path(source).name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(source), None, str(destination))
        return rename(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "rename", refuse_the_new_folder)
    out = make_old(tmp_path / "out")
    code, _, stderr = run_cli(*convert_args(out, "--force"))
    assert code == 2
    assert re.fullmatch(rf"speechport: error: {re.escape(str(out))}: cannot write the output folder: Permission denied "
                        rf"\({re.escape(str(tmp_path))}/\.out\.partial-{output_folder.TOKEN_PATTERN}\); nothing was written\n",
                        stderr), stderr
    assert listing(tmp_path) == ["out"] and files(out) == OLD


# -- a full disk, a quota, an I/O error ----------------------------------------------------------------


def test_file_size_limit_is_bad_input_with_nothing_left(children):
    """A real write error without root: RLIMIT_FSIZE makes writes past 64 KB fail with EFBIG."""
    parent = children.folder("file size limit") / "parent"
    code, stdout, stderr = children.result("file size limit")
    assert code == 2, stderr
    assert stdout == ""
    assert re.fullmatch(rf"speechport: error: {re.escape(str(parent / 'out'))}: cannot write the output folder: "
                        r"a file grew larger than /\S* or this process's file-size limit allows; nothing was written\n",
                        stderr), stderr
    assert listing(parent) == []


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _in_kernel_copy_fails(monkeypatch):
    monkeypatch.setattr(os, "copy_file_range", _no_space)


def _write_from_memory_fails(monkeypatch):
    def cannot(*args, **kwargs):  # this filesystem pair cannot copy in the kernel: bytes go through memory
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "copy_file_range", cannot)
    write_all, calls = safetensors_writer._write_all, []

    def header_then_no_space(out, data):
        calls.append(1)
        if len(calls) == 1:  # the header goes through; the first tensor does not
            return write_all(out, data)
        _no_space()

    monkeypatch.setattr(safetensors_writer, "_write_all", header_then_no_space)


def _report_write_fails(monkeypatch):
    write_text = Path.write_text

    def no_space_for_the_report(self, *args, **kwargs):  # the weights fit; the report, written last, does not
        if self.name == "speechport_report.json":
            _no_space()
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", no_space_for_the_report)


@pytest.mark.parametrize("failure", [_in_kernel_copy_fails, _write_from_memory_fails, _report_write_fails],
                         ids=["copy_file_range", "write from memory", "writing the report"])
@pytest.mark.parametrize("old", [False, True], ids=["new folder", "replacing"])
def test_no_space_left_is_bad_input_with_nothing_left(tmp_path, run_cli, monkeypatch, failure, old):
    parent = tmp_path / "parent"
    parent.mkdir()
    out = parent / "out"
    if old:
        make_old(out)
    failure(monkeypatch)
    code, stdout, stderr = run_cli(*convert_args(out, *(["--force"] if old else [])))
    assert code == 2
    assert stdout == ""
    assert re.fullmatch(rf"speechport: error: {re.escape(str(out))}: cannot write the output folder: "
                        r"no space left on /\S*; nothing was written\n", stderr), stderr
    assert listing(parent) == (["out"] if old else [])
    if old:
        assert files(out) == OLD


def test_no_space_left_with_json_prints_the_bad_input_object(tmp_path, run_cli, monkeypatch):
    _in_kernel_copy_fails(monkeypatch)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(*convert_args(out, "--json"))
    assert code == 2
    error = json.loads(stdout)
    assert list(error) == ["error"] and error["error"]["kind"] == "bad_input"
    assert error["error"]["message"].startswith(f"{out}: cannot write the output folder: no space left on /")
    assert stderr == f"speechport: error: {error['error']['message']}\n"
    assert listing(tmp_path) == []


@pytest.mark.parametrize("code, sentence", [
    (errno.EDQUOT, "the disk quota is exceeded on /"),
    (errno.EIO, "input/output error on /"),
    (errno.EACCES, "Permission denied"),
])
def test_other_write_errors_say_what_the_system_said(tmp_path, run_cli, monkeypatch, code, sentence):
    def fails(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "copy_file_range", fails)
    status, _, stderr = run_cli(*convert_args(tmp_path / "out"))
    assert status == 2 and stderr.count("\n") == 1
    assert f"{tmp_path / 'out'}: cannot write the output folder: {sentence}" in stderr and "nothing was written" in stderr
    assert listing(tmp_path) == []
