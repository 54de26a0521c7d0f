"""SHA-256 digests of checkpoints already hashed, so an unchanged file is not hashed twice.

Hashing a 2 GiB checkpoint costs more CPU than copying it. A digest is kept in the user cache under
the file's identity: device, inode, size, modification time and change time, all to the
nanosecond. Any write to the file changes its change time (which, unlike the modification time,
no program can set back), so a file that was edited, replaced or touched is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from .target_cache import cache_root

DIGEST_FORMAT = 1
_HEX = re.compile(r"[0-9a-f]{64}")


def digests_folder() -> Path:
    return cache_root() / "digests"


def identity(path: Path) -> dict:
    info = os.stat(path)
    return {"format": DIGEST_FORMAT, "path": str(Path(path).absolute()), "device": info.st_dev, "inode": info.st_ino,
            "size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns}


def _entry_path(found: dict) -> Path:
    key = hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()
    return digests_folder() / f"{key}.json"


def known_digest(path: Path) -> str | None:
    """The digest recorded for this very file, unchanged since; None when there is none."""
    try:
        found = identity(path)
        entry = json.loads(_entry_path(found).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(entry, dict) or entry.get("identity") != found:
        return None
    digest = entry.get("sha256")
    return digest if isinstance(digest, str) and _HEX.fullmatch(digest) else None


def remember(path: Path, digest: str, before: dict) -> None:
    """Keep `digest`, computed from the file as `before` described it, if the file is still that
    file (it was not changed while it was hashed). A cache that cannot be written only costs time."""
    try:
        if identity(path) != before:
            return
        target = _entry_path(before)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(prefix=".digest.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump({"identity": before, "sha256": digest}, stream, sort_keys=True)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass
