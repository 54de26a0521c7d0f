"""Writing an output folder atomically.

Everything goes into a hidden temporary sibling folder that is renamed into place only once it is
complete, so an error or a cancel leaves nothing behind. A non-empty existing folder is replaced
only with the user's consent (`force`), and only after the new folder is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import BadInput, OutputNotEmpty


def check_output_path(out: str | Path, force: bool) -> Path:
    """Refuse unusable output paths before any work is done; returns the absolute path."""
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: the output path is an existing file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputNotEmpty(str(out))
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"{ancestor}: is a file, so {out} cannot be created")
    _probe_writable(ancestor, out)
    return out


def _probe_writable(folder: Path, out: Path) -> None:
    # Permission bits do not tell the whole story (read-only mounts, pseudo filesystems, root),
    # so try what the conversion will do: create a folder there, then remove it.
    try:
        Path(tempfile.mkdtemp(prefix=".speechport-probe-", dir=folder)).rmdir()
    except OSError as exc:
        raise BadInput(f"{folder}: not writable ({exc.strerror or exc}), so {out} cannot be created") from None


class StagedFolder:
    """A temporary sibling of `out` that becomes `out` on `commit()`; removed on any failure."""

    def __init__(self, out: str | Path, force: bool = False):
        self.out = check_output_path(out, force)
        self.force = force
        self._created_parents: list[Path] = []
        parent = self.out.parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self._created_parents.append(folder)
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        except OSError as exc:
            self._remove_created_parents()
            raise BadInput(f"{self.out}: cannot create the output folder ({exc.strerror or exc})") from None
        self.committed = False

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            self.discard()

    def commit(self) -> Path:
        backup = None
        if self.out.is_dir():
            if any(self.out.iterdir()):
                if not self.force:  # someone filled it while we worked
                    raise OutputNotEmpty(str(self.out))
                backup = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.replaced-", dir=self.out.parent))
                backup.rmdir()
                os.rename(self.out, backup)
            else:
                self.out.rmdir()
        try:
            os.rename(self.path, self.out)
        except OSError:
            if backup is not None:
                os.rename(backup, self.out)
            raise
        self.committed = True
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        return self.out

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._remove_created_parents()

    def _remove_created_parents(self) -> None:
        for folder in reversed(self._created_parents):
            try:
                folder.rmdir()
            except OSError:
                break
        self._created_parents.clear()
