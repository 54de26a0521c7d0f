"""The user's fixes to the mapping: undoable renames and drops, bulk renames, confident suggestions,
mapping files — and never losing them: leaving fixes that are not saved (opening another
checkpoint, closing the window) asks first.

The fixes are an `Overrides` object, exactly what a `--mapping` file holds, kept by the workspace
with their undo history; every change is a command on that undo stack, and applying one asks the
core for a new plan. The stack's clean state means "saved to (or loaded from) a mapping file".
The fixes Speechport inferred when it opened the checkpoint (a wrapper prefix stripped) are the
first step of that history, so Ctrl+Z shows the keys as saved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QUndoStack

from ...core.planning.mapping_file import Overrides
from ...core.planning.plan import Status
from ...core.planning.wrapper_prefix import wrapper_prefix
from ..shared import dialogs
from ..workspace import commands, workers
from ..workspace.workspace import Workspace
from .bulk_rename_dialog import BulkRenameDialog
from .mapping_page import MappingPage
from .plan_suggestions import PlanSuggestions
from .rename_preview import SOURCE_KEYS, TARGET_KEYS, RenamePreview

MAPPING_FILTER = "Mapping files (*.toml *.json);;TOML (*.toml);;JSON (*.json)"


class FixesEditor(QObject):
    def __init__(self, workspace: Workspace, page: MappingPage, suggestions: PlanSuggestions):
        super().__init__(page)
        self.workspace = workspace
        self.page = page
        self.suggestions = suggestions
        self.messages = workspace.messages
        self.loading = workspace.task_slot("Loading the mapping file", doing="loading the mapping file")
        self.saving = workspace.task_slot("Saving the mapping file", doing="saving the mapping file")
        self.previewing = workspace.task_slot("Previewing the rename", doing="previewing the rename")
        self.bulk_dialog: BulkRenameDialog | None = None
        workspace.planChanged.connect(self._record_inferred_fixes)

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

    def bulk_rename(self, mode: str | None = None) -> None:
        """Open the bulk rename: on source keys when the plan has unmapped keys (unless `mode` says)."""
        prepared = self.workspace.prepared
        if prepared is None:
            return
        if mode is None:
            unmapped = any(row.status is Status.UNMAPPED and row.source_shape is not None for row in prepared.plan.rows)
            mode = SOURCE_KEYS if unmapped else TARGET_KEYS
        selected = [r.source_key for r in self.page.selected_rows() if r.source_key is not None and r.source_shape is not None]
        filtered = [key for key in self.page.visible_source_keys() if key is not None and prepared.tensors.get(key) is not None]
        dialog = BulkRenameDialog(
            self.page, prepared=prepared, fixes=commands.copy_overrides(self.fixes), slot=self.previewing,
            selected=selected, filtered=filtered, mode=mode, on_apply=self._apply_bulk_rename,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.bulk_dialog = dialog
        dialog.open()

    def _apply_bulk_rename(self, preview: RenamePreview) -> None:
        if not self._editable():
            return
        if preview.mode == SOURCE_KEYS:
            self._push(commands.source_rule_command(self.fixes, preview.pattern, preview.replacement, self.set_fixes))
        else:
            self._push(commands.bulk_rename_command(self.fixes, preview.renames, preview.pattern, self.set_fixes))

    def apply_suggestions(self) -> None:
        """Fix every row whose best suggestion is confident, as one step."""
        confident = self.suggestions.confident()
        if not confident or not self._editable():
            return
        self._push(commands.suggestions_command(self.fixes, confident, self.set_fixes))

    # -- the fixes Speechport inferred ---------------------------------------------------------------

    def set_inferred_fixes(self, applied: bool) -> None:
        """Strip the wrapper prefix again (`applied`), or read the keys as saved: one undoable step."""
        workspace = self.workspace
        if not self._editable() or not workspace.inferred_found or workspace.inferred_applied == applied:
            return
        self._push(commands.InferredFixesCommand(self._inferred_text(applied), applied, workspace.set_inferred_fixes))

    def _record_inferred_fixes(self) -> None:
        """A checkpoint opened with inferred fixes: they become the first step of its history, done
        already. Recorded once per checkpoint (reopening it keeps the history as it is)."""
        workspace = self.workspace
        if (workspace.prepared is None or not workspace.inferred_found or workspace.inferred_recorded
                or not workspace.inferred_applied):  # opened with fixes that keep the prefix: nothing was done
            return
        workspace.inferred_recorded = True
        was_clean = self.undo_stack.isClean()
        self.undo_stack.push(commands.InferredFixesCommand(
            self._inferred_text(True), True, workspace.set_inferred_fixes, already_done=True))
        if was_clean:
            self.undo_stack.setClean()  # nothing of the user's to save yet

    def _inferred_text(self, applied: bool) -> str:
        found = wrapper_prefix(self.workspace.prepared.tensors)
        prefix = found[0] if found is not None else "the wrapper prefix"
        return f"Strip {prefix!r} from every key" if applied else f"Read the keys as saved, with {prefix!r}"

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
                          f"{len(loaded.drop)} drop(s), {len(loaded.rules)} rule(s), "
                          f"{len(loaded.source_rules)} source rule(s)")
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
