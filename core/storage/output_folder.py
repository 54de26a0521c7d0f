"""Writing an output folder atomically, without ever destroying what a conversion reads.

Everything goes into a hidden sibling folder (`.NAME.partial-TOKEN`) that takes the output's
place only once it is complete, so an error, a cancel or a signal leaves nothing behind. A
non-empty folder is replaced only with the user's consent (`force`), only once the new folder is
complete, and in one step where the system can (Linux `renameat2(RENAME_EXCHANGE)`): the output
path holds the old folder or the new one at every moment, never neither.

A process killed outright (SIGKILL, power loss) cannot tidy up after itself. So each staged
folder has a lock file beside it (`.NAME.partial-TOKEN.lock`), created and `flock`-ed before the
folder and removed after it; the kernel drops the lock when its process dies, however it dies, and
a reused process id cannot hold it. The next run aimed at the same output removes every staged
folder whose lock it can take, or that has none, and, where a replacement without the one-step
swap was cut between its two renames, puts the old folder back (`.NAME.replaced-TOKEN`). Only
names of exactly these forms, for that output's name, are ever removed; a lock that is not a regular
file (a FIFO, a link) was made by no run, and is never opened beyond a look: it and its folders stay.

An output folder that is, or holds, one of the conversion's inputs (the checkpoint, the base model
folder, a config, mapping or labels file, a verification clip) is refused, force or not: replacing
it would destroy what is being converted. Paths are compared once resolved (symbolic links, `..`,
`.`), and by identity (device and inode), which also sees through bind mounts.

A symbolic link given as the output folder is written through: the new folder replaces the link's
target, and the link keeps pointing at it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from pathlib import Path

from ..errors import BadInput, OutputNotEmpty

try:
    import fcntl
except ImportError:  # Windows: a killed run's folders are left for the user to remove
    fcntl = None  # type: ignore[assignment]

# What a run puts beside an output folder NAME; TOKEN is 8 characters of [a-z0-9_] (tempfile's
# alphabet, so folders left by earlier versions are recognised too).
STAGED_MARK = ".partial-"
BACKUP_MARK = ".replaced-"
PROBE_MARK = ".probe-"
LOCK_SUFFIX = ".lock"
TOKEN_PATTERN = "[a-z0-9_]{8}"

Protected = Sequence[tuple[str, Path]]  # (what it is, path) of every input the output must not hold


def staged_name(name: str, token: str) -> str:
    return f".{name}{STAGED_MARK}{token}"


def lock_name(name: str, token: str) -> str:
    return staged_name(name, token) + LOCK_SUFFIX


def backup_name(name: str, token: str) -> str:
    return f".{name}{BACKUP_MARK}{token}"


def probe_name(name: str, token: str) -> str:
    return f".{name}{PROBE_MARK}{token}"


def leftover_pattern(name: str) -> re.Pattern:
    """What a run writing NAME may leave beside it (`fullmatch`): groups mark, token, lock suffix."""
    marks = "|".join(re.escape(mark) for mark in (STAGED_MARK, BACKUP_MARK, PROBE_MARK))
    return re.compile(rf"\.{re.escape(name)}({marks})({TOKEN_PATTERN})({re.escape(LOCK_SUFFIX)})?")


def _new_token() -> str:
    return secrets.token_hex(4)


# -- inputs the output folder must not hold ------------------------------------------------------


def protected_inputs(
    *,
    source: str | os.PathLike | None = None,
    base_model: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    mapping: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    clips: Iterable[str | os.PathLike] = (),
    dictionary: str | os.PathLike | None = None,
) -> list[tuple[str, Path]]:
    """The conversion's inputs, each with what it is, for `check_output_path(protected=...)`."""
    named = [
        ("the source checkpoint", source),
        ("the base model file" if base_model and Path(base_model).expanduser().is_file() else "the base model folder",
         base_model),
        ("the config file", config),
        ("the mapping file", mapping),
        ("the labels file", labels),
        ("the dictionary file", dictionary),
    ]
    named += [("the verification clip", clip) for clip in clips]
    return [(what, Path(path).expanduser()) for what, path in named if path]


def _refuse_inputs(out: Path, target: Path, protected: Protected) -> None:
    try:
        target_id = _identity(target)
    except OSError:
        target_id = None
    for what, path in protected:
        real = Path(os.path.realpath(path))
        chain = [real, *real.parents]
        same = real == target
        if target not in chain and (target_id is None or target_id not in _identities(chain)):
            continue
        if not same and target_id is not None:
            with suppress(OSError):
                same = _identity(real) == target_id
        relation = "is" if same else "holds"
        raise BadInput(
            f"{out}: refused as the output folder: it {relation} {what} ({real}), "
            "which converting into it could destroy; choose another folder"
        )


def _identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _identities(paths: Iterable[Path]) -> set[tuple[int, int]]:
    found = set()
    for path in paths:
        with suppress(OSError):
            found.add(_identity(path))
    return found


# -- checking ------------------------------------------------------------------------------------


def resolved_output(out: str | Path) -> Path:
    """Where the folder is really written: `out` with every symbolic link and `..` resolved."""
    out = Path(out).expanduser().absolute()
    target = Path(os.path.realpath(out))
    if target.is_symlink():
        raise BadInput(f"{out}: the symbolic links lead round in a loop; choose another output folder")
    if target.parent == target:
        raise BadInput(f"{out}: the root folder cannot be the output folder")
    return target


def check_output_path(out: str | Path, force: bool, protected: Protected = ()) -> Path:
    """Refuse unusable output paths before any work is done; returns the absolute path.

    `protected` names the conversion's inputs (`protected_inputs`): an output folder that is or
    holds one is refused, with or without `force`. A usable path is also tidied of what killed
    runs left beside it (see the module's docstring).
    """
    out = Path(out).expanduser().absolute()
    target = resolved_output(out)
    _refuse_inputs(out, target, protected)
    tidy(target)
    try:
        if target.exists() and not target.is_dir():
            raise BadInput(f"{out}: the output path is an existing file, not a folder")
        if target.is_dir() and any(target.iterdir()) and not force:
            raise OutputNotEmpty(str(out))
    except OSError as exc:
        raise BadInput(f"{out}: the output folder cannot be read ({exc.strerror or exc})") from None
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"{ancestor}: is a file, so {out} cannot be created")
    _probe_writable(ancestor, target.name, out)
    return out


def _probe_writable(folder: Path, name: str, out: Path) -> None:
    # Permission bits do not tell the whole story (read-only mounts, pseudo filesystems, root),
    # so try what the conversion will do: create a folder there, then remove it.
    for _ in range(8):
        probe = folder / probe_name(name, _new_token())
        try:
            os.mkdir(probe, 0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BadInput(f"{folder}: not writable ({exc.strerror or exc}), so {out} cannot be created") from None
        with suppress(OSError):  # a tidy-up beside it may have removed the empty probe already
            os.rmdir(probe)
        return


# -- tidying what killed runs left ---------------------------------------------------------------


def tidy(target: Path) -> None:
    """Remove what runs that are gone left beside the output folder `target` (a resolved path)."""
    if fcntl is None:
        return
    parent, name = target.parent, target.name
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    pattern = leftover_pattern(name)
    tokens = set()
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        mark, token, lock = match.groups()
        if mark == PROBE_MARK:
            if not lock:
                with suppress(OSError):  # only ever empty, so rmdir cannot remove anything else
                    os.rmdir(parent / entry)
        elif mark == STAGED_MARK or not lock:
            tokens.add(token)
    for token in sorted(tokens):
        _tidy_run(target, token)


def _tidy_run(target: Path, token: str) -> None:
    parent, name = target.parent, target.name
    lock = parent / lock_name(name, token)
    try:
        # Never waits on a FIFO's writer nor follows a link: only a regular file is a run's lock.
        fd = os.open(lock, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        fd = None  # a run's lock outlives its folders, so without one its run is over
    except OSError:
        return  # cannot tell whether its run is alive: leave it
    try:
        if fd is not None:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return  # not a lock any run made: leave it, and the folders of its name
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return  # held: its run is alive
            if not _same_file(fd, lock):
                return
        _remove(parent / staged_name(name, token))
        backup = parent / backup_name(name, token)
        if os.path.lexists(backup):
            if os.path.lexists(target):
                _remove(backup)
            else:  # killed between setting the old folder aside and moving the new one in
                with suppress(OSError):
                    os.rename(backup, target)
        if fd is not None:
            with suppress(OSError):
                os.unlink(lock)
    finally:
        if fd is not None:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _take_lock(parent: Path, name: str) -> tuple[str, int | None]:
    """A fresh token whose lock file this process holds (None as the lock where there is no flock)."""
    for _ in range(16):
        token = _new_token()
        if fcntl is None:
            return token, None
        path = parent / lock_name(name, token)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        except FileExistsError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, path):
                return token, fd
        except BlockingIOError:
            pass
        # A tidy-up took the lock between its creation and ours, as if its run were gone; it
        # removes the file, and this run picks another name.
        os.close(fd)
    raise OSError(errno.EEXIST, "no free name for the staged folder", str(parent))


def _remove(path: Path) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        with suppress(FileNotFoundError):
            os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


# -- exchanging two folders in one step ----------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}  # asm-generic/unistd.h and arch/x86 syscall_64.tbl
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


@functools.cache
def _renameat2() -> Callable[[bytes, bytes, int], int] | None:
    """renameat2(2), from glibc where it has it (2.28+), else as a raw system call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        function.restype = ctypes.c_int
        return lambda old, new, flags: function(_AT_FDCWD, old, _AT_FDCWD, new, flags)
    return _renameat2_syscall(libc)


def _renameat2_syscall(libc) -> Callable[[bytes, bytes, int], int] | None:
    number = _SYS_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    return lambda old, new, flags: syscall(
        ctypes.c_long(number), ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(old),
        ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(new), ctypes.c_uint(flags),
    )


def exchange_folders(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step; False where the system or filesystem cannot."""
    function = _renameat2()
    if function is None:
        return False
    ctypes.set_errno(0)
    if function(os.fsencode(first), os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


# -- the staged folder ---------------------------------------------------------------------------


class StagedFolder:
    """A hidden sibling of `out` that becomes `out` on `commit()`; removed on any failure.

    An `OSError` while the folder is written (a full disk, a quota, an I/O error) leaves the
    `with` block as a `BadInput` that says so, once the staged folder is gone.
    """

    def __init__(self, out: str | Path, force: bool = False, protected: Protected = ()):
        self.out = check_output_path(out, force, protected)
        self.target = resolved_output(self.out)
        self.force = force
        self.committed = False
        self._old: Path | None = None  # the replaced folder, until it is removed
        self._lock: int | None = None
        self._lock_path: Path | None = None
        self._created_parents: list[Path] = []
        parent, name = self.target.parent, self.target.name
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        parent = self.target.parent
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self._created_parents.append(folder)
            self.token, self._lock = _take_lock(parent, name)
            self._lock_path = parent / lock_name(name, self.token)
            self.path = parent / staged_name(name, self.token)
            os.mkdir(self.path)
        except OSError as exc:
            self._release_lock()
            self._remove_created_parents()
            raise BadInput(f"{self.out}: cannot create the output folder ({exc.strerror or exc})") from None

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._clean_up()
        if isinstance(exc, OSError) and exc.errno is not None:
            raise write_error(exc, self.out, self.target) from None

    def commit(self) -> Path:
        """Move the complete folder into place; a non-empty one there is replaced only with `force`."""
        target = self.target
        if os.path.lexists(target):
            if not target.is_dir():
                raise BadInput(f"{self.out}: the output path became a file while converting")
            if any(target.iterdir()) and not self.force:  # someone filled it while we worked
                raise OutputNotEmpty(str(self.out))
            if exchange_folders(self.path, target):
                self._old = self.path  # the old folder now lies at the staged path
            else:
                # Two renames; a kill between them is undone by the next run (see `tidy`).
                self._old = target.parent / backup_name(target.name, self.token)
                os.rename(target, self._old)
                os.rename(self.path, target)
        else:
            os.rename(self.path, target)
        self.committed = True
        self._clean_up()
        return self.out

    def discard(self) -> None:
        self._clean_up()

    def _clean_up(self) -> None:
        # A signal that arrives meanwhile (raised as KeyboardInterrupt in the main thread) is
        # let through only once everything is tidy.
        interrupted: BaseException | None = None
        while True:
            try:
                self._clean_up_once()
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _clean_up_once(self) -> None:
        old = self._old
        if not self.committed and old is not None and os.path.lexists(old) and not os.path.lexists(self.target):
            os.rename(old, self.target)  # cut between the two renames of a replacement: put the old one back
        _remove(self.path)
        if old is not None:
            _remove(old)
        self._release_lock()
        if not self.committed:
            self._remove_created_parents()

    def _release_lock(self) -> None:
        if self._lock_path is not None:
            with suppress(OSError):
                os.unlink(self._lock_path)
            self._lock_path = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _remove_created_parents(self) -> None:
        for folder in reversed(self._created_parents):
            try:
                folder.rmdir()
            except OSError:
                break
        self._created_parents.clear()


# -- errors while writing ------------------------------------------------------------------------

_WRITE_ERRORS = {
    errno.ENOSPC: "no space left on {mount}",
    errno.EDQUOT: "the disk quota is exceeded on {mount}",
    errno.EFBIG: "a file grew larger than {mount} or this process's file-size limit allows",
    errno.EIO: "input/output error on {mount}",
    errno.EROFS: "{mount} is mounted read-only",
}


def write_error(exc: OSError, out: Path, target: Path | None = None) -> BadInput:
    """The sentence for an OS error while writing the output folder (`target`: where it really lies)."""
    mount = _mount_point(Path(target or out).parent)
    template = _WRITE_ERRORS.get(exc.errno)
    reason = template.format(mount=mount) if template else f"{exc.strerror or exc}"
    where = f" ({exc.filename})" if template is None and exc.filename else ""
    return BadInput(f"{out}: cannot write the output folder: {reason}{where}; nothing was written")


def _mount_point(path: Path) -> Path:
    path = Path(os.path.realpath(path))
    while not path.exists() and path.parent != path:
        path = path.parent
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path
