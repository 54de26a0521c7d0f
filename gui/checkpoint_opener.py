"""Opening a checkpoint from the input fields: detect its recipe, settle its config and plan it,
on a worker; and what the window says when that cannot be done (an untrusted pickle, a head that
needs its base model, a bad file)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from ..core.errors import Cancelled, NeedsBaseModel, SpeechportError, UnsafePickle
from . import commands, dialogs, workers

if TYPE_CHECKING:
    from .main_window import MainWindow


class CheckpointOpener(QObject):
    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.main_window = window
        self.task: workers.Task | None = None
        self.wanted = False  # open as soon as torch and transformers are loaded
        self.opening_source = ""

    def busy(self) -> bool:
        return self.task is not None or self.wanted

    def open_from_fields(self) -> None:
        window = self.main_window
        inputs = window.inputs
        source = inputs.source_field.path()
        self.wanted = False
        if not source:
            window.forget_checkpoint()
            window.update_all()
            return
        if window.libraries is None:
            self.wanted = True  # opened as soon as torch and transformers are in
            window.start_loading_libraries()
            window.update_all()
            return
        self.cancel()
        window.message_bar.hide()
        self.opening_source = source
        task = workers.Task(
            "prepare", workers.prepare_job, source,
            config=inputs.config_field.path() or None,
            base_model=inputs.base_model_field.path() or None,
            trust_pickle=str(Path(source).expanduser().absolute()) in window.trusted_sources,
            fixes=commands.copy_overrides(window.fixes),
            with_progress=True,
        )
        self.task = task
        window.runner.run(task, self._succeeded, self._failed, self._progress)
        window.log(f"Opening {source}")
        window.update_all()

    def libraries_ready(self) -> None:
        if self.wanted:
            self.wanted = False
            self.open_from_fields()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def _progress(self, task, event) -> None:
        if task is self.task and event.stage:
            self.main_window.statusBar().showMessage(f"Opening: {event.stage}…", 3000)

    def _succeeded(self, task, prepared) -> None:
        if task is not self.task:
            prepared.hasher.cancel()  # a newer request replaced this one
            return
        window = self.main_window
        self.task = None
        window.statusBar().clearMessage()
        if window.prepared is not None and window.prepared is not prepared:
            window.prepared.hasher.cancel()
        if not commands.same_overrides(prepared.overrides, window.fixes):
            prepared.replan(commands.copy_overrides(window.fixes))  # fixes made while it was opening
        window.prepared = prepared
        window.result = None
        if prepared.recipe.needs_base_model or prepared.base_model is not None:
            window.base_model_wanted = True
        window.inputs.set_base_model_visible(window.base_model_wanted)
        window.mapping_page.show_plan(prepared.plan)
        window.config_page.show_config(prepared)
        plan = prepared.plan
        window.log(
            f"Opened {prepared.source.name} in {task.seconds:.2f} s: {prepared.recipe.name} recipe, "
            f"{prepared.layout} layout, config {prepared.config.origin}; plan: {plan.summary()}"
        )
        for note in plan.notes:
            window.log(f"note: {note}")
        for line in plan.problem_lines():
            window.log(f"problem: {line}")
        window.update_all()

    def _failed(self, task, error) -> None:
        if task is not self.task:
            return
        window = self.main_window
        self.task = None
        window.statusBar().clearMessage()
        source = self.opening_source
        if isinstance(error, Cancelled):
            window.log("Opening cancelled.")
        elif isinstance(error, UnsafePickle):
            window.log(f"refused: {error}")
            if dialogs.ask_trust_pickle(window, error):
                window.log(f"You chose to trust {error.path}; loading it with its code.")
                window.trusted_sources.add(str(Path(source).expanduser().absolute()))
                self.open_from_fields()
                return
            self.show_plan_unavailable()
            # error.message: the hint names the CLI's --trust-pickle; here the question was the way to trust it
            window.show_error(f"Not opened: you chose not to trust it. {error.message}")
        elif isinstance(error, NeedsBaseModel):
            window.base_model_wanted = True
            window.inputs.set_base_model_visible(True)
            self.show_plan_unavailable()
            window.inputs.recipe_label.setText(f"{error.recipe} (a downstream head: it needs its base model)")
            window.message_bar.show_message(
                "warning",
                f"This {error.recipe} checkpoint holds only a downstream head. Choose the upstream model "
                "folder it was trained on (Base model), and it opens.",
                [("Choose base model folder…", window.choose_base_model, "chooseBaseModelButton")],
            )
            window.log(str(error))
            window.inputs.base_model_field.edit.setFocus()
        elif isinstance(error, SpeechportError):
            self.show_plan_unavailable()
            window.show_error(str(error))
        else:
            self.show_plan_unavailable()
            window.report_internal_error(error, task.traceback)
        window.update_all()

    def show_plan_unavailable(self) -> None:
        window = self.main_window
        if window.prepared is not None:
            window.prepared.hasher.cancel()
        window.prepared = None
        window.mapping_page.model.set_plan(None)
