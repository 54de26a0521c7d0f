"""The two models of the last comparison, kept loaded while nothing they were loaded from changes,
so comparing another clip runs the models at once instead of loading them again (seconds at
full size)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The files a converted folder is loaded from: a new conversion into the same folder changes them.
_FOLDER_FILES = ("config.json", "preprocessor_config.json", "model.safetensors", "model.safetensors.index.json")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


@dataclass(frozen=True)
class SidesKey:
    """What the opened sides depend on: the checkpoint (as opened), the base model, the folder's files."""

    checkpoint: int  # id() of the opened core.checkpoint.Checkpoint: reopening it makes a new one
    source: tuple
    base_model: str
    converted: str
    converted_files: tuple
    backend: str = "reference"  # what runs the original: another backend is another model to load

    @classmethod
    def of(cls, checkpoint, source: Path, base_model: Path | None, converted: Path,
           backend: str = "reference") -> SidesKey:
        folder = Path(converted).expanduser().absolute()
        return cls(
            checkpoint=id(checkpoint),
            source=(str(source), _stamp(source)),
            base_model=str(base_model or ""),
            converted=str(folder),
            converted_files=tuple(_stamp(folder / name) for name in _FOLDER_FILES),
            backend=backend,
        )


class SidesCache:
    """The last opened `core.verification.Sides` and what they were opened from."""

    def __init__(self):
        self.key: SidesKey | None = None
        self.sides = None
        self.checkpoint = None  # held so its id() in the key cannot be reused by another object

    def get(self, key: SidesKey):
        return self.sides if key == self.key else None

    def put(self, key: SidesKey, sides, checkpoint) -> None:
        self.key, self.sides, self.checkpoint = key, sides, checkpoint

    def clear(self) -> None:
        self.key = self.sides = self.checkpoint = None
