"""The user's fixes to the mapping: undoable renames and drops, bulk renames, mapping files — and
never losing them: leaving fixes that are not saved (opening another checkpoint, closing the
window) asks first.

The fixes are an `Overrides` object, exactly what a `--mapping` file holds, kept by the workspace
with their undo history; every change is a command on that undo stack, and applying one asks the
core for a new plan. The stack's clean state means "saved to (or loaded from) a mapping file".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QUndoStack

from ..core.mapping_file import Overrides
from ..core.plan import Status
from . import commands, dialogs, workers
from .mapping_page import MappingPage
from .workspace import Workspace

MAPPING_FILTER = "Mapping files (*.toml *.json);;TOML (*.toml);;JSON (*.json)"


class FixesEditor(QObject):
    def __init__(self, workspace: Workspace, page: MappingPage):
        super().__init__(page)
        self.workspace = workspace
        self.page = page
        self.messages = workspace.messages
        self.loading = workspace.task_slot("Loading the mapping file", doing="loading the mapping file")
        self.saving = workspace.task_slot("Saving the mapping file", doing="saving the mapping file")
        self.bulk_dialog: dialogs.BulkRenameDialog | None = None

    @property
    def fixes(self) -> Overrides:
        return self.workspace.fixes

    @property
    def undo_stack(self) -> QUndoStack:
        return self.workspace.undo_stack

    def set_fixes(self, fixes: Overrides) -> None:
        """Apply the user's fixes: the core recomputes the plan (milliseconds), the table shows it."""
        self.workspace.set_fixes(fixes)

    def _push(self, command) -> None:
        if command is not None:
            self.undo_stack.push(command)
            self.messages.log(command.text())

    def _editable(self) -> bool:
        return not self.workspace.converting.busy()  # the plan must not change under a conversion

    # -- edits ---------------------------------------------------------------------------------------

    def rename(self, source: str, target: str) -> None:
        """Give one source key a new target key (undoable), as editing the cell does."""
        if not self._editable():
            return
        self._push(commands.rename_command(self.fixes, {source: target}, self.set_fixes))
        self.page.select_source_key(source)

    def drop_selected(self) -> None:
        keys = [row.source_key for row in self.page.selected_rows()
                if row.source_key is not None and row.status is not Status.DROPPED]
        if not keys:
            self.messages.status("Select rows with a source key to drop them.", 4000)
            return
        self._push(commands.drop_command(self.fixes, keys, self.set_fixes))

    def restore_selected(self) -> None:
        rows = self.page.selected_rows()
        overridden = [r.source_key for r in rows if r.source_key in self.fixes.rename or r.source_key in self.fixes.drop]
        if overridden:
            self._push(commands.restore_command(self.fixes, overridden, self.set_fixes))
            return
        recipe_dropped = [r for r in rows if r.status is Status.DROPPED and r.source_shape is not None]
        if recipe_dropped:
            # The recipe drops it on purpose; restoring it means choosing where it goes.
            self.page.select_source_key(recipe_dropped[0].source_key)
            self.page.edit_current()
            self.messages.status("The recipe drops this key: type the target key it should become.", 6000)
        else:
            self.messages.status("Nothing to restore: the selected rows have no fixes of yours.", 4000)

    def bulk_rename(self) -> None:
        prepared = self.workspace.prepared
        if prepared is None:
            return
        selected = [r.source_key for r in self.page.selected_rows() if r.source_key is not None and r.source_shape is not None]
        filtered = [key for key in self.page.visible_source_keys() if key is not None and prepared.tensors.get(key) is not None]
        dialog = dialogs.BulkRenameDialog(
            self.page, selected=selected, filtered=filtered, known_targets=set(prepared.targets),
            on_apply=self._apply_bulk_rename,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.bulk_dialog = dialog
        dialog.open()

    def _apply_bulk_rename(self, renames: dict[str, str], pattern: str) -> None:
        if self._editable():
            self._push(commands.bulk_rename_command(self.fixes, renames, pattern, self.set_fixes))

    # -- mapping files -----------------------------------------------------------------------------

    def choose_mapping_to_load(self) -> None:
        source = self.workspace.source
        start = str(Path(source).parent) if source else str(Path.home())
        path, _ = dialogs.open_file_name(self.page, "Load mapping file", start, MAPPING_FILTER)
        if path:
            self.load_mapping(path)

    def load_mapping(self, path: str | Path) -> None:
        """Replace the fixes with a mapping file's (one undoable step)."""
        task = workers.Task("load mapping", workers.load_mapping_job, str(path))
        task.path = str(path)
        self.loading.start(task, self._mapping_loaded)

    def _mapping_loaded(self, task, loaded: Overrides) -> None:
        if not self._editable():
            self.messages.error(f"{task.path} was not loaded: a conversion is running.", kind="warning")
            return
        command = commands.load_mapping_command(self.fixes, loaded, Path(task.path).name, self.set_fixes)
        self.undo_stack.push(command)
        self.undo_stack.setClean()
        self.messages.log(f"Loaded the mapping file {task.path}: {len(loaded.rename)} rename(s), "
                          f"{len(loaded.drop)} drop(s), {len(loaded.rules)} rule(s)")
        prepared = self.workspace.prepared
        if prepared is not None:
            for note in prepared.plan.notes:
                if note.startswith("mapping file:"):
                    self.messages.log(f"note: {note}")

    def _ask_where_to_save(self) -> str:
        """The path the user picks for the mapping file, or "" when they cancel."""
        source = self.workspace.source
        start = (self.workspace.mapping_file
                 or (str(Path(source).with_name(f"{Path(source).stem}-mapping.toml")) if source else "")
                 or str(Path.home() / "mapping.toml"))
        path, _ = dialogs.save_file_name(self.page, "Save mapping file", start, MAPPING_FILTER)
        return path

    def choose_mapping_to_save(self) -> None:
        path = self._ask_where_to_save()
        if path:
            self.save_mapping(path)

    def save_mapping(self, path: str | Path, then: Callable[[], None] | None = None) -> None:
        """Write the fixes as a mapping file (on a worker); `then` runs once it is written."""
        task = workers.Task("save mapping", workers.save_mapping_job, str(path), commands.copy_overrides(self.fixes))
        task.undo_index = self.undo_stack.index()  # what was saved, whatever happens meanwhile
        task.then = then
        self.saving.start(task, self._mapping_saved)

    def _mapping_saved(self, task, path: str) -> None:
        if self.undo_stack.index() == task.undo_index:
            self.undo_stack.setClean()
        self.workspace.mapping_file = path
        self.messages.log(f"Saved your fixes to {path} (use it with: speechport convert SOURCE --mapping {path})")
        self.messages.status(f"Saved {path}", 5000)
        if task.then is not None:
            task.then()

    # -- leaving them behind ------------------------------------------------------------------------

    def may_leave(self, doing: str, then: Callable[[], None]) -> bool:
        """May the fixes be left behind now (`doing`: "opening another checkpoint", "closing")?

        True when they are saved, or when the user discards them. Otherwise False: the user
        answered Cancel (nothing changes), or Save — then they are saved (to the mapping file they
        were last saved to, or where the user says) and `then` runs once they are.
        """
        if self.undo_stack.isClean():
            return True
        name = Path(self.workspace.source).name or "this checkpoint"
        answer = dialogs.ask_save_fixes(self.page, name, doing)
        if answer == dialogs.DISCARD:
            self.messages.log(f"Discarded your unsaved fixes to {name}.")
            return True
        if answer == dialogs.SAVE:
            path = self.workspace.mapping_file or self._ask_where_to_save()
            if path:
                self.save_mapping(path, then=then)
        return False
