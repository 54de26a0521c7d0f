"""torch and transformers, imported once in the background while the window is already usable."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..workspace import workers
from ..workspace.task_slot import TaskSlot


class LibraryLoader(QObject):
    loaded = Signal(object)  # workers.LibrariesLoaded
    failed = Signal()

    def __init__(self, slot: TaskSlot, parent: QObject | None = None):
        super().__init__(parent)
        self._slot = slot
        self.result: workers.LibrariesLoaded | None = None

    def ready(self) -> bool:
        return self.result is not None

    def load(self) -> None:
        """Start importing them, unless that is done or under way."""
        if self.result is not None or self._slot.busy():
            return
        self._slot.start(workers.Task("libraries", workers.load_libraries), self._loaded, failed=self._failed)

    def _loaded(self, _task, loaded: workers.LibrariesLoaded) -> None:
        self.result = loaded
        self.loaded.emit(loaded)

    def _failed(self, _task, _error) -> bool:
        self.failed.emit()
        return False  # said the way every failure is
