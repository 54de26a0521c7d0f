"""The open checkpoint and everything that belongs to it, in one object that says when it changes.

The inputs it was opened with (checkpoint, config, base model, labels, output folder — and whether
that folder was suggested or chosen by the user), the opened `core.conversion.Prepared`, the user's
fixes with their undo history (and whether the fixes Speechport inferred itself are applied), the last conversion, and the audition's side of it (the converted
folder to compare against, the models loaded for it, the last comparison). Panels read it and
change it through its methods; each change emits its signal, then `changed`.

Opening another checkpoint goes through `reset`, the one place that forgets what belonged to the
previous one — so no panel can keep, say, the last checkpoint's converted folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from ...core.demo import DEMO_CHECKPOINT
from ...core.planning.mapping_file import Overrides
from . import commands
from .messages import Messages
from .sides_cache import SidesCache
from .task_runner import TaskRunner
from .task_slot import TaskSlot

DEMO_OUTPUT = Path.home() / "speechport-demo-hf"  # not inside the installed package


def same_path(a: str | Path | None, b: str | Path | None) -> bool:
    if not a or not b:
        return not a and not b
    return Path(a).expanduser().absolute() == Path(b).expanduser().absolute()


def suggested_output(source: str) -> tuple[str, str]:
    """Where a checkpoint's conversion goes unless the user says otherwise, and why there when it is
    not the usual place: beside it, `<stem>-hf`; in the home folder when its own folder cannot be
    written to (a read-only share, another user's folder)."""
    if not source:
        return "", ""
    source_path = Path(source).expanduser().absolute()
    if source_path.resolve() == DEMO_CHECKPOINT.resolve():
        return str(DEMO_OUTPUT), ""
    name = f"{source_path.stem}-hf"
    if source_path.parent.is_dir() and not os.access(source_path.parent, os.W_OK):
        return str(Path.home() / "speechport-output" / name), "the checkpoint's folder is read-only"
    return str(source_path.with_name(name)), ""


def classifies(prepared) -> bool:
    """Whether the opened checkpoint is a head that gives classes (whose names a labels file gives)."""
    return prepared is not None and prepared.plan.target_class.endswith(
        ("ForSequenceClassification", "ForAudioFrameClassification", "ForXVector"))


def transcribes(prepared) -> bool:
    """Whether the opened checkpoint is a speech recognition (CTC) model (whose symbols a dictionary names)."""
    return prepared is not None and prepared.plan.target_class.endswith("ForCTC")


class Workspace(QObject):
    checkpointChanged = Signal()  # another checkpoint: everything below was reset
    inputsChanged = Signal()  # a path in the inputs, or whether a base model is wanted
    planChanged = Signal()  # opened, re-planned, or no longer open
    fixesChanged = Signal()
    conversionChanged = Signal()
    comparisonChanged = Signal()  # the converted folder to compare against, or the last comparison
    busyChanged = Signal()
    changed = Signal()  # after any of the above: for views that show a little of everything

    def __init__(self, runner: TaskRunner, messages: Messages, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner
        self.messages = messages
        self._checkpoint_slots: list[TaskSlot] = []
        self.opening = self.task_slot("Opening", doing="opening the checkpoint")
        self.converting = self.task_slot("Conversion", doing="converting")
        self.comparing = self.task_slot("Comparison", doing="comparing", refusal="Not compared: ")

        # The inputs.
        self.source = ""
        self.config = ""
        self.base_model = ""
        self.base_model_wanted = False
        self.base_model_needed_by = ""  # the recipe of a head-only checkpoint that could not open without one
        self.labels = ""  # a labels file: the class names of a classification head
        self.dictionary = ""  # a dictionary file: the symbols a speech recognition (CTC) model writes
        self.dictionary_needed = False  # the checkpoint could not open without one
        self.output = ""
        self.output_chosen = False  # by the user; otherwise suggested from the checkpoint's name
        self.output_note = ""  # why a suggested folder is not beside the checkpoint
        self.recipe = ""  # a recipe the user chose over the detected one (a recipe's `alternative`); "" detects
        self.waiting_for_libraries = False  # opening as soon as torch and transformers are loaded

        # The checkpoint, the fixes and what was made of them.
        self.prepared = None  # core.conversion.Prepared
        self.fixes = Overrides()
        self.undo_stack = QUndoStack(self)
        self.inferred_found = []  # core.rules.Rule: the fixes Speechport inferred when it opened the checkpoint
        self.inferred_recorded = False  # they are a step of the undo history
        self.mapping_file = ""  # where the fixes were last saved
        self.result = None  # core.conversion.ConversionResult of the last conversion

        # The audition.
        self.converted = ""  # the folder compared against the checkpoint
        self.converted_chosen = False  # by the user; otherwise the last conversion's folder
        self.sides = SidesCache()  # both models, kept loaded between clips
        self.comparison = None  # core.comparison.Comparison of the last clip compared
        self.compared = None  # compare_bar.Compared: what it was made of

    def task_slot(self, name: str, *, doing: str, refusal: str = "", keep_on_reset: bool = False) -> TaskSlot:
        """A slot for one kind of background work; unless `keep_on_reset`, its task belongs to the
        checkpoint and is dropped when another one is opened."""
        slot = TaskSlot(name, self.runner, self.messages, doing=doing, refusal=refusal, parent=self)
        slot.busyChanged.connect(lambda _busy: self._emit(self.busyChanged))
        if not keep_on_reset:
            self._checkpoint_slots.append(slot)
        return slot

    def _emit(self, *signals) -> None:
        for signal in signals:
            signal.emit()
        self.changed.emit()

    # == the checkpoint =============================================================================

    def start_with(self, source: str = "", config: str = "", base_model: str = "", output: str = "") -> None:
        """The inputs the window was started with (`speechport gui SOURCE --config … --out …`)."""
        self.source, self.config, self.base_model = source, config, base_model
        self.base_model_wanted = bool(base_model)
        self.output_chosen = bool(output)
        self.output, self.output_note = (output, "") if output else suggested_output(source)
        self._emit(self.inputsChanged)

    def reset(self, source: str) -> None:
        """Another checkpoint: forget everything that belonged to the previous one.

        Its tasks are dropped (whatever they return is ignored), its fixes and their history, its
        conversion, its converted folder and comparison go; so do its config and base model. An
        output folder the user chose stays theirs; a suggested one follows the new checkpoint.
        Inputs and fixes given before any checkpoint was chosen are meant for this one, and stay.
        """
        had_checkpoint = bool(self.source)
        if self.prepared is not None:
            self.prepared.hasher.cancel()
        self.source = source
        if had_checkpoint:
            self.config = ""
            self.base_model = ""
            self.labels = ""
            self.dictionary = ""
            self.fixes = Overrides()
            self.undo_stack.clear()
            self.mapping_file = ""
        self.inferred_found = []
        self.inferred_recorded = False
        self.base_model_wanted = bool(self.base_model)
        self.base_model_needed_by = ""
        self.dictionary_needed = False
        self.recipe = ""
        if not self.output_chosen:
            self.output, self.output_note = suggested_output(source)
        self.waiting_for_libraries = False
        self.prepared = None
        self.result = None
        self.converted = ""
        self.converted_chosen = False
        self.sides.clear()
        self.comparison = self.compared = None
        for slot in self._checkpoint_slots:
            slot.drop()
        self._emit(self.checkpointChanged, self.inputsChanged, self.planChanged, self.fixesChanged,
                   self.conversionChanged, self.comparisonChanged, self.busyChanged)

    def set_prepared(self, prepared) -> None:
        """The checkpoint as opened (planned with the current fixes), or None when it could not be."""
        if self.prepared is not None and self.prepared is not prepared:
            self.prepared.hasher.cancel()
        self.prepared = prepared
        if prepared is not None:
            self.inferred_found = list(prepared.inferred_found)
            self.base_model_needed_by = ""
            self.dictionary_needed = False
            if prepared.recipe.needs_base_model or prepared.base_model is not None:
                self.base_model_wanted = True
        self._emit(self.planChanged, self.inputsChanged)

    def set_waiting_for_libraries(self, waiting: bool) -> None:
        if waiting != self.waiting_for_libraries:
            self.waiting_for_libraries = waiting
            self._emit(self.busyChanged)

    def is_opening(self) -> bool:
        return self.opening.busy() or self.waiting_for_libraries

    # == the inputs ================================================================================

    def set_config(self, path: str) -> None:
        self.config = path
        self._emit(self.inputsChanged)

    def set_labels(self, path: str) -> None:
        self.labels = path
        self._emit(self.inputsChanged)

    def labels_wanted(self) -> bool:
        """Show the labels input: a classification head is open, or the user gave a labels file."""
        return bool(self.labels) or classifies(self.prepared)

    def set_dictionary(self, path: str) -> None:
        self.dictionary = path
        self._emit(self.inputsChanged)

    def want_dictionary(self) -> None:
        """Show the dictionary input: the checkpoint could not open without one."""
        self.dictionary_needed = True
        self._emit(self.inputsChanged)

    def dictionary_wanted(self) -> bool:
        """Show the dictionary input: a speech recognition (CTC) model is open or needs one, or the user gave one."""
        return bool(self.dictionary) or self.dictionary_needed or transcribes(self.prepared)

    def set_base_model(self, path: str) -> None:
        self.base_model = path
        self.base_model_wanted = bool(path) or self.base_model_wanted
        self._emit(self.inputsChanged)

    def set_recipe(self, name: str) -> None:
        """Convert with this recipe instead of the detected one ("" detects again); the caller reopens."""
        self.recipe = name
        self._emit(self.inputsChanged)

    def want_base_model(self, needed_by: str = "") -> None:
        """Show the base model input: the user asked for it, or the recipe `needed_by` needs one."""
        self.base_model_wanted = True
        self.base_model_needed_by = needed_by or self.base_model_needed_by
        self._emit(self.inputsChanged)

    def set_output(self, path: str, chosen: bool = True) -> None:
        """The output folder; an empty one is suggested again for the next checkpoint."""
        self.output = path
        self.output_chosen = chosen and bool(path)
        self.output_note = ""
        self._emit(self.inputsChanged)

    # == fixes, conversion, audition ===============================================================

    def set_fixes(self, fixes: Overrides) -> None:
        """The user's fixes: the core plans them again (milliseconds)."""
        self.fixes = commands.copy_overrides(fixes)
        if self.prepared is not None:
            self.prepared.replan(commands.copy_overrides(fixes))
        self._emit(self.fixesChanged, self.planChanged)

    @property
    def inferred_applied(self) -> bool:
        """Whether the fixes Speechport inferred apply; False once the user undid them (keys read as saved)."""
        return not self.fixes.keep_wrapper_prefix

    def set_inferred_fixes(self, applied: bool) -> None:
        """Apply the fixes Speechport inferred (strip a wrapper prefix), or read the keys as saved."""
        fixes = self.fixes.copy()
        fixes.keep_wrapper_prefix = not applied  # part of the fixes: saved with them, reopened with them
        self.set_fixes(fixes)

    def set_result(self, result) -> None:
        """A conversion wrote its folder (or one starts: None); the audition compares against it from now on."""
        self.result = result
        if result is not None:
            self.converted = str(result.output)
            self.converted_chosen = False
            self._emit(self.conversionChanged, self.comparisonChanged)
        else:
            self._emit(self.conversionChanged)

    def set_converted(self, path: str, chosen: bool = True) -> None:
        """The folder to compare with the checkpoint: one the user chose, or the last conversion's."""
        self.converted = path
        self.converted_chosen = chosen and bool(path)
        self._emit(self.comparisonChanged)

    def set_comparison(self, comparison, compared=None) -> None:
        self.comparison = comparison
        self.compared = compared if comparison is not None else None
        self._emit(self.comparisonChanged)
