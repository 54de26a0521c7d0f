"""SHA-256 digests of checkpoints already hashed, so an unchanged file is not hashed twice.

Hashing a 2 GiB checkpoint costs more CPU than copying it. A digest is kept in the user cache under
the file's identity: its path, device, inode, size, modification time and change time, all to the
nanosecond. Any write to the file changes its change time (which, unlike the modification time,
no program can set back), so a file that was edited, replaced or touched is hashed again. Only a
digest computed from a file that did not change while it was read, and whose change time was
settled before (`core.hashing`), is kept. Entries are signed with the user's key like every entry
of the cache (`core.cache_store`): one edited, forged or copied from elsewhere is not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from . import cache_store
from .cache_store import DIGESTS, cache_root

DIGEST_FORMAT = 2  # bump when an entry's layout or meaning changes: older entries are then never read
_HEX = re.compile(r"[0-9a-f]{64}")


def digests_folder() -> Path:
    return cache_root() / DIGESTS


def identity(path: str | os.PathLike, info: os.stat_result) -> dict:
    """What says a file is the one hashed: `info` (its `stat`) and the path it was opened by."""
    return {"format": DIGEST_FORMAT, "path": str(Path(path).absolute()), "device": info.st_dev, "inode": info.st_ino,
            "size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns}


def _entry_path(found: dict) -> Path:
    key = hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()
    return digests_folder() / f"{key}.json"


def known_digest(found: dict) -> str | None:
    """The digest recorded for the file of identity `found`; None when there is none."""
    entry = cache_store.read_signed(_entry_path(found))
    if entry is None or entry.get("identity") != found:
        return None
    digest = entry.get("sha256")
    return digest if isinstance(digest, str) and _HEX.fullmatch(digest) else None


def remember(found: dict, digest: str) -> None:
    """Keep `digest`, computed from the file of identity `found` while it did not change. A cache that
    cannot be written only costs time."""
    cache_store.write_signed(_entry_path(found), {"identity": found, "sha256": digest})
