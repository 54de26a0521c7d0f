"""The Speechport window: it composes the panels, the menus, the toolbar and the shortcuts, and
connects them to the workspace (the open checkpoint and everything that belongs to it).

The window is a face of `speechport.core`: its panels call `prepare`, `Prepared.replan` and
`convert` through the workspace's task slots and show what they return. Nothing here decides how
a key maps; the user's fixes are an `Overrides` object, exactly what a `--mapping` file holds.

Layout: messages and inputs (`InputsPanel`) on top; a horizontal splitter (`workArea`) whose first
widget is the tab set (Mapping, Audition, Config, Report), so a side panel can be added to its
right, and a vertical splitter that puts the log under it; the conversion bar (`ConversionBar`) at
the bottom. The Audition tab (`AuditionPage`: plots and audio) is built the first time it is shown,
so pyqtgraph and QtMultimedia cost the window's start nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.demo import DEMO_CHECKPOINT, DEMO_CLIPS, is_demo_output
from ...core.planning.mapping_file import Overrides
from ..audition.clip_chooser import is_audio
from ..mapping.conversion_bar import ConversionBar
from ..mapping.fixes_editor import FixesEditor
from ..mapping.inputs_panel import InputsPanel
from ..mapping.mapping_page import MappingPage
from ..mapping.plan_notices import PlanNotices
from ..mapping.plan_suggestions import PlanSuggestions
from ..mapping.rename_preview import SOURCE_KEYS
from ..shared import dialogs, theme
from ..shared.widgets import AltLettersTypeNothing, MessageBar, local_paths
from ..workspace import workers
from ..workspace.messages import Messages
from ..workspace.task_runner import TaskRunner
from ..workspace.workspace import DEMO_OUTPUT, Workspace, same_path
from . import window_commands
from .checkpoint_opener import CheckpointOpener
from .libraries import LibraryLoader
from .log_pane import LogPane
from .pages import ConfigPage, ReportPage

LOG_SHOWN_SETTING = "window/log_shown"  # whether the whole log is shown (else its latest line)


def empty_state_text(workspace: Workspace) -> tuple[str, str]:
    """What the mapping page says while there is no plan to show."""
    source = workspace.source
    name = Path(source).name if source else ""
    if not source:
        return ("Open a checkpoint to see how its keys map",
                "Choose a .pt, .ckpt or .safetensors file above (Ctrl+O) or drop one anywhere on the window. "
                "Its converted folder goes beside it, named after it with -hf (in your home folder when its "
                f"folder is read-only); you can choose another. The demo's goes to {_shown(DEMO_OUTPUT)}.")
    if workspace.is_opening():
        waiting = "Waiting for torch and transformers, then reading" if workspace.waiting_for_libraries else "Reading"
        return f"Opening {name}…", f"{waiting} the checkpoint, detecting its recipe and building the plan."
    if workspace.base_model_wanted and not workspace.base_model:
        return f"{name} needs its base model", ("Choose the upstream model it was trained on (Base model, above): a "
                                                       "transformers folder or its original checkpoint file.")
    return (f"{name} is not open",
            "See the message above: fix the input and press Enter in its field, or Reload (F5).")


def _shown(path: Path) -> str:
    """A path as people read it: the home folder as ~."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


class MainWindow(QMainWindow):
    def __init__(
        self,
        source: str | Path | None = None,
        config: str | Path | None = None,
        base_model: str | Path | None = None,
        output: str | Path | None = None,
        *,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.timings: dict[str, float] = {"created": time.perf_counter()}
        self.settings = settings if settings is not None else QSettings("Speechport", "Speechport")
        self.runner = TaskRunner(self)
        self.messages = Messages(self)
        self.workspace = Workspace(self.runner, self.messages, self)
        self.loader = LibraryLoader(self.workspace.task_slot(
            "Loading torch and transformers", doing="loading torch and transformers", keep_on_reset=True), self)
        self._audition = None  # the AuditionPage, once its tab was shown
        self._quit_confirmed = False  # "Stop the conversion and quit?" was answered Yes
        self._demo_tour = ""  # the next step of "Try the demo": "convert", "audition", "compare", or none
        # An Alt+letter no mnemonic answers (its row is hidden) types nothing into the focused field.
        self._alt_guard = AltLettersTypeNothing(self)
        QApplication.instance().installEventFilter(self._alt_guard)

        self.setObjectName("speechportMainWindow")
        self.setWindowTitle("Speechport[*]")
        self.setWindowIcon(theme.app_icon())
        self.setAcceptDrops(True)
        window_commands.build_actions(self)
        self._build_ui()
        window_commands.build_toolbar(self)
        window_commands.build_menus(self)
        self._set_glyph_icons()
        self._connect()
        self.resize(1280, 800)
        self._restore_layout()

        self.workspace.start_with(*(str(path) if path else "" for path in (source, config, base_model, output)))
        self.update_all()
        if source:
            self.workspace.set_waiting_for_libraries(True)  # busy from the start: it opens once the window shows
            QTimer.singleShot(0, self.opener.open)

    # == the parts, for tests, scripts and the panels ==============================================

    @property
    def prepared(self):
        """The open checkpoint (core.conversion.Prepared), or None."""
        return self.workspace.prepared

    @property
    def result(self):
        """The last conversion (core.conversion.ConversionResult) of the open checkpoint, or None."""
        return self.workspace.result

    @property
    def fixes(self) -> Overrides:
        return self.workspace.fixes

    @property
    def undo_stack(self):
        return self.workspace.undo_stack

    @property
    def prepare_wanted(self) -> bool:
        """Opening waits for torch and transformers."""
        return self.workspace.waiting_for_libraries

    @property
    def libraries(self) -> workers.LibrariesLoaded | None:
        return self.loader.result

    @property
    def model(self):
        return self.mapping_page.model

    @property
    def proxy(self):
        return self.mapping_page.proxy

    @property
    def table(self):
        return self.mapping_page.table

    @property
    def log_pane(self):
        return self.log_box.edit

    @property
    def audition(self):
        """The Audition tab's page, built on first use."""
        return self._ensure_audition()

    def _ensure_audition(self):
        # Importing pyqtgraph holds the GIL for ~0.3 s wherever it runs (a worker thread would stall
        # the window just the same), so it happens once, when the user first asks for the tab.
        if self._audition is None:
            QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
            try:
                from ..audition.audition_page import AuditionPage

                page = AuditionPage(self.workspace, self.settings, self.audition_holder)
                page.pathsDropped.connect(self.route_dropped_paths)
                self.audition_holder.layout().addWidget(page)
                self._audition = page
            finally:
                QApplication.restoreOverrideCursor()
        return self._audition

    def show_audition(self):
        self.tabs.setCurrentWidget(self.audition_holder)
        return self.audition

    # == construction =============================================================================

    def _build_ui(self) -> None:
        central = QWidget(self)
        central.setObjectName("central")
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 6)
        outer.setSpacing(6)

        self.message_bar = MessageBar(central)
        outer.addWidget(self.message_bar)
        self.inputs = InputsPanel(self.workspace, self.settings, central)
        outer.addWidget(self.inputs)

        # -- work area: tabs (mapping first) beside room for more, log below ----------------------
        self.mapping_page = MappingPage(
            prepared=lambda: self.workspace.prepared, drop_action=self.act_drop, restore_action=self.act_restore,
            bulk_action=self.act_bulk, problems_action=self.act_problems, suggestions_action=self.act_suggestions,
            parent=self)
        self.suggestions = PlanSuggestions(self.workspace)
        self.fixes_editor = FixesEditor(self.workspace, self.mapping_page, self.suggestions)
        self.notices = PlanNotices(self.workspace, self.suggestions, self.act_suggestions, self.mapping_page)
        self.mapping_page.set_notices(self.notices)
        self.opener = CheckpointOpener(self.workspace, self.loader, self)
        self.config_page = ConfigPage(self)
        self.report_view = ReportPage(self.workspace, self)
        self.tabs = QTabWidget(central)
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.mapping_page, "&Mapping")
        self.audition_holder = QWidget(self)
        self.audition_holder.setObjectName("auditionTab")
        QVBoxLayout(self.audition_holder).setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self.audition_holder, "&Audition")
        self.tabs.addTab(self.config_page, "Confi&g")
        self.tabs.addTab(self.report_view, "&Report")

        self.work_area = QSplitter(Qt.Orientation.Horizontal, central)
        self.work_area.setObjectName("workArea")
        self.work_area.addWidget(self.tabs)
        self.work_area.setChildrenCollapsible(False)

        self.log_box = LogPane(central)
        self.log_box.toggled.connect(lambda shown: shown != self.act_show_log.isChecked() and self.act_show_log.trigger())
        self.main_splitter = QSplitter(Qt.Orientation.Vertical, central)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(self.work_area)
        self.main_splitter.addWidget(self.log_box)
        self.main_splitter.setStretchFactor(0, 1)
        self.main_splitter.setStretchFactor(1, 0)
        self.main_splitter.setSizes([520, 110])
        self.main_splitter.setChildrenCollapsible(False)
        outer.addWidget(self.main_splitter, 1)

        self.conversion_bar = ConversionBar(self.workspace, self.act_convert, self.act_cancel, central)
        outer.addWidget(self.conversion_bar)
        self.setCentralWidget(central)

        self.library_status = QLabel("Loading torch and transformers…", self)
        self.library_status.setObjectName("libraryStatus")
        self.statusBar().addWidget(self.log_box.glimpse, 1)  # the log's latest line, until it is shown
        self.statusBar().addPermanentWidget(self.library_status)
        self.statusBar().setSizeGripEnabled(True)

    def _connect(self) -> None:
        messages = self.messages
        messages.logged.connect(self.log_box.log)
        messages.shown.connect(self.message_bar.show_message)
        messages.hidden.connect(self.message_bar.hide)
        messages.statusShown.connect(self._show_status)
        messages.internalError.connect(lambda text: dialogs.show_internal_error(self, text))

        workspace = self.workspace
        workspace.changed.connect(self.update_all)
        workspace.planChanged.connect(self._show_plan)
        workspace.checkpointChanged.connect(self._checkpoint_changed)
        workspace.conversionChanged.connect(self._conversion_changed)
        self.loader.loaded.connect(self._libraries_loaded)
        self.loader.failed.connect(lambda: self.library_status.setText("torch and transformers could not be loaded"))

        inputs = self.inputs
        inputs.source_field.pathChosen.connect(self._source_chosen)
        inputs.config_field.pathChosen.connect(self._config_chosen)
        inputs.base_model_field.pathChosen.connect(self._base_model_chosen)
        inputs.labels_field.pathChosen.connect(self._labels_chosen)
        inputs.dictionary_field.pathChosen.connect(self._dictionary_chosen)
        inputs.output_field.pathChosen.connect(lambda path: workspace.set_output(path, chosen=True))
        self.opener.baseModelRequested.connect(self.choose_base_model)
        self.opener.dictionaryRequested.connect(lambda: self.inputs.dictionary_field.choose_file())
        self.opener.librariesWanted.connect(self.start_loading_libraries)
        inputs.detectRequested.connect(lambda: self.opener.choose_recipe(""))
        inputs.convertAgainRequested.connect(self.convert)

        page = self.mapping_page
        page.model.renameRequested.connect(self.fixes_editor.rename)
        page.table.selectionModel().selectionChanged.connect(self._update_actions)
        page.statusMessage.connect(self.statusBar().showMessage)
        page.openRequested.connect(self.browse_source)
        page.demoRequested.connect(self.try_demo)
        page.guideRequested.connect(self.act_getting_started.trigger)
        self.suggestions.changed.connect(lambda: page.model.set_suggestions(self.suggestions.ranked()))
        self.suggestions.changed.connect(self._update_actions)
        self.notices.inferredFixesRequested.connect(self.fixes_editor.set_inferred_fixes)
        self.notices.sourceRenameRequested.connect(lambda: self.fixes_editor.bulk_rename(SOURCE_KEYS))
        self.conversion_bar.reason.linkActivated.connect(self._reason_link)
        self.conversion_bar.reportRequested.connect(lambda: self.tabs.setCurrentWidget(self.report_view))
        self.conversion_bar.sourceChanged.connect(self._source_changed_while_converting)
        self.tabs.currentChanged.connect(self._tab_changed)
        stack = self.undo_stack
        stack.cleanChanged.connect(self._clean_changed)
        for signal in (stack.canUndoChanged, stack.canRedoChanged, stack.indexChanged):
            signal.connect(self._update_actions)
        QApplication.styleHints().colorSchemeChanged.connect(self._palette_changed)

    # == choosing the checkpoint and its inputs =======================================================

    def open_source(self, path: str | Path) -> None:
        """Open a checkpoint, as choosing it in the file dialog does."""
        self.inputs.source_field.commit(str(path))

    def open_demo(self) -> None:
        self.open_source(DEMO_CHECKPOINT)

    def try_demo(self) -> None:
        """The first window's one click: open the demo, convert it once its plan is shown, then audition
        it: the Audition tab on the demo's speech clip, compared as soon as the clip is read. Any step
        the user takes over (another checkpoint, a failed step) ends the tour where it is."""
        self._demo_tour = "convert"
        self.open_demo()

    def _demo_tour_step(self) -> None:
        step, workspace = self._demo_tour, self.workspace
        if not step:
            return
        if not workspace.source or not same_path(workspace.source, DEMO_CHECKPOINT):
            self._demo_tour = ""  # another checkpoint was opened meanwhile
        elif step == "convert" and workspace.prepared is not None and not workspace.is_opening():
            self._demo_tour = "audition"
            if self.act_convert.isEnabled():
                self.convert()
            else:
                self._demo_tour = ""  # the plan has problems: the table says which
        elif step == "audition" and workspace.result is not None and not self.busy_converting():
            self._demo_tour = "compare"
            page = self.show_audition()
            page.clip_slot.busyChanged.connect(self._demo_clip_read)
            page.choose_clip(DEMO_CLIPS[0])

    def _demo_clip_read(self, busy: bool) -> None:
        if busy or self._demo_tour != "compare":
            return
        page = self.audition
        page.clip_slot.busyChanged.disconnect(self._demo_clip_read)
        self._demo_tour = ""
        if page.clip is not None and page.compare_bar.compare_button.isEnabled():
            page.compare()

    def browse_source(self) -> None:
        self.inputs.source_field.choose()

    def choose_base_model(self, kind: str = "") -> None:
        """kind "folder" or "file"; otherwise the field asks which."""
        self.workspace.want_base_model()
        field = self.inputs.base_model_field
        {"folder": field.choose_folder, "file": field.choose_file}.get(kind, field.choose)()

    def reload(self) -> None:
        """Open the checkpoint again with the inputs as they stand, paths still being typed included."""
        inputs = self.inputs
        workspace = self.workspace
        if inputs.source_field.take_typed() is not None or not workspace.source:
            self._source_chosen(inputs.source_field.path())  # another checkpoint: asked about unsaved fixes first
            return
        for field, choose in ((inputs.config_field, workspace.set_config),
                              (inputs.base_model_field, workspace.set_base_model),
                              (inputs.labels_field, workspace.set_labels),
                              (inputs.dictionary_field, workspace.set_dictionary),
                              (inputs.output_field, workspace.set_output)):
            typed = field.take_typed()
            if typed is not None:
                choose(typed)
        self.opener.open()

    def _source_chosen(self, path: str) -> None:
        workspace = self.workspace
        if self.busy_converting():  # e.g. File ▸ Open recent: the conversion's checkpoint stays open
            self.inputs.source_field.sync(workspace.source)
            self.statusBar().showMessage("A conversion is running: open another checkpoint once it is done.", 4000)
            return
        if workspace.source and same_path(path, workspace.source):
            self.opener.open()  # the same checkpoint again: its fixes and conversion stay
            return
        if not self._may_leave_checkpoint(then=lambda: self.open_source(path)):
            return
        workspace.reset(path)
        self.opener.open()

    def _may_leave_checkpoint(self, then) -> bool:
        """Whether the open checkpoint may be replaced now: its unsaved fixes are saved or discarded.
        If not (Cancel, or Save still writing), the source field shows the open checkpoint again;
        `then` runs once a Save is written."""
        if not self.workspace.source or self.fixes_editor.may_leave("opening another checkpoint", then=then):
            return True
        self.inputs.source_field.sync(self.workspace.source)
        return False

    def _config_chosen(self, path: str) -> None:
        self.workspace.set_config(path)
        self.opener.open()

    def _base_model_chosen(self, path: str) -> None:
        self.workspace.set_base_model(path)
        self.opener.open()

    def _labels_chosen(self, path: str) -> None:
        self.workspace.set_labels(path)
        self.opener.open()

    def _dictionary_chosen(self, path: str) -> None:
        self.workspace.set_dictionary(path)
        self.opener.open()

    def route_dropped_paths(self, paths: list[str]) -> None:
        """Put each dropped path where it belongs: checkpoint, config, mapping, base model, labels (a
        .txt file, for a head that gives classes), output or (an audio file) the clip to audition. A
        checkpoint comes first, so the config, base model or mapping dropped with it are its own,
        not the previous checkpoint's."""
        clips = [raw for raw in paths if is_audio(raw) and not Path(raw).is_dir()]
        if clips:
            self.show_audition().choose_clip(clips[0])
            paths = [raw for raw in paths if raw not in clips]
            if not paths:
                return
        if self.busy_converting():
            self.statusBar().showMessage("A conversion is running: drop files once it is done.", 4000)
            return
        workspace = self.workspace
        inputs = self.inputs
        folders = [raw for raw in paths if Path(raw).is_dir()]
        configs = [raw for raw in paths if raw not in folders and Path(raw).name == "config.json"]
        mappings = [raw for raw in paths if raw not in folders + configs and Path(raw).suffix.lower() in (".toml", ".json")]
        labels = [raw for raw in paths if raw not in folders and Path(raw).suffix.lower() == ".txt"]
        sources = [raw for raw in paths if raw not in folders + configs + mappings + labels]
        reopen = False
        if sources and not same_path(sources[0], workspace.source):
            if not self._may_leave_checkpoint(then=lambda: self.route_dropped_paths(paths)):
                return
            inputs.source_field.recent.add(sources[0])
            workspace.reset(sources[0])
            reopen = True
        for folder in folders:
            if workspace.base_model_wanted and not workspace.base_model:
                inputs.base_model_field.recent.add(folder)
                workspace.set_base_model(folder)
                reopen = True
            else:
                inputs.output_field.recent.add(folder)
                workspace.set_output(folder, chosen=True)
        for config in configs:
            inputs.config_field.recent.add(config)
            workspace.set_config(config)
            reopen = True
        for mapping in mappings:
            self.load_mapping(mapping)
        if labels and (workspace.labels_wanted() or sources):  # dropped with its checkpoint, or for the open head
            inputs.labels_field.recent.add(labels[0])
            workspace.set_labels(labels[0])
            reopen = True
        elif labels:
            self.statusBar().showMessage("A labels file names the classes of a classification head: open one first.",
                                         6000)
        if reopen or sources:
            self.opener.open()

    # == libraries ==================================================================================

    def start_loading_libraries(self) -> None:
        """Import torch and transformers in the background; the window is usable meanwhile."""
        if self.loader.ready():
            return
        self.library_status.setText("Loading torch and transformers…")
        self.log("Loading torch and transformers in the background…")
        self.loader.load()

    def _libraries_loaded(self, loaded: workers.LibrariesLoaded) -> None:
        self.timings["libraries"] = time.perf_counter()
        versions = " · ".join(f"{name} {version}" for name, version in loaded.versions.items())
        self.library_status.setText(f"Ready — {versions} (loaded in {loaded.seconds:.1f} s)")
        self.log(f"Loaded {versions} in {loaded.seconds:.1f} s")
        self.update_all()

    # == fixes and conversion (their panels do the work) ============================================

    def set_fixes(self, fixes: Overrides) -> None:
        self.fixes_editor.set_fixes(fixes)

    def rename_target(self, source: str, target: str) -> None:
        """Give one source key a new target key (undoable), as editing the cell does."""
        self.fixes_editor.rename(source, target)

    def select_source_key(self, source_key: str) -> None:
        self.mapping_page.select_source_key(source_key)

    def load_mapping(self, path: str | Path) -> None:
        self.fixes_editor.load_mapping(path)

    def save_mapping(self, path: str | Path) -> None:
        self.fixes_editor.save_mapping(path)

    def convert(self, force: bool = False) -> None:
        """Convert to the output folder; one typed and not applied yet is applied first (Convert, like
        Enter, says to use it)."""
        typed = self.inputs.output_field.take_typed() if not self.busy_converting() else None
        if typed is not None:
            self.workspace.set_output(typed, chosen=True)
        prepared, output = self.workspace.prepared, self.workspace.output
        if (self.act_convert.isEnabled() and prepared is not None and output
                and same_path(prepared.source, DEMO_CHECKPOINT) and is_demo_output(output)):
            force = True  # an earlier conversion of the demo: the demo's own to replace, without asking
        self.conversion_bar.convert(force)

    def _source_changed_while_converting(self, refusal: str) -> None:
        """What was read of the checkpoint when it opened no longer describes the file: open it again
        (its fixes stay), so the next conversion reads it as it is now."""
        self.opener.open()
        self.messages.error(f"Not converted: {refusal}. It is opened again as it is now, with your fixes.")

    def cancel(self) -> None:
        """Esc: stop the conversion, the comparison or the opening that runs (the first of them)."""
        if not (self.conversion_bar.cancel() or (self._audition is not None and self._audition.cancel_compare())):
            self.opener.cancel()

    def open_output_folder(self) -> None:
        self.conversion_bar.open_output_folder()

    def busy_converting(self) -> bool:
        return self.workspace.converting.busy()

    # == state → widgets ==========================================================================

    def update_all(self) -> None:
        source = self.workspace.source
        self.setWindowTitle((f"{Path(source).name} — Speechport" if source else "Speechport") + "[*]")
        if self.workspace.prepared is None:
            self.mapping_page.show_empty(*empty_state_text(self.workspace))
        self.mapping_page.update_summary()
        self._update_actions()
        if self._demo_tour:
            QTimer.singleShot(0, self._demo_tour_step)  # once every panel has seen the change

    def _show_plan(self) -> None:
        prepared = self.workspace.prepared
        self.mapping_page.show_plan(prepared.plan if prepared is not None else None)
        if prepared is not None:
            self.config_page.show_config(prepared)
        else:
            self.config_page.clear()

    def _checkpoint_changed(self) -> None:
        """Another checkpoint: what was shown of the previous one goes."""
        self.report_view.clear()
        self.mapping_page.show_all_statuses()

    def _conversion_changed(self) -> None:
        result = self.workspace.result
        if result is not None:
            self.report_view.show_result(result, self.workspace.fixes)

    def _update_actions(self, *_) -> None:
        workspace = self.workspace
        converting = self.busy_converting()
        comparing = workspace.comparing.task
        self.act_cancel.setEnabled(self.conversion_bar.cancel_button.isEnabled()
                                   or (comparing is not None and not comparing.cancelled)  # Esc stops a comparison too
                                   or (self._audition is not None and self._audition.testset.cancellable()))  # a test set
        editable = workspace.prepared is not None and not converting
        has_selection = self.mapping_page.has_selection()
        self.act_drop.setEnabled(editable and has_selection)
        self.act_restore.setEnabled(editable and has_selection)
        self.act_edit.setEnabled(editable)
        self.act_bulk.setEnabled(editable)
        self.act_suggestions.setEnabled(editable and bool(self.suggestions.confident()))
        self.act_next_problem.setEnabled(workspace.prepared is not None)
        stack = self.undo_stack
        self.act_undo.setEnabled(editable and stack.canUndo())
        self.act_redo.setEnabled(editable and stack.canRedo())
        # The menu names the step; the toolbar keeps its short label (icon text).
        self.act_undo.setText(f"&Undo {stack.undoText()}" if stack.canUndo() else "&Undo")
        self.act_redo.setText(f"&Redo {stack.redoText()}" if stack.canRedo() else "&Redo")
        self.act_undo.setIconText("Undo")
        self.act_redo.setIconText("Redo")
        self.act_undo.setToolTip(f"Undo {stack.undoText()} (Ctrl+Z)" if stack.canUndo() else "Undo (Ctrl+Z)")
        self.act_redo.setToolTip(f"Redo {stack.redoText()} (Ctrl+Shift+Z)" if stack.canRedo() else "Redo (Ctrl+Shift+Z)")
        self.act_save_mapping.setEnabled(not converting)
        self.act_load_mapping.setEnabled(not converting)
        self.act_open_folder.setEnabled(workspace.result is not None)
        for field in self.inputs.fields():
            field.setEnabled(not converting)
        for act in (self.act_open, self.act_demo, self.act_config, self.act_base_model, self.act_output, self.act_reload):
            act.setEnabled(not converting)
        self.mapping_page.set_editable(editable)

    def _reason_link(self, link: str) -> None:
        self.tabs.setCurrentWidget(self.mapping_page)
        self.mapping_page.toggle_problems(True)
        self.mapping_page.next_problem()

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.audition_holder:
            self._ensure_audition().focus_first_control()

    def focus_filter(self) -> None:
        self.tabs.setCurrentWidget(self.mapping_page)
        self.mapping_page.focus_filter()

    # == messages ===================================================================================

    def show_error(self, text: str, kind: str = "error") -> None:
        self.messages.error(text, kind)

    def report_internal_error(self, error: BaseException, traceback_text: str = "", context: str = "") -> None:
        """An exception the core does not expect: one readable line, never a traceback."""
        self.messages.internal_error(error, traceback_text, context)

    def log(self, text: str) -> None:
        self.messages.log(text)

    def _show_status(self, text: str, milliseconds: int) -> None:
        if text:
            self.statusBar().showMessage(text, milliseconds)
        else:
            self.statusBar().clearMessage()

    def busy(self) -> bool:
        """True while anything runs or waits to run in the background (tests and the benchmark wait on this)."""
        return self.runner.busy() or self.workspace.waiting_for_libraries

    # == window =====================================================================================

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if "shown" not in self.timings:
            self.timings["shown"] = time.perf_counter()
            # After the first paint; with a checkpoint to open, after it opened (or found it needs
            # them): the import and the table filling would otherwise share one GIL and stall the window.
            if not self.workspace.is_opening():
                QTimer.singleShot(0, self.start_loading_libraries)

    def stop_and_close(self) -> None:
        """Close, stopping a running conversion without asking (Ctrl+C in the terminal)."""
        self._quit_confirmed = True
        self.close()

    def closeEvent(self, event) -> None:
        if self.busy_converting() and not self._quit_confirmed:
            if not dialogs.ask_stop_conversion(self):
                event.ignore()  # the conversion goes on, and the window stays
                return
            self._quit_confirmed = True  # not asked again if the fixes question closes it later
        if not self.fixes_editor.may_leave("closing Speechport", then=self.close):
            event.ignore()  # kept open: the user cancelled, or it closes once the fixes are saved
            return
        if self._audition is not None:
            self._audition.shutdown()
        self.runner.cancel_all()
        self.workspace.set_waiting_for_libraries(False)
        self.runner.wait_for_done(30_000)  # a cancelled conversion removes its partial folder first
        if self.workspace.prepared is not None:
            self.workspace.prepared.hasher.cancel()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.main_splitter.saveState())
        super().closeEvent(event)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = self.settings.value("window/splitter")
        if splitter is not None:
            self.main_splitter.restoreState(splitter)
        # The log is one line until the user asks for all of it (and stays as they left it).
        shown = self.settings.value(LOG_SHOWN_SETTING, False, type=bool)
        self.act_show_log.setChecked(shown)
        self._show_log(shown)

    def dragEnterEvent(self, event) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = local_paths(event.mimeData())
        if not paths:
            return
        event.acceptProposedAction()
        self.route_dropped_paths(paths)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() in (event.Type.PaletteChange, event.Type.ApplicationPaletteChange):
            self._palette_changed()

    def _set_glyph_icons(self) -> None:
        """Icons drawn in the palette's text colour, redrawn when the palette changes."""
        for act, name in ((self.act_undo, "undo"), (self.act_redo, "redo"), (self.act_convert, "convert"),
                          (self.act_cancel, "cancel")):
            act.setIcon(theme.glyph_icon(name, self.palette()))
        self.conversion_bar.set_icons()

    def _palette_changed(self, *_) -> None:
        if not hasattr(self, "conversion_bar"):
            return  # a palette event during construction
        self._set_glyph_icons()
        self.message_bar.restyle()
        self.mapping_page.refresh_colours()
        self.notices.refresh()
        if self._audition is not None:
            self._audition.restyle()
        self._update_actions()

    def appearance_chosen(self) -> None:
        action = self.sender()
        appearance = action.data() if isinstance(action, QAction) else "system"
        self.settings.setValue("appearance", appearance)
        theme.apply_appearance(QApplication.instance(), appearance)
        self._palette_changed()

    def _clean_changed(self, clean: bool) -> None:
        self.setWindowModified(not clean)  # "[*]" in the title: fixes not saved to a mapping file

    def toggle_log(self, checked: bool) -> None:
        self._show_log(checked)
        self.settings.setValue(LOG_SHOWN_SETTING, checked)

    def _show_log(self, shown: bool) -> None:
        """The whole log in the splitter's lower pane, or its latest line in the status bar."""
        splitter = self.main_splitter
        sizes = splitter.sizes()
        if self.log_box.expanded and not shown and sizes[1] > 0:
            self.log_box.shown_height = sizes[1]
        self.log_box.set_expanded(shown)
        total = sum(sizes)
        if shown and total > 0:
            height = min(self.log_box.shown_height, total // 2)
            splitter.setSizes([total - height, height])
