"""SHA-256 of source files, computed on a background thread, and proof that it describes what was read.

Hashing a multi-GB checkpoint takes seconds; started when the file is opened, it runs while the
plan is built and the weights are written (hashlib releases the GIL on large buffers), so a
conversion takes as long as the slower of the two. A file hashed before and unchanged since is
not hashed again (`core.digest_cache`).

The weights are copied from the file (in the kernel) while it is hashed on another thread, so the
digest describes the bytes converted only if the file did not change in between. It is therefore
watched, not trusted: its identity (device, inode, size, modification and change times) is taken
before anything reads it, again when the hash opens it and when the hash is done, and once more
after the last read (`confirm_unchanged`); all must be equal, or the conversion is refused. Every
write sets the change time, and nothing but the system clock can set it back, so an in-place edit
of the same size with the modification time restored is seen too.

The change time is the kernel's coarse clock, truncated to what the filesystem keeps (a clock
tick, or a whole second): a write within the same tick as the one before it leaves it unchanged.
So the first look at the file waits, when it was changed that recently, until its change time is
older than a tick (`settled_stat`): from then on every write shows. A file written just before a
conversion costs at most that wait; one still being written after a few waits is refused as
changed, and its digest is not kept.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path

from ..errors import BadInput, Cancelled
from ..heavy_work import heavy
from . import cache_store, digest_cache
from .files import describe_mode, unreadable

# Large reads: each one is a round trip for the GIL, which the importing main thread holds.
_CHUNK = 64 << 20
# How long a change time may fail to move after a write: two ticks of a 100 Hz kernel clock, and
# two seconds on filesystems that keep whole seconds (FAT keeps even ones).
TIMESTAMP_TICK_NS = 20_000_000
COARSE_TIMESTAMP_TICK_NS = 2_000_000_000
_SETTLE_TRIES = 3  # a file written without pause is not waited for forever: its changes show anyway
SOURCE_CHANGED = "the source changed while it was read"
_OPEN = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # never waits on a FIFO's writer

# The clock and the wait, by name, so that a test can stand in for them.
_now_ns = time.time_ns
_sleep = time.sleep


def settled_stat(path: str | os.PathLike) -> os.stat_result:
    """`os.stat(path)`, once the file's change time is older than the filesystem's timestamp
    granularity, so that any later write changes it (see the module's docstring); a file still
    being written after a few waits is returned as it is (`unsettled` says so)."""
    info = os.stat(path)
    for _ in range(_SETTLE_TRIES):
        wait = unsettled(info)
        if not wait:
            break
        _sleep(wait / 1e9)
        info = os.stat(path)
    return info


def unsettled(info: os.stat_result) -> int:
    """Nanoseconds until a write could no longer leave the change time in `info` as it is; 0 once
    it is settled, or when a clock ahead of ours (a file server's) stamped it: waiting cannot help."""
    tick = COARSE_TIMESTAMP_TICK_NS if info.st_ctime_ns % 1_000_000_000 == 0 else TIMESTAMP_TICK_NS
    wait = info.st_ctime_ns + tick - _now_ns()
    return wait if 0 < wait <= tick else 0


class BackgroundHash:
    def __init__(self, path: str | Path, *, use_cache: bool | None = None):
        self.path = Path(path)
        self.use_cache = cache_store.SWITCH.is_enabled() if use_cache is None else use_cache
        self.from_cache = False  # the digest was known: the file was not read
        self.seconds = 0.0  # spent hashing
        self._digest: str | None = None
        self._error: BaseException | None = None
        # The file's identity before anything read it, when the hash opened it, and when it was done.
        self._before: dict | None = None
        self._opened: dict | None = None
        self._done: dict | None = None
        self._settled = False  # whether any later write is sure to show in the identity
        try:
            info = settled_stat(self.path)
            self._settled = not unsettled(info)
            self._before = digest_cache.identity(self.path, info)
        except OSError as exc:
            self._error = exc
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sha256:{self.path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._error is not None:
            return
        started = time.perf_counter()
        try:
            with os.fdopen(os.open(self.path, _OPEN), "rb", buffering=0) as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    self._error = BadInput(f"{self.path}: is {describe_mode(info.st_mode)}, not a regular file")
                    return
                self._opened = digest_cache.identity(self.path, info)
                if self.use_cache and self._settled and self._opened == self._before:
                    known = digest_cache.known_digest(self._opened)
                    if known is not None:
                        self.from_cache = True
                        self._done = self._opened
                        self._digest = known
                        return
                digest = hashlib.sha256()
                buffer = bytearray(_CHUNK)
                view = memoryview(buffer)
                while not self._stop.is_set():
                    count = handle.readinto(buffer)
                    if not count:
                        self._digest = digest.hexdigest()
                        break
                    digest.update(view[:count])
                self._done = digest_cache.identity(self.path, os.fstat(handle.fileno()))
            if self._digest is not None and self.use_cache and self._settled and self._before == self._opened == self._done:
                digest_cache.remember(self._done, self._digest)
        except OSError as exc:  # reported by result(), when (and if) the digest is needed
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - started

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return self.done()

    def cancel(self) -> None:
        self._stop.set()

    def result(self) -> str:
        """The hex digest; waits for the thread. Raises `Cancelled` if it was cancelled."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._digest is None:
            raise Cancelled()
        return self._digest

    def confirm_unchanged(self) -> str:
        """The digest, once it is certain that the file did not change from before anything read it
        until now: call it after the last read of the file. `BadInput` otherwise, or when the file
        could not be hashed."""
        try:
            digest = self.result()
            now = digest_cache.identity(self.path, os.stat(self.path))
        except OSError as exc:
            raise unreadable(self.path, exc, "checkpoint file") from None
        if not (self._settled and self._before == self._opened == self._done == now):
            raise BadInput(f"{self.path}: {SOURCE_CHANGED}, so its checksum might not describe the converted "
                           "weights; nothing was written: convert it again once nothing writes to it")
        return digest


@heavy("hashing a file")
def sha256_of(path: str | Path) -> str:
    return BackgroundHash(path).result()
