"""The user's fixes to the mapping: undoable renames and drops, bulk renames, and mapping files.

The fixes are an `Overrides` object, exactly what a `--mapping` file holds; every change is a
command on the undo stack, and applying one asks the core for a new plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QUndoStack

from ..core.errors import SpeechportError
from ..core.mapping_file import Overrides
from ..core.plan import Status
from . import commands, dialogs, workers

if TYPE_CHECKING:
    from .main_window import MainWindow

MAPPING_FILTER = "Mapping files (*.toml *.json);;TOML (*.toml);;JSON (*.json)"


class FixesEditor(QObject):
    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.main_window = window
        self.fixes = Overrides()
        self.undo_stack = QUndoStack(self)
        self.bulk_dialog: dialogs.BulkRenameDialog | None = None

    @property
    def page(self):
        return self.main_window.mapping_page

    def reset(self) -> None:
        """A different checkpoint: its fixes and their history do not apply any more."""
        self.fixes = Overrides()
        self.undo_stack.clear()

    def set_fixes(self, fixes: Overrides) -> None:
        """Apply the user's fixes: the core recomputes the plan (milliseconds), the table shows it."""
        self.fixes = commands.copy_overrides(fixes)
        prepared = self.main_window.prepared
        if prepared is not None:
            plan = prepared.replan(commands.copy_overrides(fixes))
            self.page.model.set_plan(plan)
        self.main_window.update_all()

    def _push(self, command) -> None:
        if command is not None:
            self.undo_stack.push(command)
            self.main_window.log(command.text())

    # -- edits ---------------------------------------------------------------------------------------

    def rename(self, source: str, target: str) -> None:
        """Give one source key a new target key (undoable), as editing the cell does."""
        if self.main_window.busy_converting():
            return
        self._push(commands.rename_command(self.fixes, {source: target}, self.set_fixes))
        self.page.select_source_key(source)

    def drop_selected(self) -> None:
        keys = [row.source_key for row in self.page.selected_rows()
                if row.source_key is not None and row.status is not Status.DROPPED]
        if not keys:
            self.main_window.statusBar().showMessage("Select rows with a source key to drop them.", 4000)
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
            self.main_window.statusBar().showMessage("The recipe drops this key: type the target key it should become.", 6000)
        else:
            self.main_window.statusBar().showMessage("Nothing to restore: the selected rows have no fixes of yours.", 4000)

    def bulk_rename(self) -> None:
        prepared = self.main_window.prepared
        if prepared is None:
            return
        selected = [r.source_key for r in self.page.selected_rows() if r.source_key is not None and r.source_shape is not None]
        filtered = [key for key in self.page.visible_source_keys() if key is not None and prepared.tensors.get(key) is not None]
        dialog = dialogs.BulkRenameDialog(
            self.main_window, selected=selected, filtered=filtered, known_targets=set(prepared.targets),
            on_apply=self._apply_bulk_rename,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.bulk_dialog = dialog
        dialog.open()

    def _apply_bulk_rename(self, renames: dict[str, str], pattern: str) -> None:
        if self.main_window.busy_converting():
            return
        self._push(commands.bulk_rename_command(self.fixes, renames, pattern, self.set_fixes))

    # -- mapping files -----------------------------------------------------------------------------

    def choose_mapping_to_load(self) -> None:
        source = self.main_window.inputs.source_field.path()
        start = str(Path(source).parent) if source else str(Path.home())
        path, _ = dialogs.open_file_name(self.main_window, "Load mapping file", start, MAPPING_FILTER)
        if path:
            self.load_mapping(path)

    def load_mapping(self, path: str | Path) -> None:
        """Replace the fixes with a mapping file's (one undoable step)."""
        task = workers.Task("load mapping", workers.load_mapping_job, str(path))
        task.path = str(path)
        self.main_window.runner.run(task, self._mapping_loaded, self._file_task_failed)

    def _mapping_loaded(self, task, loaded: Overrides) -> None:
        if self.main_window.busy_converting():
            self.main_window.show_error(f"{task.path} was not loaded: a conversion is running.", kind="warning")
            return
        command = commands.load_mapping_command(self.fixes, loaded, Path(task.path).name, self.set_fixes)
        self.undo_stack.push(command)
        self.undo_stack.setClean()
        self.main_window.log(f"Loaded the mapping file {task.path}: {len(loaded.rename)} rename(s), "
                        f"{len(loaded.drop)} drop(s), {len(loaded.rules)} rule(s)")
        prepared = self.main_window.prepared
        if prepared is not None:
            for note in prepared.plan.notes:
                if note.startswith("mapping file:"):
                    self.main_window.log(f"note: {note}")

    def choose_mapping_to_save(self) -> None:
        source = self.main_window.inputs.source_field.path()
        start = str(Path(source).with_name(f"{Path(source).stem}-mapping.toml")) if source else str(Path.home() / "mapping.toml")
        path, _ = dialogs.save_file_name(self.main_window, "Save mapping file", start, MAPPING_FILTER)
        if path:
            self.save_mapping(path)

    def save_mapping(self, path: str | Path) -> None:
        task = workers.Task("save mapping", workers.save_mapping_job, str(path), commands.copy_overrides(self.fixes))
        task.undo_index = self.undo_stack.index()  # what was saved, whatever happens meanwhile
        self.main_window.runner.run(task, self._mapping_saved, self._file_task_failed)

    def _mapping_saved(self, task, path: str) -> None:
        if self.undo_stack.index() == task.undo_index:
            self.undo_stack.setClean()
        self.main_window.log(f"Saved your fixes to {path} (use it with: speechport convert SOURCE --mapping {path})")
        self.main_window.statusBar().showMessage(f"Saved {path}", 5000)

    def _file_task_failed(self, task, error) -> None:
        if isinstance(error, SpeechportError):
            self.main_window.show_error(str(error))
        else:
            self.main_window.report_internal_error(error, task.traceback, context=task.kind)
