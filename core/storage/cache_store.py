"""The files of Speechport's user cache: where they are, how they are read, written, signed,
tidied and cleared.

The cache (`$XDG_CACHE_HOME/speechport/`, else `~/.cache/speechport/`) holds small JSON entries:
built target models (`targets/`, `core.target_cache`) and digests of checkpoints already hashed
(`digests/`, `core.digest_cache`), each named `<64 hex digits>.json`. Nothing else in it is ever
read, counted or removed, and nothing is done through a symbolic link: a cache folder that is a
link, or that belongs to another user, is not used, and `speechport cache` refuses it.

Every entry is signed (HMAC-SHA256) with a key of the user's own, kept outside the cache
(`$XDG_DATA_HOME/speechport/cache.key`, else `~/.local/share/speechport/cache.key`): 32 random
bytes, made once, readable by the user alone. An entry whose signature does not match is not
used — one edited in place by any tool, one copied from another machine or account, one in a
cache folder shared or synced with others. Without a usable key (a link, a FIFO, another user's
file, one others may read, the wrong size) the cache is not used at all; nothing fails. The key
does not guard against whoever can write the user's data folder or Speechport's installed code:
they can sign entries, or change what reads them.

Reading never blocks and never takes more than `MAX_ENTRY_BYTES`: a path is opened without
following a link and without waiting on a FIFO's writer, and only a regular file of at most that
size is read. An entry is written to a temporary file beside it (`.<key>.<8 characters>.tmp`),
`flock`-ed by its writer until it is renamed into place; the kernel releases the lock when the
writer dies, however it dies. So a temporary file whose lock can be taken was left by a run that is
gone, and is removed the next time an entry is written or the cache is cleared, while a live
writer's is left alone.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import BadInput
from .files import describe_mode

try:
    import fcntl
except ImportError:  # without flock a temporary file's writer cannot be told alive or gone: left alone
    fcntl = None  # type: ignore[assignment]

CACHE_ENV = "XDG_CACHE_HOME"
NO_CACHE_ENV = "SPEECHPORT_NO_CACHE"  # set (to anything but "" or "0"): nothing read from or written to the cache
DATA_ENV = "XDG_DATA_HOME"
TARGETS = "targets"  # folders of the cache, one per kind of entry
DIGESTS = "digests"
KEY_NAME = "cache.key"
KEY_BYTES = 32
MAX_ENTRY_BYTES = 16 << 20  # a 600M model's target entry is 57 KiB: anything this large is not an entry
SIGNATURE = "hmac_sha256"
ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.json")
# `.<entry key>.<token>.tmp`; `.digest.<token>.tmp` is what earlier versions wrote for digests.
TEMPORARY_NAME = re.compile(r"\.(?:[0-9a-f]{64}|digest)\.[a-z0-9_]{8}\.tmp")

_READ = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class CacheSwitch:
    """Whether the user cache is used at all (targets and digests alike): `--no-cache` turns it off for
    a command, `SPEECHPORT_NO_CACHE` for a process."""

    def __init__(self):
        self._off = 0

    def is_enabled(self) -> bool:
        return self._off == 0 and os.environ.get(NO_CACHE_ENV, "") in ("", "0")

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Nothing read from or written to the cache until the block ends."""
        self._off += 1
        try:
            yield
        finally:
            self._off -= 1


SWITCH = CacheSwitch()


def cache_root() -> Path:
    """Speechport's folder in the user cache (XDG: $XDG_CACHE_HOME, else ~/.cache)."""
    return _xdg(CACHE_ENV, ".cache") / "speechport"


def data_root() -> Path:
    """Speechport's folder in the user's data (XDG: $XDG_DATA_HOME, else ~/.local/share)."""
    return _xdg(DATA_ENV, ".local/share") / "speechport"


def key_path() -> Path:
    return data_root() / KEY_NAME


def _xdg(variable: str, default: str) -> Path:
    base = os.environ.get(variable) or ""
    return Path(base) if base and Path(base).is_absolute() else Path.home() / default


# -- the cache's folders -------------------------------------------------------------------------


def folder_problem(folder: Path) -> str | None:
    """Why Speechport must not use `folder` (the cache's root or a folder in it); None when it may,
    or when it does not exist yet (it is then made, the user's own)."""
    root = cache_root()
    chain = [root, folder] if root in folder.parents else [folder]
    for path in chain:
        try:
            info = os.lstat(path)
        except OSError:
            return None  # missing (or under a file): nothing there to misuse
        problem = _folder_info_problem(path, info)
        if problem:
            return problem
    return None


def _folder_info_problem(path: Path, info: os.stat_result) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return (f"{path}: the cache folder is a symbolic link, which Speechport never follows; "
                "remove the link (Speechport makes the folder again when it needs it)")
    if not stat.S_ISDIR(info.st_mode):
        return f"{path}: the cache folder is {describe_mode(info.st_mode)}, not a folder; remove it"
    if info.st_uid != os.geteuid():
        return (f"{path}: the cache folder belongs to another user (uid {info.st_uid}); Speechport uses only "
                f"a cache folder of your own (remove it, or set {CACHE_ENV} to a folder of yours)")
    return None


def _open_folder(path: Path, parent_fd: int | None = None) -> int | None:
    """A descriptor of the cache folder `path` (None when there is none); BadInput when it must not be used.
    Opened without following a link, and checked through the descriptor, so what is checked is what is used."""
    try:
        fd = os.open(path.name if parent_fd is not None else path, _FOLDER, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a link, or not a folder: say which
            try:
                info = os.lstat(path)
            except OSError:
                return None
            raise BadInput(_folder_info_problem(path, info) or f"{path}: the cache folder cannot be opened") from None
        raise BadInput(f"{path}: the cache folder cannot be opened ({exc.strerror or exc})") from None
    problem = _folder_info_problem(path, os.fstat(fd))
    if problem:
        os.close(fd)
        raise BadInput(problem)
    return fd


# -- the key -------------------------------------------------------------------------------------


def signing_key() -> bytes | None:
    """The user's key, made on first use; None when there is no usable one (the cache is then not used)."""
    return _load_key(create=True)[0]


def key_problem() -> str | None:
    """Why the cache is not used for want of a key; None when the key is usable or not made yet."""
    return _load_key(create=False)[1]


def _load_key(create: bool) -> tuple[bytes | None, str | None]:
    path = key_path()
    for _ in range(2):
        try:
            fd = os.open(path, _READ)
        except FileNotFoundError:
            if not create:
                return None, None
            problem = _create_key(path)
            if problem:
                return None, problem
            continue  # read what is there now: ours, or a key another process made first
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None, _key_sentence(path, "is a symbolic link")
            return None, _key_sentence(path, f"cannot be read ({exc.strerror or exc})")
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None, _key_sentence(path, f"is {describe_mode(info.st_mode)}, not a regular file")
            if info.st_uid != os.geteuid():
                return None, _key_sentence(path, f"belongs to another user (uid {info.st_uid})")
            if info.st_mode & 0o077:
                return None, _key_sentence(path, f"may be read or written by other users (mode {info.st_mode & 0o777:o})")
            key = os.read(fd, KEY_BYTES + 1)
        except OSError as exc:
            return None, _key_sentence(path, f"cannot be read ({exc.strerror or exc})")
        finally:
            os.close(fd)
        if len(key) != KEY_BYTES:
            return None, _key_sentence(path, f"holds {len(key)} bytes, not a key's {KEY_BYTES}")
        return key, None
    return None, f"the cache key {path} cannot be made"


def _key_sentence(path: Path, what: str) -> str:
    """Why the key at `path` is not used (the cache is then not used): what is wrong, and the way out."""
    return f"the cache key {path} {what}; remove it and a new one is made"


def _create_key(path: Path) -> str | None:
    """Make the key: written whole under another name, then linked into place, so that no reader
    ever sees part of it, and a key another process made meanwhile is kept, not replaced."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.parent / f".{KEY_NAME}.{os.urandom(4).hex()}.tmp"
        fd = os.open(temporary, _CREATE, 0o600)
        try:
            try:
                _write_all(fd, os.urandom(KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            with suppress(FileExistsError):
                os.link(temporary, path, follow_symlinks=False)
        finally:
            with suppress(OSError):
                os.unlink(temporary)
    except OSError as exc:
        return f"the cache key {path} cannot be made ({exc.strerror or exc})"
    return None


def sign(key: bytes, entry: dict) -> str:
    """The entry's signature: HMAC-SHA256 of its canonical JSON (keys sorted, no spaces)."""
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


# -- entries -------------------------------------------------------------------------------------


def read_signed(path: Path) -> dict | None:
    """The entry at `path` without its signature, if it is a regular file of at most
    `MAX_ENTRY_BYTES` in a usable cache folder, holds a JSON object and is signed with the user's
    key; None otherwise (missing, a link, a FIFO, too large, corrupt, unsigned, signed elsewhere)."""
    if folder_problem(path.parent) is not None:
        return None
    key = signing_key()
    if key is None:
        return None
    data = read_regular(path, MAX_ENTRY_BYTES)
    if data is None:
        return None
    try:
        entry = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(entry, dict):
        return None
    signature = entry.pop(SIGNATURE, None)
    if not isinstance(signature, str) or not hmac.compare_digest(signature, sign(key, entry)):
        return None
    return entry


def read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of `path` if it is a regular file (not followed through a link, never waited on)
    of at most `limit` bytes; None otherwise."""
    try:
        fd = os.open(path, _READ)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= limit:  # it may have grown since fstat
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if size > limit else b"".join(chunks)


def write_signed(path: Path, entry: dict) -> None:
    """Sign `entry` and write it to `path` atomically: a reader sees the old entry, the new one or
    none, never half of one. A cache that cannot be written only costs speed next time."""
    key = signing_key()
    if key is None:
        return
    folder = path.parent
    if folder_problem(folder) is not None:  # before making anything: never a folder through a link
        return
    with suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder_problem(folder) is not None:
        return
    tidy(folder)
    plain = json.loads(json.dumps(entry))  # signed as it will be read back
    text = json.dumps({**plain, SIGNATURE: sign(key, plain)}, sort_keys=True, separators=(",", ":")).encode()
    temporary = folder / f".{path.stem}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(temporary, _CREATE, 0o600)
    except OSError:
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until the rename: the file is alive
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise  # a tidy-up took it for abandoned and removes it: give this entry up
                # no flock on this filesystem: a tidy-up cannot take the lock either, so it keeps the file
        _write_all(fd, text)
        os.fsync(fd)
        os.replace(temporary, path)
    except OSError:
        with suppress(OSError):
            os.unlink(temporary)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- leftovers, what the cache holds, clearing it --------------------------------------------------


def tidy(folder: Path) -> None:
    """Remove the temporary files runs that are gone left in `folder` (see the module's docstring)."""
    try:
        fd = _open_folder(folder)
    except BadInput:
        return
    if fd is None:
        return
    try:
        for name in os.listdir(fd):
            if TEMPORARY_NAME.fullmatch(name):
                _remove_abandoned(fd, name)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_abandoned(folder_fd: int, name: str) -> int | None:
    """Remove the temporary file `name` if its writer is gone: its size, or None when it is kept."""
    if fcntl is None:
        return None
    try:
        fd = os.open(name, _READ, dir_fd=folder_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None  # held: its writer is alive
        there = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        if (there.st_dev, there.st_ino) != (info.st_dev, info.st_ino):
            return None  # renamed into place, or replaced, since it was listed
        os.unlink(name, dir_fd=folder_fd)
        return info.st_size
    except OSError:
        return None
    finally:
        os.close(fd)


def summary() -> dict:
    """What the cache holds: {"targets", "target_bytes", "digests", "digest_bytes"} (entries only,
    never temporary or foreign files). BadInput when a cache folder must not be used."""
    held = {}
    for kind, prefix in ((TARGETS, "target"), (DIGESTS, "digest")):
        count = size = 0
        for _, _, nbytes in _entries(kind):
            count += 1
            size += nbytes
        held[f"{prefix}s"], held[f"{prefix}_bytes"] = count, size
    return held


def clear() -> tuple[int, int]:
    """Remove every entry and every abandoned temporary file of the cache: (files, bytes) removed.
    Only names Speechport writes are removed, only regular files, never through a link; BadInput
    when a cache folder must not be used (nothing is removed then)."""
    for kind in (TARGETS, DIGESTS):  # every folder checked before anything is removed
        list(_entries(kind))
    count = size = 0
    for kind in (TARGETS, DIGESTS):
        for folder_fd, name, nbytes in _entries(kind, temporaries=True):
            if TEMPORARY_NAME.fullmatch(name):
                removed = _remove_abandoned(folder_fd, name)
                if removed is None:
                    continue
                nbytes = removed
            else:
                try:
                    os.unlink(name, dir_fd=folder_fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise BadInput(f"{cache_root() / kind / name}: cannot be removed ({exc.strerror or exc})") from None
            count += 1
            size += nbytes
    return count, size


def _entries(kind: str, temporaries: bool = False):
    """(folder descriptor, name, bytes) of each entry of the cache folder `kind`, a regular file
    named as Speechport names them (and each temporary file, with `temporaries`)."""
    root = cache_root()
    root_fd = _open_folder(root)
    if root_fd is None:
        return
    try:
        folder_fd = _open_folder(root / kind, root_fd)
        if folder_fd is None:
            return
        try:
            with os.scandir(folder_fd) as listing:
                found = list(listing)
            for item in found:
                if not (ENTRY_NAME.fullmatch(item.name) or (temporaries and TEMPORARY_NAME.fullmatch(item.name))):
                    continue
                try:
                    if not item.is_file(follow_symlinks=False):
                        continue
                    nbytes = item.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
                yield folder_fd, item.name, nbytes
        finally:
            os.close(folder_fd)
    finally:
        os.close(root_fd)
