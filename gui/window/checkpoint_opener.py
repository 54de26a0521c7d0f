"""Opening the workspace's checkpoint: detect its recipe, settle its config and plan it, on a worker;
and what the window says when that cannot be done (an untrusted pickle, a head that needs its base
model, a bad file)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from ...core.errors import ConsentNeeded, NeedsBaseModel, NeedsDictionary
from ...core.library_guard import NeedsLibraries
from ..shared import dialogs
from ..workspace import commands, workers
from ..workspace.workspace import Workspace
from .libraries import LibraryLoader


def _release(prepared) -> None:
    prepared.hasher.cancel()  # a newer request replaced this one: stop hashing its source


class CheckpointOpener(QObject):
    librariesWanted = Signal()  # a checkpoint opened (or could not): time to load torch and transformers
    baseModelRequested = Signal(str)  # the user pressed "Choose base model folder…" ("folder") or "…file…" ("file")
    dictionaryRequested = Signal()  # the user pressed "Choose dictionary…"

    def __init__(self, workspace: Workspace, libraries: LibraryLoader, dialog_parent: QWidget):
        super().__init__(dialog_parent)
        self.workspace = workspace
        self.libraries = libraries
        self.dialog_parent = dialog_parent
        self.trusted_sources: set[str] = set()  # pickles the user agreed to load, this session
        libraries.loaded.connect(self._libraries_loaded)
        libraries.failed.connect(lambda: workspace.set_waiting_for_libraries(False))

    def open(self) -> None:
        """Open (again) the workspace's checkpoint with its inputs and fixes."""
        workspace = self.workspace
        source = workspace.source
        workspace.set_waiting_for_libraries(False)
        if not source:
            workspace.opening.drop()
            return
        workspace.messages.hide()
        # Before torch and transformers are in, a known architecture opens from the target cache;
        # anything that needs them stops with NeedsLibraries and opens again once they are loaded.
        libraries = self.libraries.ready()
        task = workers.Task(
            "prepare", workers.prepare_job, source,
            config=workspace.config or None,
            base_model=workspace.base_model or None,
            labels=workspace.labels or None,
            dictionary=workspace.dictionary or None,
            trust_pickle=self._key(source) in self.trusted_sources,
            fixes=commands.copy_overrides(workspace.fixes),
            with_progress=True,
            **({"recipe": workspace.recipe} if workspace.recipe else {}),
            **({} if libraries else {"libraries": False}),
        )
        task.source = source
        workspace.opening.start(task, self._succeeded, failed=self._failed, progressed=self._progress, stale=_release)
        workspace.messages.log(f"Opening {source}")

    def cancel(self) -> bool:
        """Stop opening; False when nothing was being opened."""
        workspace = self.workspace
        if not workspace.is_opening():
            return False
        workspace.opening.drop()
        workspace.set_waiting_for_libraries(False)
        workspace.messages.log("Opening cancelled.")
        return True

    @staticmethod
    def _key(source: str) -> str:
        return str(Path(source).expanduser().absolute())

    def _load_libraries(self) -> None:
        """Start loading torch and transformers in the background (for the window, via its status line)."""
        self.librariesWanted.emit()

    def _libraries_loaded(self, _loaded) -> None:
        if self.workspace.waiting_for_libraries:
            self.open()

    def _progress(self, _task, event) -> None:
        if event.stage:
            self.workspace.messages.status(f"Opening: {event.stage}…", 3000)

    def _succeeded(self, task, prepared) -> None:
        workspace = self.workspace
        workspace.messages.status("")
        if not commands.same_overrides(prepared.overrides, workspace.fixes):
            prepared.replan(commands.copy_overrides(workspace.fixes))  # fixes made while it was opening
        workspace.set_prepared(prepared)
        plan = prepared.plan
        log = workspace.messages.log
        log(f"Opened {prepared.source.name} in {task.seconds:.2f} s: {prepared.recipe.name} recipe, "
            f"{prepared.layout} layout, config {prepared.config.origin}; plan: {plan.summary()}")
        for note in plan.notes:
            log(f"note: {note}")
        for line in plan.problem_lines():
            log(f"problem: {line}")
        self._offer_alternative(prepared)
        self._load_libraries()  # the Audition tab needs them; the table is filled already

    def _offer_alternative(self, prepared) -> None:
        """A checkpoint the detected recipe cannot convert whole, but another can in part (a UnitY speech
        encoder's inner encoder): offered as a choice, never taken silently; once taken, said so, with the
        way back."""
        workspace = self.workspace
        if workspace.recipe:
            detected = prepared.detection.evidence
            workspace.messages.show(
                "info",
                f"Converting with the {prepared.recipe.name} recipe, as you chose: {prepared.recipe.title}. "
                "Everything outside it is dropped, each row with its reason.",
                [("Use the detected recipe", lambda: self.choose_recipe(""), "detectedRecipeButton")],
            )
            workspace.messages.log(f"recipe chosen by you: {prepared.recipe.name} (the checkpoint: {detected})")
            return
        alternative = prepared.recipe.alternative
        if alternative is None:
            return
        workspace.messages.show(
            "warning",
            f"This checkpoint cannot be converted whole: {alternative.why}. {alternative.action} "
            f"(the {alternative.recipe} recipe) to convert the part that can; the rest is dropped, each row with "
            "its reason.",
            [(alternative.action, lambda: self.choose_recipe(alternative.recipe), "alternativeRecipeButton")],
        )

    def choose_recipe(self, name: str) -> None:
        """Open the checkpoint with this recipe ("" detects it again)."""
        self.workspace.set_recipe(name)
        self.open()

    def _failed(self, task, error) -> bool:
        workspace = self.workspace
        messages = workspace.messages
        messages.status("")
        if isinstance(error, NeedsLibraries):  # opened again as soon as torch and transformers are in
            messages.log(f"Opening {Path(task.source).name} waits for torch and transformers: {error}")
            if self.libraries.ready():  # they came in meanwhile
                self.open()
            else:
                workspace.set_waiting_for_libraries(True)
                self._load_libraries()
            return True
        workspace.set_prepared(None)
        self._load_libraries()
        if isinstance(error, ConsentNeeded):  # a pickle that needs other globals, or torch's safe loader refuses
            messages.log(f"refused: {error}")
            if dialogs.ask_trust_pickle(self.dialog_parent, error):
                messages.log(f"You chose to trust {task.source}; loading it with its code.")
                self.trusted_sources.add(self._key(task.source))
                self.open()
            else:
                # error.message: the hint names the CLI's --trust-pickle; here the question was the way to trust it
                messages.error(f"Not opened: you chose not to trust it. {error.message}")
            return True
        if isinstance(error, NeedsBaseModel):
            workspace.want_base_model(needed_by=error.recipe)
            messages.show(
                "warning",
                f"This {error.recipe} checkpoint holds only a downstream head. Choose the upstream model it was "
                "trained on (Base model): its transformers folder, or its original checkpoint file, which is "
                "converted along with the head. Then it opens.",
                [("Choose base model folder…", lambda: self.baseModelRequested.emit("folder"), "chooseBaseModelButton"),
                 ("Choose base model file…", lambda: self.baseModelRequested.emit("file"), "chooseBaseModelFileButton")],
            )
            messages.log(str(error))
            return True
        if isinstance(error, NeedsDictionary):
            workspace.want_dictionary()
            messages.show(
                "warning",
                "This speech recognition (CTC) checkpoint does not carry the dictionary of the symbols it writes, and "
                "no dict.ltr.txt lies beside it. Choose the dictionary it was fine-tuned with (Dictionary): then it "
                "opens.",
                [("Choose dictionary…", self.dictionaryRequested.emit, "chooseDictionaryButton")],
            )
            messages.log(str(error))
            return True
        return False  # said the way every failure is
