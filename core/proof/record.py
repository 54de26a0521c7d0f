"""Every comparison made against a converted folder, recorded in its report and its model card.

A folder that was compared with its original says so itself: `convert --verify`, `compare` and the
window's Compare each add an entry to the folder's `speechport_report.json` (`verification`, the
latest; `verifications`, the last MAX_VERIFICATIONS, the latest first, with a count of older ones
dropped) and rewrite the Verification section of its model card (README.md). An entry names the
clip of each compared output (name, length, SHA-256, the part compared when not the whole file), the
verdict, max |diff| and tolerance, the original's backend, the fixes the original took on trust, when
(UTC) and the digest of the weights compared.

The weights' digest is what keeps a verdict honest: a pass is about the bytes compared, and a folder
whose weights were changed since (even in place, at the same size) has another digest. It is the
SHA-256 of `model.safetensors` (what `sha256sum` prints), or of the `sha256sum` lines of the shards
of a sharded folder. The files are watched from before the converted model is loaded to after the
comparison (core.storage.hashing), so the digest is of what was loaded, and the digest cache keeps
an unchanged file from being hashed twice.

Recording never touches the weights and never loses what was there: the report and the card are
each replaced in one step (a temporary file in the folder, fsync, rename), under an exclusive lock
on the folder, so two comparisons recording at once both land and a recorder killed at any moment
leaves the old file or the new one (and a temporary file, which the next recorder removes). A
folder that is not Speechport's (no report), read-only, or whose report is not a regular file of
reasonable size (a symbolic link is not followed, a FIFO never opened) is compared as before; the
comparison only says it could not be recorded, and why.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput
from ..heavy_work import heavy
from ..storage import cache_store, digest_cache
from ..storage.files import describe_mode
from ..storage.hashing import SOURCE_CHANGED, BackgroundHash
from ..storage.safetensors_file import weight_files
from .model_card import VERIFICATION_HEADING, verification_text
from .report import REPORT_NAME, dump_report, load_report, read_at_most

try:
    import fcntl
except ImportError:  # no flock here: recording goes on unlocked
    fcntl = None  # type: ignore[assignment]

CARD_NAME = "README.md"
MAX_VERIFICATIONS = 50  # entries kept in a report; older ones are counted, not kept
MAX_CARD_BYTES = 4 << 20  # a model card Speechport writes is a few KB
LOCK_WAIT_S = 30.0  # another recorder holds the lock for milliseconds; past this, something is stuck
_LOCK_POLL_S = 0.02
_TEMPORARY = re.compile(rf"\.({re.escape(REPORT_NAME)}|{re.escape(CARD_NAME)})\.[0-9a-f]{{16}}\.tmp")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
NOT_SPEECHPORTS = f"it has no {REPORT_NAME} (it was not converted by Speechport)"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


# -- the weights' digest ------------------------------------------------------------------------


class WeightsDigest:
    """The SHA-256 of a converted folder's weights, computed in the background from before the
    converted model is loaded; `confirm_unchanged` after the comparison proves it is the digest of
    what was loaded."""

    def __init__(self, folder: str | Path, *, use_cache: bool | None = None):
        self.folder = Path(folder)
        self.files = weight_files(self.folder)  # BadInput when there are none
        self._hashes = [BackgroundHash(self.folder / name, use_cache=use_cache) for name in self.files]

    def cancel(self) -> None:
        for hasher in self._hashes:
            hasher.cancel()

    def file_digests(self) -> dict[str, str]:
        return {name: hasher.result() for name, hasher in zip(self.files, self._hashes)}

    def confirm_unchanged(self) -> str:
        """The weights' digest, once it is certain that no weight file changed from before the model
        was loaded until now; BadInput saying so otherwise."""
        try:
            digests = {name: hasher.confirm_unchanged() for name, hasher in zip(self.files, self._hashes)}
            self._confirmed = {name: _same_file_key(os.stat(self.folder / name)) for name in self.files}
        except BadInput as refusal:
            if SOURCE_CHANGED in str(refusal):
                raise BadInput(f"{self.folder}: the weights changed while they were compared, so this comparison "
                               "is not of the weights there now") from None
            raise
        except OSError as exc:
            raise BadInput(f"{self.folder}: the weights cannot be read ({exc.strerror or exc})") from None
        return combined_digest(digests)

    def remember_at(self, folder: Path) -> None:
        """The same files, now inside `folder` (the staged folder renamed into place): their digests
        are kept under their new paths too, so comparing the folder later hashes nothing again. Only
        a file that is still the one confirmed (device, inode, size, times) is remembered."""
        confirmed = getattr(self, "_confirmed", None)
        if not confirmed or not cache_store.SWITCH.is_enabled():
            return
        for name, digest in self.file_digests().items():
            try:
                now = os.stat(folder / name)
            except OSError:
                continue
            if _same_file_key(now) == confirmed.get(name):
                digest_cache.remember(digest_cache.identity(folder / name, now), digest)


def _same_file_key(info: os.stat_result) -> tuple:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def combined_digest(digests: dict[str, str]) -> str:
    """One file's SHA-256 itself; for shards, the SHA-256 of their `sha256sum` lines in name order
    (`sha256sum model-*.safetensors | sha256sum` prints it)."""
    if len(digests) == 1:
        return next(iter(digests.values()))
    lines = "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))
    return hashlib.sha256(lines.encode()).hexdigest()


@heavy("hashing a converted folder's weights")
def current_weights_digest(folder: str | Path) -> str:
    """The digest of the folder's weights as they are now (BadInput when they cannot be read)."""
    digest = WeightsDigest(folder)
    return digest.confirm_unchanged()


# -- entries --------------------------------------------------------------------------------------


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def verification_entry(comparison, *, backend: str, by: str, weights: dict[str, str], when: str | None = None) -> dict:
    """A comparison (core.proof.comparison.Comparison) as the report records it: what `--json`
    prints of it, and the clip files, the original's backend, who compared, when and the weights."""
    entry = {**comparison.to_dict(), "original_backend": backend, "by": by, "when": when or utc_now(),
             "weights_sha256": combined_digest(weights), "weight_files": dict(sorted(weights.items()))}
    for clip in entry["clips"]:
        clip["clip"] = describe_clip(clip["audio"], clip.get("segment"))
    return entry


def describe_clip(path: str | Path, segment) -> dict:
    """A clip file as a record names it: its name, length in seconds and SHA-256 (None where the
    file can no longer be read), and the part compared when it was not the whole file."""
    path = Path(path)
    about: dict = {"name": path.name, "seconds": None, "sha256": None, "segment": segment}
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return about
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            about["sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return about
    try:
        import soundfile

        about["seconds"] = round(float(soundfile.info(str(path)).duration), 3)
    except (RuntimeError, OSError, ValueError, TypeError):
        pass
    return about


def add_verification(report: dict, entry: dict) -> dict:
    """`report` with `entry` as its latest comparison, the history bounded to MAX_VERIFICATIONS."""
    history = report.get("verifications")
    if not isinstance(history, list):  # a report written before histories were kept
        latest = report.get("verification")
        history = [latest] if isinstance(latest, dict) else []
    history = [entry, *(e for e in history if isinstance(e, dict))]
    dropped = report.get("verifications_dropped")
    dropped = dropped if isinstance(dropped, int) and not isinstance(dropped, bool) and dropped >= 0 else 0
    dropped += max(0, len(history) - MAX_VERIFICATIONS)
    return {**report, "verification": entry, "verifications": history[:MAX_VERIFICATIONS],
            "verifications_dropped": dropped}


# -- recording ------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """Whether a comparison was recorded in its folder, and why not."""

    folder: Path
    recorded: bool
    reason: str = ""  # why it was not, one sentence
    card: bool = False  # the model card was rewritten too
    card_reason: str = ""  # why it was not

    def line(self) -> str:
        """One line for people."""
        if not self.recorded:
            return f"not recorded in the folder: {self.reason}"
        card = f"and {CARD_NAME}" if self.card else f"({CARD_NAME} not updated: {self.card_reason})"
        return f"recorded in {self.folder / REPORT_NAME} {card}"

    def to_dict(self) -> dict:
        return {"recorded": self.recorded, "report": str(self.folder / REPORT_NAME),
                "reason": self.reason or None, "model_card": self.card, "model_card_reason": self.card_reason or None}


class _NotRecorded(Exception):
    pass


def record_comparison(sides, comparison, *, by: str) -> Recorded:
    """Record `comparison`, made with `sides` (core.proof.verification.Sides), in the converted folder."""
    folder = Path(sides.converted_name)
    digest: WeightsDigest | None = getattr(sides, "weights_digest", None)
    if digest is None:
        return Recorded(folder, False, NOT_SPEECHPORTS)
    try:
        digest.confirm_unchanged()
        weights = digest.file_digests()
    except BadInput as refusal:
        return Recorded(folder, False, _reason(refusal, folder))
    return record_verification(folder, verification_entry(comparison, backend=comparison.original_backend, by=by,
                                                          weights=weights))


@heavy("recording a comparison in a converted folder")
def record_verification(folder: str | Path, entry: dict) -> Recorded:
    """Add `entry` to the folder's report and rewrite its model card's Verification section, each
    replaced in one step, under an exclusive lock on the folder. Never raises for what the folder is
    (read-only, not Speechport's, a report that is a link, a FIFO or too large): says it."""
    folder = Path(folder).expanduser().absolute()
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError as exc:
        return Recorded(folder, False, f"the folder cannot be opened ({exc.strerror or exc})")
    try:
        try:
            _lock(dir_fd)
            _remove_leftovers(dir_fd)
            report = _read_report(dir_fd)
            updated = add_verification(report, entry)
            _replace(dir_fd, REPORT_NAME, dump_report(updated).encode("utf-8"), folder)
        except _NotRecorded as refusal:
            return Recorded(folder, False, str(refusal))
        try:
            _update_card(dir_fd, updated, entry.get("weights_sha256"), folder)
        except _NotRecorded as refusal:
            return Recorded(folder, True, card=False, card_reason=str(refusal))
        return Recorded(folder, True, card=True)
    finally:
        os.close(dir_fd)  # releases the lock


def _lock(dir_fd: int) -> None:
    """Hold the folder's lock (an flock on the folder itself, which a replaced report does not
    change): the reads and writes of one recorder never interleave with another's."""
    if fcntl is None:
        return
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise _NotRecorded(f"another process has held the folder's lock for {LOCK_WAIT_S:g} s") from None
            time.sleep(_LOCK_POLL_S)
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF):
                return  # a file system without locks: recorded unlocked
            raise _NotRecorded(f"the folder cannot be locked ({exc.strerror or exc})") from None


def _remove_leftovers(dir_fd: int) -> None:
    """Temporary files of recorders killed mid-write: only a recorder holding the lock writes one, so
    any there now is a dead one's."""
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return
    for name in names:
        if _TEMPORARY.fullmatch(name):
            try:
                if stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=dir_fd)
            except OSError:
                pass


def _read_report(dir_fd: int) -> dict:
    try:
        info = os.stat(REPORT_NAME, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise _NotRecorded(NOT_SPEECHPORTS) from None
    except OSError as exc:
        raise _NotRecorded(f"its {REPORT_NAME} cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(info.st_mode):
        try:
            target = os.readlink(REPORT_NAME, dir_fd=dir_fd)
        except OSError:
            target = "elsewhere"
        raise _NotRecorded(f"its {REPORT_NAME} is a symbolic link (to {target[:200]}), which is not followed: "
                           "the report of another folder is never written through it")
    try:
        report = load_report(REPORT_NAME, follow_links=False, dir_fd=dir_fd)
    except BadInput as refusal:
        said = str(refusal).removeprefix(f"{REPORT_NAME}: ")
        raise _NotRecorded(f"its {REPORT_NAME} {said.removeprefix('the report ')}") from None
    if "speechport_report" not in report:
        raise _NotRecorded(f"its {REPORT_NAME} is not a report Speechport wrote")
    return report


def _update_card(dir_fd: int, report: dict, current_sha256: str | None, folder: Path) -> None:
    """Rewrite the Verification section of the model card (appended where the card has none)."""
    try:
        info = os.stat(CARD_NAME, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise _NotRecorded(f"the folder has no {CARD_NAME}") from None
    except OSError as exc:
        raise _NotRecorded(f"it cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(info.st_mode):
        raise _NotRecorded("it is a symbolic link, which is not followed")
    if not stat.S_ISREG(info.st_mode):
        raise _NotRecorded(f"it is {describe_mode(info.st_mode)}, not a regular file")
    if info.st_size > MAX_CARD_BYTES:
        raise _NotRecorded(f"it holds {info.st_size:,} bytes, more than a model card Speechport writes")
    try:
        fd = os.open(CARD_NAME, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        raise _NotRecorded(f"it cannot be read ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRecorded("it is not a regular file")
        data = read_at_most(fd, MAX_CARD_BYTES)
    finally:
        os.close(fd)
    if data is None:
        raise _NotRecorded("it grew past the size of a model card Speechport writes")
    try:
        card = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _NotRecorded("it is not UTF-8 text") from None
    section = verification_text(report, current_sha256)
    _replace(dir_fd, CARD_NAME, replace_section(card, section).encode("utf-8"), folder)


def replace_section(card: str, section: str) -> str:
    """`card` with the text under its Verification heading (up to the next heading of that level)
    replaced by `section`; the section is appended to a card without one."""
    lines = card.split("\n")
    try:
        start = lines.index(VERIFICATION_HEADING)
    except ValueError:
        return card.rstrip("\n") + f"\n\n{VERIFICATION_HEADING}\n\n{section}\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = lines[end:]
    return "\n".join([*lines[: start + 1], "", section, "", *tail]) + ("" if tail else "\n")


def _replace(dir_fd: int, name: str, data: bytes, folder: Path) -> None:
    """Replace `name` in the folder by `data` in one step: a temporary file beside it, written and
    fsynced, renamed over it, the folder fsynced. The old file stays whole until the rename."""
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    try:
        mode = stat.S_IMODE(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        mode = 0o644
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise _NotRecorded(_write_refusal(exc, folder)) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise _NotRecorded(_write_refusal(exc, folder)) from None
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is done


def _write_refusal(exc: OSError, folder: Path) -> str:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "the folder is read-only"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return f"it cannot be written ({exc.strerror or exc})"


def _reason(refusal: BadInput, folder: Path) -> str:
    return str(refusal).removeprefix(f"{folder}: ")


# -- what a folder says of itself -------------------------------------------------------------------


@dataclass
class FolderProof:
    """The comparisons a folder's report records, checked against its weights as they are now."""

    folder: Path
    latest: dict | None = None
    history: list[dict] = field(default_factory=list)
    dropped: int = 0
    current_sha256: str | None = None  # the weights' digest now (None: not known)
    problem: str = ""  # why the report or the weights could not be read

    @property
    def holds(self) -> bool:
        """Whether the latest comparison is of the weights there now."""
        return (self.latest is not None and bool(self.latest.get("weights_sha256"))
                and self.latest.get("weights_sha256") == self.current_sha256)


@heavy("reading a converted folder's report and hashing its weights")
def folder_proof(folder: str | Path) -> FolderProof:
    """What the folder's report says of its comparisons, and whether its weights are still those
    compared (hashed only when there is a comparison to check, and known from the digest cache when
    they did not change)."""
    folder = Path(folder).expanduser().absolute()
    proof = FolderProof(folder)
    try:
        report = load_report(folder / REPORT_NAME)
    except BadInput as refusal:
        proof.problem = _reason(refusal, folder)
        return proof
    latest = report.get("verification")
    proof.latest = latest if isinstance(latest, dict) else None
    history = report.get("verifications")
    proof.history = [e for e in history if isinstance(e, dict)] if isinstance(history, list) else (
        [proof.latest] if proof.latest else [])
    dropped = report.get("verifications_dropped")
    proof.dropped = dropped if isinstance(dropped, int) and not isinstance(dropped, bool) else 0
    if proof.latest is not None:
        try:
            proof.current_sha256 = current_weights_digest(folder)
        except BadInput as refusal:
            proof.problem = _reason(refusal, folder)
    return proof
