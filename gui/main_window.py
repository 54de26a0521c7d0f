"""The Speechport window: it composes the panels, owns the session's state, the menus, the toolbar
and the shortcuts, and keeps every widget in step with that state.

The window is a face of `speechport.core`: it calls `prepare`, `Prepared.replan` and `convert`
and shows what they return. Nothing here decides how a key maps; the user's fixes are an
`Overrides` object, exactly what a `--mapping` file holds.

Layout: messages and inputs (`InputsPanel`) on top; a horizontal splitter (`workArea`) whose first
widget is the tab set (Mapping, Audition, Config, Report), so a side panel can be added to its
right, and a vertical splitter that puts the log under it; the conversion bar (`ConversionBar`) at
the bottom. The Audition tab (`AuditionPage`: plots and audio) is built the first time it is shown,
so pyqtgraph and QtMultimedia cost the window's start nothing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.demo import DEMO_CHECKPOINT
from ..core.mapping_file import Overrides
from . import dialogs, theme, window_commands, workers
from .checkpoint_opener import CheckpointOpener
from .clip_chooser import is_audio
from .conversion_bar import ConversionBar
from .fixes_editor import FixesEditor
from .inputs_panel import InputsPanel
from .log_pane import LogPane
from .mapping_page import MappingPage
from .pages import ConfigPage, ReportPage
from .task_runner import TaskRunner
from .widgets import MessageBar, local_paths

log = logging.getLogger(__name__)

DEMO_OUTPUT = Path.home() / "speechport-demo-hf"  # not inside the installed package


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
        self.libraries: workers.LibrariesLoaded | None = None
        self.library_task: workers.Task | None = None
        self.prepared = None  # core.conversion.Prepared, once a checkpoint is open
        self.result = None  # core.conversion.ConversionResult of the last conversion
        self.trusted_sources: set[str] = set()  # pickles the user agreed to load, this session
        self.base_model_wanted = base_model is not None
        self.output_suggested = False
        self.fixes_editor = FixesEditor(self)
        self.undo_stack = self.fixes_editor.undo_stack
        self.opener = CheckpointOpener(self)
        self._audition = None  # the AuditionPage, once its tab was shown

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

        self.inputs.source_field.set_path(source)
        self.inputs.config_field.set_path(config)
        self.inputs.base_model_field.set_path(base_model)
        self.inputs.output_field.set_path(output)
        if source and not output:
            self._suggest_output(str(source))
        self.inputs.set_base_model_visible(self.base_model_wanted)
        self.update_all()
        if source:
            self.opener.wanted = True
            QTimer.singleShot(0, self.opener.open_from_fields)

    # == the parts, for tests, scripts and the panels ==============================================

    @property
    def fixes(self) -> Overrides:
        return self.fixes_editor.fixes

    @property
    def prepare_wanted(self) -> bool:
        return self.opener.wanted

    @prepare_wanted.setter
    def prepare_wanted(self, wanted: bool) -> None:
        self.opener.wanted = wanted

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
                from .audition_page import AuditionPage

                self._audition = AuditionPage(self, self.audition_holder)
                self.audition_holder.layout().addWidget(self._audition)
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
        self.inputs = InputsPanel(self.settings, central)
        outer.addWidget(self.inputs)

        # -- work area: tabs (mapping first) beside room for more, log below ----------------------
        self.mapping_page = MappingPage(
            prepared=lambda: self.prepared, drop_action=self.act_drop, restore_action=self.act_restore,
            bulk_action=self.act_bulk, problems_action=self.act_problems, parent=self)
        self.config_page = ConfigPage(self)
        self.report_view = ReportPage(self)
        self.tabs = QTabWidget(central)
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.mapping_page, "&Mapping")
        self.audition_holder = QWidget(self)
        self.audition_holder.setObjectName("auditionTab")
        QVBoxLayout(self.audition_holder).setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self.audition_holder, "&Audition")
        self.tabs.addTab(self.config_page, "Con&fig")
        self.tabs.addTab(self.report_view, "&Report")

        self.work_area = QSplitter(Qt.Orientation.Horizontal, central)
        self.work_area.setObjectName("workArea")
        self.work_area.addWidget(self.tabs)
        self.work_area.setChildrenCollapsible(False)

        self.log_box = LogPane(central)
        self.main_splitter = QSplitter(Qt.Orientation.Vertical, central)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(self.work_area)
        self.main_splitter.addWidget(self.log_box)
        self.main_splitter.setStretchFactor(0, 1)
        self.main_splitter.setStretchFactor(1, 0)
        self.main_splitter.setSizes([520, 110])
        self.main_splitter.setChildrenCollapsible(False)
        outer.addWidget(self.main_splitter, 1)

        self.conversion_bar = ConversionBar(self, self.act_convert, self.act_cancel)
        outer.addWidget(self.conversion_bar)
        self.setCentralWidget(central)

        self.library_status = QLabel("Loading torch and transformers…", self)
        self.library_status.setObjectName("libraryStatus")
        self.statusBar().addPermanentWidget(self.library_status)
        self.statusBar().setSizeGripEnabled(True)


    def _connect(self) -> None:
        inputs = self.inputs
        inputs.source_field.pathChosen.connect(self._source_chosen)
        inputs.config_field.pathChosen.connect(lambda _path: self.opener.open_from_fields())
        inputs.base_model_field.pathChosen.connect(self._base_model_chosen)
        inputs.output_field.pathChosen.connect(self._output_chosen)
        inputs.output_field.edit.textEdited.connect(self._output_typed)
        page = self.mapping_page
        page.model.renameRequested.connect(self.fixes_editor.rename)
        page.table.selectionModel().selectionChanged.connect(self._update_actions)
        page.statusMessage.connect(self.statusBar().showMessage)
        page.openRequested.connect(self.browse_source)
        page.demoRequested.connect(self.open_demo)
        self.conversion_bar.reason.linkActivated.connect(self._reason_link)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        for signal in (self.undo_stack.canUndoChanged, self.undo_stack.canRedoChanged, self.undo_stack.indexChanged):
            signal.connect(self._update_actions)
        QApplication.styleHints().colorSchemeChanged.connect(self._palette_changed)

    # == opening ====================================================================================

    def open_source(self, path: str | Path) -> None:
        """Open a checkpoint, as choosing it in the file dialog does."""
        self.inputs.source_field.commit(str(path))

    def open_demo(self) -> None:
        if not self.inputs.output_field.path() or self.output_suggested:
            self.inputs.output_field.set_path(DEMO_OUTPUT)
            self.output_suggested = True
        self.open_source(DEMO_CHECKPOINT)

    def browse_source(self) -> None:
        self.inputs.source_field.choose()

    def choose_base_model(self) -> None:
        self.inputs.set_base_model_visible(True)
        self.inputs.base_model_field.choose()

    def _source_chosen(self, path: str) -> None:
        if self.prepared is not None and str(self.prepared.source) != str(Path(path).expanduser().absolute()):
            self.forget_checkpoint()
        self._suggest_output(path)
        self.opener.open_from_fields()

    def _base_model_chosen(self, path: str) -> None:
        self.base_model_wanted = bool(path) or self.base_model_wanted
        self.opener.open_from_fields()

    def _output_chosen(self, path: str) -> None:
        self.output_suggested = False
        self.update_all()

    def _output_typed(self, text: str) -> None:
        self.output_suggested = False
        self._update_actions()

    def _suggest_output(self, source: str) -> None:
        output = self.inputs.output_field
        if source and (not output.path() or self.output_suggested):
            source_path = Path(source).expanduser().absolute()
            if source_path.resolve() == DEMO_CHECKPOINT.resolve():
                folder = DEMO_OUTPUT
            else:
                folder = source_path.with_name(f"{source_path.stem}-hf")
            output.set_path(folder)
            self.output_suggested = True

    def forget_checkpoint(self) -> None:
        """A different checkpoint: its fixes, undo history and plan do not apply any more."""
        self.opener.cancel()
        if self.prepared is not None:
            self.prepared.hasher.cancel()
        self.prepared = None
        self.result = None
        self.fixes_editor.reset()
        self.mapping_page.show_plan(None)
        if self._audition is not None:
            self._audition.forget_models()
        self.base_model_wanted = bool(self.inputs.base_model_field.path())
        self.inputs.set_base_model_visible(self.base_model_wanted)

    # == libraries ==================================================================================

    def start_loading_libraries(self) -> None:
        """Import torch and transformers in the background; the window is usable meanwhile."""
        if self.libraries is not None or self.library_task is not None:
            return
        self.library_status.setText("Loading torch and transformers…")
        self.log("Loading torch and transformers in the background…")
        self.library_task = workers.Task("libraries", workers.load_libraries)
        self.runner.run(self.library_task, self._libraries_loaded, self._libraries_failed)

    def _libraries_loaded(self, task, loaded: workers.LibrariesLoaded) -> None:
        self.libraries = loaded
        self.library_task = None
        self.timings["libraries"] = time.perf_counter()
        versions = " · ".join(f"{name} {version}" for name, version in loaded.versions.items())
        self.library_status.setText(f"Ready — {versions} (loaded in {loaded.seconds:.1f} s)")
        self.log(f"Loaded {versions} in {loaded.seconds:.1f} s")
        self.opener.libraries_ready()
        self.update_all()

    def _libraries_failed(self, task, error) -> None:
        self.library_task = None
        self.opener.wanted = False
        self.library_status.setText("torch and transformers could not be loaded")
        self.report_internal_error(error, task.traceback, context="loading torch and transformers")

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
        self.conversion_bar.convert(force)

    def conversion_finished(self, result) -> None:
        """A conversion wrote its folder: the audition compares against it from now on."""
        if self._audition is not None:
            self._audition.conversion_finished(result)

    def cancel(self) -> None:
        """Esc: stop the conversion, the comparison or the opening that runs (the first of them)."""
        stopped = self.conversion_bar.cancel() or (self._audition is not None and self._audition.cancel_compare())
        if not stopped and self.opener.busy():
            self.opener.cancel()
            self.opener.wanted = False
            self.log("Opening cancelled.")
        self.update_all()

    def open_output_folder(self) -> None:
        folder = self.result.output if self.result is not None else Path(self.inputs.output_field.path())
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def busy_converting(self) -> bool:
        return self.conversion_bar.busy()

    # == state → widgets ==========================================================================

    def update_all(self) -> None:
        self._update_inputs()
        self.mapping_page.update_summary()
        self._update_actions()
        if self._audition is not None:
            self._audition.update_state()

    def _empty_state_text(self) -> tuple[str, str]:
        """What the mapping page says while there is no plan to show."""
        source = self.inputs.source_field.path()
        name = Path(source).name if source else ""
        if not source:
            return ("Open a checkpoint to see how its keys map",
                    "Choose a .pt, .ckpt or .safetensors file above (Ctrl+O), drop one anywhere on the "
                    "window, or open the bundled demo.")
        if self.opener.busy():
            waiting = "Waiting for torch and transformers, then reading" if self.libraries is None else "Reading"
            return f"Opening {name}…", f"{waiting} the checkpoint, detecting its recipe and building the plan."
        if self.base_model_wanted and not self.inputs.base_model_field.path():
            return f"{name} needs its base model", "Choose the upstream model folder it was trained on (Base model, above)."
        return (f"{name} is not open",
                "See the message above: fix the input and press Enter in its field, or Reload (F5).")

    def _update_inputs(self) -> None:
        source = self.inputs.source_field.path()
        self.setWindowTitle((f"{Path(source).name} — Speechport" if source else "Speechport") + "[*]")
        if self.prepared is None:
            self.inputs.show_unopened(opening=self.opener.busy())
            self.config_page.clear()
            self.mapping_page.show_empty(*self._empty_state_text())
            return
        self.inputs.show_prepared(self.prepared)

    def _update_actions(self, *_) -> None:
        converting = self.busy_converting()
        self.conversion_bar.update_state(cancellable=converting or self.opener.busy())
        if self._audition is not None and self._audition.comparing():
            self.act_cancel.setEnabled(True)  # Esc stops the comparison too
        editable = self.prepared is not None and not converting
        has_selection = self.mapping_page.has_selection()
        self.act_drop.setEnabled(editable and has_selection)
        self.act_restore.setEnabled(editable and has_selection)
        self.act_edit.setEnabled(editable)
        self.act_bulk.setEnabled(editable)
        self.act_next_problem.setEnabled(self.prepared is not None)
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
        self.act_open_folder.setEnabled(self.result is not None)
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
            self._ensure_audition()

    def focus_filter(self) -> None:
        self.tabs.setCurrentWidget(self.mapping_page)
        self.mapping_page.focus_filter()

    # == messages ===================================================================================

    def show_error(self, text: str, kind: str = "error") -> None:
        self.message_bar.show_message(kind, text)
        self.log(f"{'error' if kind == 'error' else kind}: {text}")

    def report_internal_error(self, error: BaseException, traceback_text: str = "", context: str = "") -> None:
        """An exception the core does not expect: one readable line, never a traceback."""
        where = f" while {context}" if context else ""
        text = f"internal error{where}: {type(error).__name__}: {error}"
        if traceback_text:
            log.error("%s\n%s", text, traceback_text)  # for developers, on stderr; not in the window
        self.log(text)
        self.message_bar.show_message("error", text + " (the log has details of what was being done)")
        dialogs.show_internal_error(self, text)

    def log(self, text: str) -> None:
        self.log_box.log(text)

    def busy(self) -> bool:
        """True while anything runs or waits to run in the background (tests and the benchmark wait on this)."""
        return self.runner.busy() or self.opener.wanted

    # == window =====================================================================================

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if "shown" not in self.timings:
            self.timings["shown"] = time.perf_counter()
            QTimer.singleShot(0, self.start_loading_libraries)  # after the first paint

    def closeEvent(self, event) -> None:
        if self._audition is not None:
            self._audition.shutdown()
        self.runner.cancel_all()
        self.opener.wanted = False
        self.runner.wait_for_done(30_000)  # a cancelled conversion removes its partial folder first
        if self.prepared is not None:
            self.prepared.hasher.cancel()
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

    def dragEnterEvent(self, event) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = local_paths(event.mimeData())
        if not paths:
            return
        event.acceptProposedAction()
        self.route_dropped_paths(paths)

    def route_dropped_paths(self, paths: list[str]) -> None:
        """Put each dropped path where it belongs: checkpoint, config, mapping, base model, output or
        (an audio file) the clip to audition."""
        clips = [raw for raw in paths if is_audio(raw) and not Path(raw).is_dir()]
        if clips:
            self.show_audition().choose_clip(clips[0])
            paths = [raw for raw in paths if raw not in clips]
            if not paths:
                return
        if self.busy_converting():
            self.statusBar().showMessage("A conversion is running: drop files once it is done.", 4000)
            return
        inputs = self.inputs
        sources = []
        for raw in paths:
            path = Path(raw)
            suffix = path.suffix.lower()
            if path.is_dir():
                if self.base_model_wanted and not inputs.base_model_field.path():
                    inputs.base_model_field.commit(str(path))
                else:
                    inputs.output_field.commit(str(path))
            elif path.name == "config.json":
                inputs.config_field.commit(str(path))
            elif suffix in (".toml", ".json"):
                self.load_mapping(str(path))
            else:
                sources.append(str(path))
        if sources:
            self.open_source(sources[0])

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
        self.mapping_page.refresh_colours()
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
        self.log_box.setVisible(checked)
