"""SHA-256 of source files, computed on a background thread.

Hashing a multi-GB checkpoint takes seconds; started when the file is opened, it runs while the
plan is built and the weights are written (hashlib releases the GIL on large buffers), so a
conversion takes as long as the slower of the two. A file hashed before and unchanged since is
not hashed again (`core.digest_cache`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

from . import digest_cache
from .errors import Cancelled
from .target_cache import CACHE

# Large reads: each one is a round trip for the GIL, which the importing main thread holds.
_CHUNK = 64 << 20


class BackgroundHash:
    def __init__(self, path: str | Path, *, use_cache: bool | None = None):
        self.path = Path(path)
        self.use_cache = CACHE.is_enabled() if use_cache is None else use_cache
        self.from_cache = False  # the digest was known: the file was not read
        self.seconds = 0.0  # spent hashing
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sha256:{self.path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            before = digest_cache.identity(self.path) if self.use_cache else None
            known = digest_cache.known_digest(self.path) if self.use_cache else None
            if known is not None:
                self.from_cache = True
                self._digest = known
                return
            digest = hashlib.sha256()
            with self.path.open("rb", buffering=0) as handle:
                buffer = bytearray(_CHUNK)
                view = memoryview(buffer)
                while not self._stop.is_set():
                    count = handle.readinto(buffer)
                    if not count:
                        self._digest = digest.hexdigest()
                        break
                    digest.update(view[:count])
            if self._digest is not None and before is not None:
                digest_cache.remember(self.path, self._digest, before)
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


def sha256_of(path: str | Path) -> str:
    return BackgroundHash(path).result()
