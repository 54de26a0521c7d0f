"""The user cache and the source's digest hold against a hostile user.

`speechport cache clear` removes only what Speechport wrote, never through a link, and refuses a
cache folder that is a link or another user's; the report's sha256 describes the bytes converted
or the conversion is refused; entries edited with any tool, forged or copied from elsewhere are
never used (they are signed with a key of the user's own, kept outside the cache); FIFOs where an
entry, a key or a lock would be never block a run; an entry too large to be one is never read; a
temporary file a killed run left is removed, a live writer's kept, and neither is counted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from speechport.core.conversion import convert, prepare
from speechport.core.errors import BadInput
from speechport.core.planning.target_cache import CACHE, NO_CACHE_ENV
from speechport.core.storage import cache_store, digest_cache, hashing, safetensors_writer
from speechport.core.storage.cache_store import KEY_BYTES, MAX_ENTRY_BYTES, SIGNATURE
from speechport.core.storage.checkpoint import load_checkpoint
from speechport.core.storage.hashing import SOURCE_CHANGED, BackgroundHash

from support import checkpoint_path, leftovers, sha256

ENTRY = "0" * 64 + ".json"  # a name Speechport gives entries
# A generous bound for a child process that must not hang; never a measure of speed.
HANG_GUARD_S = 300


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """A user cache and a data folder (where the key is made) of the test's own."""
    cache, data = tmp_path / "cache-home", tmp_path / "data-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    return cache / "speechport", data / "speechport"


@pytest.fixture
def source(tmp_path) -> Path:
    """A checkpoint of the test's own, free to be edited."""
    path = tmp_path / "model.pt"
    path.write_bytes(checkpoint_path("cs_s64").read_bytes())
    return path


def convert_json(run_cli, *args) -> tuple[int, dict, str]:
    code, stdout, stderr = run_cli("convert", *args, "--json", "--quiet")
    return code, json.loads(stdout), stderr


def report_of(out: Path) -> dict:
    return json.loads((out / "speechport_report.json").read_text())


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speechport: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def edit_in_place(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes of `path` without changing its size, and set its modification time back:
    only the change time (which no program can set back) tells."""
    before = path.stat()
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def a_tensor_span(path: Path) -> tuple[int, int]:
    """(offset, bytes) of a tensor's data in the checkpoint: an edit there changes the weights."""
    from speechport.core.storage.checkpoint import iter_tensors

    spans = sorted((span.offset, span.nbytes) for _, tensor in iter_tensors(load_checkpoint(path).content)
                   if (located := tensor.span()) for span in [located[1]])
    return spans[len(spans) // 2]


# -- cache clear and info: only Speechport's files, never through a link, only the user's own folder --


def _bystanders(folder: Path) -> dict[str, bytes]:
    """Files that are not Speechport's, one of them named like an entry."""
    folder.mkdir(parents=True)
    files = {"thesis.txt": b"three years of work", ENTRY: b'{"not": "speechport\'s"}',
             f".{'0' * 64}.abcdefgh.tmp": b"someone else's"}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("linked", ["targets", "digests", "the cache folder itself"])
def test_cache_clear_and_info_refuse_a_linked_cache_folder_and_touch_nothing_behind_it(linked, homes, tmp_path, run_cli):
    cache, _ = homes
    elsewhere = tmp_path / "elsewhere"
    root_linked = linked == "the cache folder itself"
    files = _bystanders(elsewhere / "targets" if root_linked else elsewhere)
    link = cache if root_linked else cache / linked
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere, target_is_directory=True)
    for command in (["clear"], ["info"], ["clear", "--json"]):
        code, stdout, stderr = run_cli("cache", *command)
        assert code == 2
        assert f"speechport: error: {link}: the cache folder is a symbolic link, which Speechport never follows" in \
            one_error_line(stderr)
        if "--json" in command:
            assert json.loads(stdout)["error"]["kind"] == "bad_input"
    before = sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*"))
    assert _contents(elsewhere / "targets" if root_linked else elsewhere) == files
    # A conversion does not use it either, and writes nothing there.
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "out", "--quiet")
    assert code == 0, stderr
    assert sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*")) == before and link.is_symlink()
    assert _contents(elsewhere / "targets" if root_linked else elsewhere) == files


def _owned_by_someone_else(path: Path, monkeypatch) -> int:
    """Make `path` another user's, and return its owner's id: given away when the tests run as
    root, else this process takes on another user id (for Speechport's own checks)."""
    if os.geteuid() == 0:
        os.chown(path, 4242, -1)
    else:
        real = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real + 4242)
    return os.stat(path).st_uid


def test_cache_clear_refuses_a_cache_folder_of_another_user(homes, tmp_path, run_cli, monkeypatch):
    cache, _ = homes
    files = _bystanders(cache / "targets")
    owner = _owned_by_someone_else(cache, monkeypatch)
    code, _, stderr = run_cli("cache", "clear")
    assert code == 2
    assert f"{cache}: the cache folder belongs to another user (uid {owner})" in one_error_line(stderr)
    assert _contents(cache / "targets") == files
    code, _, stderr = run_cli("cache", "info")
    assert code == 2 and "belongs to another user" in one_error_line(stderr)


def test_cache_clear_removes_only_entries_speechport_wrote(homes, tmp_path, run_cli):
    cache, _ = homes
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "out", "--quiet")
    assert code == 0, stderr
    written = entries(cache / "targets") + entries(cache / "digests")
    assert len(written) == 2
    written_bytes = sum(p.stat().st_size for p in written)
    precious = tmp_path / "precious.json"
    precious.write_text("{}")
    (cache / "targets" / "notes.txt").write_text("mine")
    (cache / "targets" / ("1" * 64 + ".json")).symlink_to(precious)  # named like an entry, a link out
    (cache / "digests" / ("2" * 64 + ".json")).mkdir()  # named like an entry, a folder
    code, stdout, stderr = run_cli("cache", "clear", "--json")
    assert code == 0, stderr
    removed = json.loads(stdout)
    assert (removed["removed_files"], removed["removed_bytes"]) == (2, written_bytes)
    assert not any(p.exists() for p in written)
    assert (cache / "targets" / "notes.txt").read_text() == "mine"
    assert (cache / "targets" / ("1" * 64 + ".json")).is_symlink() and precious.read_text() == "{}"
    assert (cache / "digests" / ("2" * 64 + ".json")).is_dir()


# -- the report's sha256 is the converted bytes' ----------------------------------------------------


def _edit_during_the_copy(monkeypatch, path: Path, how: str) -> list[str]:
    """The source changes once the first tensor is copied, in the middle of the conversion."""
    offset, nbytes = a_tensor_span(path)
    original = safetensors_writer._Copier.copy
    done: list[str] = []

    def copy(self, item, out, progress):
        original(self, item, out, progress)
        if not done:
            done.append(how)
            if how == "edited in place":
                edit_in_place(path, offset, bytes(255 - b for b in path.read_bytes()[offset:offset + min(nbytes, 64)]))
            else:  # another file of the same size takes its name
                replacement = path.with_name("replacement")
                replacement.write_bytes(path.read_bytes())
                edit_in_place(replacement, offset, b"\x00" * min(nbytes, 64))
                os.replace(replacement, path)

    monkeypatch.setattr(safetensors_writer._Copier, "copy", copy)
    return done


@pytest.mark.parametrize("how", ["edited in place", "replaced by rename"])
@pytest.mark.parametrize("cache", ["digest known", "hashed afresh", "--no-cache"])
def test_a_source_changed_while_it_is_converted_is_refused_with_nothing_written(cache, how, homes, source, tmp_path,
                                                                                 run_cli, monkeypatch):
    if cache == "digest known":
        code, summary, stderr = convert_json(run_cli, source, "--out", tmp_path / "first")
        assert code == 0 and summary["convert_detail"]["hash_from_cache"] is False, stderr
    done = _edit_during_the_copy(monkeypatch, source, how)
    out = tmp_path / "out"
    code, _, stderr = run_cli("convert", source, "--out", out, "--quiet", *(["--no-cache"] if cache == "--no-cache" else []))
    assert done == [how]
    assert code == 2
    line = one_error_line(stderr)
    assert f"{source}: {SOURCE_CHANGED}" in line and "nothing was written" in line
    assert not out.exists() and leftovers(tmp_path) == []
    # Converted again (the edit was once), unchanged meanwhile: the report's digest is the file's as
    # it is now (no stale digest was kept for it).
    code, _, stderr = run_cli("convert", source, "--out", out, "--quiet")
    assert code == 0, stderr
    assert report_of(out)["source"]["sha256"] == sha256(source)


def test_a_source_changed_between_prepare_and_convert_is_refused(homes, source, tmp_path):
    prepared = prepare(source)
    offset, _ = a_tensor_span(source)
    edit_in_place(source, offset, b"\x7f" * 8)
    with pytest.raises(BadInput, match=SOURCE_CHANGED):
        convert(prepared, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_a_file_changed_just_now_is_looked_at_once_its_change_time_has_settled(tmp_path, monkeypatch):
    """A write within one tick of the clock the change time comes from leaves it unchanged, so the
    first look at a file changed less than a tick ago waits out the rest of the tick."""
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"just written")
    ctime = path.stat().st_ctime_ns
    tick = hashing.COARSE_TIMESTAMP_TICK_NS if ctime % 1_000_000_000 == 0 else hashing.TIMESTAMP_TICK_NS
    clock = {"now": ctime + tick // 4}
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock["now"] += round(seconds * 1e9)

    monkeypatch.setattr(hashing, "_now_ns", lambda: clock["now"])
    monkeypatch.setattr(hashing, "_sleep", sleep)
    hashing.settled_stat(path)
    assert slept == [pytest.approx((tick - tick // 4) / 1e9)]
    slept.clear()
    hashing.settled_stat(path)  # settled now: no wait
    assert slept == []
    clock["now"] = ctime - 10 * tick  # stamped by a clock ahead of ours (a file server's): waiting cannot help
    hashing.settled_stat(path)
    assert slept == []


def test_a_file_still_being_written_is_refused_and_its_digest_not_kept(homes, tmp_path, monkeypatch):
    """Its change time never settles (the clock stands still just after it): a write in the same
    tick could go unseen, so the digest is not vouched for."""
    path = tmp_path / "busy.bin"
    path.write_bytes(b"being written")
    with monkeypatch.context() as still:
        still.setattr(hashing, "_now_ns", lambda: path.stat().st_ctime_ns + 1)
        still.setattr(hashing, "_sleep", lambda seconds: None)
        busy = BackgroundHash(path)
        assert busy.result() == hashlib.sha256(b"being written").hexdigest()
        with pytest.raises(BadInput, match=SOURCE_CHANGED):
            busy.confirm_unchanged()
    assert digest_cache.known_digest(digest_cache.identity(path, os.stat(path))) is None
    settled = BackgroundHash(path)  # once it rests: vouched for, and kept
    assert settled.confirm_unchanged() == busy.result()
    assert digest_cache.known_digest(digest_cache.identity(path, os.stat(path))) == busy.result()


# -- the digest cache: signed, and off when the environment says so ---------------------------------


def _digest_entry(cache: Path) -> Path:
    [entry] = entries(cache / "digests")
    return entry


def test_a_digest_entry_edited_to_another_valid_digest_is_not_used(homes, source, tmp_path, run_cli):
    cache, _ = homes
    assert convert_json(run_cli, source, "--out", tmp_path / "first")[0] == 0
    entry = _digest_entry(cache)
    edited = json.loads(entry.read_text())
    edited["sha256"] = hashlib.sha256(b"other bytes").hexdigest()
    entry.write_text(json.dumps(edited))
    code, summary, stderr = convert_json(run_cli, source, "--out", tmp_path / "again")
    assert code == 0, stderr
    assert summary["convert_detail"]["hash_from_cache"] is False
    assert report_of(tmp_path / "again")["source"]["sha256"] == sha256(source)
    assert json.loads(entry.read_text())["sha256"] == sha256(source)  # rebuilt


def test_the_no_cache_variable_means_what_the_flag_means(homes, source, tmp_path, run_cli, monkeypatch):
    cache, _ = homes
    assert convert_json(run_cli, source, "--out", tmp_path / "first")[0] == 0
    # An entry signed with the user's key, naming a digest that is not the file's: read, it would
    # show in the report.
    entry = _digest_entry(cache)
    signed = json.loads(entry.read_text())
    signed.pop(SIGNATURE)
    signed["sha256"] = "ab" * 32
    entry.write_text(json.dumps({**signed, SIGNATURE: cache_store.sign(cache_store.signing_key(), signed)}))
    held = sorted((p.name, p.read_bytes()) for p in cache.rglob("*") if p.is_file())
    for way in ("flag", "variable"):
        if way == "variable":
            monkeypatch.setenv(NO_CACHE_ENV, "1")
        out = tmp_path / way
        code, summary, stderr = convert_json(run_cli, source, "--out", out, *(["--no-cache"] if way == "flag" else []))
        assert code == 0, stderr
        assert summary["convert_detail"]["hash_from_cache"] is False
        assert summary["convert_detail"]["targets_built"] == 1
        assert report_of(out)["source"]["sha256"] == sha256(source)
        assert sorted((p.name, p.read_bytes()) for p in cache.rglob("*") if p.is_file()) == held, f"the {way} wrote"
    monkeypatch.delenv(NO_CACHE_ENV)
    code, summary, _ = convert_json(run_cli, source, "--out", tmp_path / "used")
    assert summary["convert_detail"]["hash_from_cache"] is True  # the entry above is read when allowed
    assert report_of(tmp_path / "used")["source"]["sha256"] == "ab" * 32


# -- target entries: signed with a key of the user's own --------------------------------------------


def _target_entry(cache: Path) -> Path:
    [entry] = entries(cache / "targets")
    return entry


def test_a_target_entry_edited_with_its_checksum_recomputed_is_not_used(homes, tmp_path, run_cli):
    cache, _ = homes
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "first", "--quiet")
    assert code == 0, stderr
    path = _target_entry(cache)
    entry = json.loads(path.read_text())
    entry["config"]["layer_norm_eps"] = entry["diff"]["layer_norm_eps"] = 0.5
    config = json.loads(entry["files"]["config.json"])
    config["layer_norm_eps"] = 0.5
    entry["files"]["config.json"] = json.dumps(config, indent=2, sort_keys=True) + "\n"
    # Every checksum anyone can compute without the user's key.
    body = {k: v for k, v in entry.items() if k != SIGNATURE}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    for forged in (hashlib.sha256(canonical).hexdigest(), cache_store.sign(b"\x00" * KEY_BYTES, body)):
        path.write_text(json.dumps({**body, SIGNATURE: forged}))
        builds = CACHE.builds
        out = tmp_path / f"again-{forged[:8]}"
        code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--quiet")
        assert code == 0, stderr
        assert CACHE.builds == builds + 1, "the forged entry was used"
        assert json.loads((out / "config.json").read_text())["layer_norm_eps"] != 0.5
        assert (out / "config.json").read_bytes() == (tmp_path / "first" / "config.json").read_bytes()


def test_a_cache_made_under_another_key_is_not_used(homes, source, tmp_path, run_cli, monkeypatch):
    """A cache copied from another account or machine, or shared with others, is rebuilt, never read."""
    cache, data = homes
    assert convert_json(run_cli, source, "--out", tmp_path / "first")[0] == 0
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "another-user-data"))
    code, summary, stderr = convert_json(run_cli, source, "--out", tmp_path / "again")
    assert code == 0, stderr
    assert summary["convert_detail"]["hash_from_cache"] is False and summary["convert_detail"]["targets_built"] == 1
    monkeypatch.setenv("XDG_DATA_HOME", str(data.parent))  # entries of the first key were replaced
    code, summary, stderr = convert_json(run_cli, source, "--out", tmp_path / "third")
    assert summary["convert_detail"]["hash_from_cache"] is False and summary["convert_detail"]["targets_built"] == 1


def test_the_key_is_made_once_whole_and_private(homes):
    _, data = homes
    key = cache_store.signing_key()
    path = cache_store.key_path()
    info = path.stat()
    assert path.parent == data and len(key) == KEY_BYTES and path.read_bytes() == key
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert cache_store.signing_key() == key and os.listdir(data) == [cache_store.KEY_NAME]


def test_a_key_another_process_made_first_is_kept(homes, monkeypatch):
    _, data = homes
    theirs = os.urandom(KEY_BYTES)
    real_link = os.link

    def link(source, target, **kwargs):  # another process links its key in just before this one
        path = Path(target).with_name("theirs.tmp")
        path.write_bytes(theirs)
        path.chmod(0o600)
        real_link(path, target)
        path.unlink()
        return real_link(source, target, **kwargs)

    monkeypatch.setattr(os, "link", link)
    assert cache_store.signing_key() == theirs
    assert os.listdir(data) == [cache_store.KEY_NAME]


KEY_PROBLEMS = {
    "a symbolic link": ("is a symbolic link", lambda key, other: key.symlink_to(other)),
    "readable by others": ("may be read or written by other users", lambda key, other: (
        key.write_bytes(os.urandom(KEY_BYTES)), key.chmod(0o644))),
    "cut short": (f"holds 0 bytes, not a key's {KEY_BYTES}", lambda key, other: (key.write_bytes(b""), key.chmod(0o600))),
    "a folder": ("is a folder, not a regular file", lambda key, other: key.mkdir()),
}


@pytest.mark.parametrize("problem", list(KEY_PROBLEMS))
def test_an_unusable_key_turns_the_cache_off_and_nothing_fails(problem, homes, source, tmp_path, run_cli):
    cache, data = homes
    phrase, make = KEY_PROBLEMS[problem]
    other = tmp_path / "someone-elses-key"
    other.write_bytes(os.urandom(KEY_BYTES))
    other.chmod(0o600)
    data.mkdir(parents=True)
    make(data / cache_store.KEY_NAME, other)
    for run in ("first", "second"):
        code, summary, stderr = convert_json(run_cli, source, "--out", tmp_path / run)
        assert code == 0, stderr
        assert summary["convert_detail"]["targets_built"] == 1 and summary["convert_detail"]["hash_from_cache"] is False
    assert entries(cache / "targets") == entries(cache / "digests") == []
    code, stdout, _ = run_cli("cache", "info", "--json")
    info = json.loads(stdout)
    assert code == 0 and info["enabled"] is False and phrase in info["key_problem"]
    assert other.stat().st_size == KEY_BYTES


def test_a_key_that_cannot_be_made_turns_the_cache_off(homes, source, tmp_path, run_cli, monkeypatch):
    cache, _ = homes
    blocker = tmp_path / "data-is-a-file"
    blocker.write_text("where the data folder would be")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    for run in ("first", "second"):
        code, summary, stderr = convert_json(run_cli, source, "--out", tmp_path / run)
        assert code == 0, stderr
        assert summary["convert_detail"]["targets_built"] == 1 and summary["convert_detail"]["hash_from_cache"] is False
    assert not cache.exists() and blocker.read_text() == "where the data folder would be"
    code, stdout, _ = run_cli("cache", "info", "--json")
    info = json.loads(stdout)
    assert code == 0 and info["enabled"] is False and info["key_problem"].startswith(f"the cache key {blocker}")


def test_a_key_of_another_user_turns_the_cache_off(homes, source, tmp_path, run_cli, monkeypatch):
    cache, _ = homes
    cache_store.signing_key()
    owner = _owned_by_someone_else(cache_store.key_path(), monkeypatch)
    code, summary, stderr = convert_json(run_cli, source, "--out", tmp_path / "out")
    assert code == 0, stderr
    assert summary["convert_detail"]["targets_built"] == 1 and entries(cache / "targets") == []
    assert f"belongs to another user (uid {owner})" in cache_store.key_problem()


# -- FIFOs never block a run -----------------------------------------------------------------------


def run_speechport(*args) -> subprocess.CompletedProcess:
    """The CLI in a child process (with this test's environment): a hang would end in TimeoutExpired."""
    return subprocess.run([sys.executable, "-m", "speechport", *map(str, args)], capture_output=True, text=True,
                          timeout=HANG_GUARD_S)


@pytest.mark.parametrize("where", ["a target entry", "a digest entry", "the key", "a lock beside --out"])
def test_a_fifo_never_blocks_a_conversion(where, homes, source, tmp_path, run_cli):
    cache, data = homes
    code, _, stderr = run_cli("convert", source, "--out", tmp_path / "first", "--quiet")
    assert code == 0, stderr
    fifo = {
        "a target entry": lambda: _target_entry(cache),
        "a digest entry": lambda: _digest_entry(cache),
        "the key": cache_store.key_path,
        "a lock beside --out": lambda: tmp_path / ".out.partial-abcdefgh.lock",
    }[where]()
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    done = run_speechport("convert", source, "--out", tmp_path / "out", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (tmp_path / "out" / "model.safetensors").is_file()
    if where == "a target entry":  # rebuilt in its place
        assert summary["convert_detail"]["targets_built"] == 1 and fifo.is_file()
    elif where == "a digest entry":
        assert summary["convert_detail"]["hash_from_cache"] is False and fifo.is_file()
    else:  # not Speechport's to remove
        assert stat.S_ISFIFO(fifo.stat().st_mode)


# -- entries too large to be one -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["target", "digest"])
def test_an_entry_larger_than_the_limit_is_never_read(kind, homes, source, tmp_path):
    cache, _ = homes
    prepare(source).hasher.result()
    path = _target_entry(cache) if kind == "target" else _digest_entry(cache)
    os.truncate(path, 6 << 30)  # sparse: 6 GiB that take no room
    assert path.stat().st_size > MAX_ENTRY_BYTES
    builds = CACHE.builds
    prepared = prepare(source)
    assert prepared.hasher.result() == sha256(source)
    if kind == "target":
        assert CACHE.builds == builds + 1 and prepared.plan.ok
    else:
        assert not prepared.hasher.from_cache
    assert path.stat().st_size < MAX_ENTRY_BYTES  # replaced by a real entry


# -- temporary files left by killed runs ------------------------------------------------------------

HOLD_A_WRITERS_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b'{"half": ')
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()  # until killed
"""


def test_a_temporary_file_of_a_killed_writer_is_removed_and_a_live_ones_kept(homes, source, tmp_path, run_cli):
    cache, _ = homes
    targets = cache / "targets"
    targets.mkdir(parents=True)
    abandoned = targets / f".{'a' * 64}.abcdefgh.tmp"  # what a run killed between write and rename leaves
    abandoned.write_bytes(b'{"half": ')
    legacy = cache / "digests" / ".digest.k3j2h1g0.tmp"  # what an earlier version left
    legacy.parent.mkdir()
    legacy.write_bytes(b"{")
    alive = targets / f".{'b' * 64}.ijklmnop.tmp"
    writer = subprocess.Popen([sys.executable, "-c", HOLD_A_WRITERS_LOCK, str(alive)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        code, stdout, _ = run_cli("cache", "info", "--json")
        assert code == 0 and json.loads(stdout)["targets"] == 0 and json.loads(stdout)["digests"] == 0
        code, _, stderr = run_cli("convert", source, "--out", tmp_path / "out", "--quiet")  # writes entries
        assert code == 0, stderr
        assert not abandoned.exists() and not legacy.exists()
        assert alive.read_bytes() == b'{"half": '
        code, stdout, _ = run_cli("cache", "info", "--json")
        assert json.loads(stdout)["targets"] == 1 and json.loads(stdout)["digests"] == 1
        code, stdout, _ = run_cli("cache", "clear", "--json")
        assert code == 0 and json.loads(stdout)["removed_files"] == 2 and alive.exists()
    finally:
        writer.kill()
        writer.wait(timeout=HANG_GUARD_S)
    # Killed, however hard: the kernel let its lock go, and the file is a leftover like any other.
    code, stdout, _ = run_cli("cache", "clear", "--json")
    assert code == 0 and json.loads(stdout)["removed_files"] == 1 and not alive.exists()
    assert sorted(os.listdir(targets)) == []


def test_flock_is_what_tells_a_live_writer(homes):
    """The writer's lock is what keeps its file: the same file, unlocked, is removed."""
    cache, _ = homes
    folder = cache / "digests"
    folder.mkdir(parents=True)
    path = folder / f".{'c' * 64}.qrstuvwx.tmp"
    path.write_bytes(b"{")
    with path.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        cache_store.tidy(folder)
        assert path.exists()
    cache_store.tidy(folder)
    assert not path.exists()


def test_digest_entries_are_keyed_by_the_identity_of_the_file_read(homes, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"bytes")
    BackgroundHash(path).result()
    found = digest_cache.identity(path, os.stat(path))
    assert digest_cache.known_digest(found) == hashlib.sha256(b"bytes").hexdigest()
    assert digest_cache.known_digest({**found, "inode": found["inode"] + 1}) is None
