"""The Speechport window: inputs, the mapping table, conversion, and what happened.

The window is a face of `speechport.core`: it calls `prepare`, `Prepared.replan` and `convert`
and shows what they return. Nothing here decides how a key maps; the user's fixes are an
`Overrides` object, exactly what a `--mapping` file holds.

Layout: messages and inputs on top; a horizontal splitter (`workArea`) whose first widget is the
tab set (Mapping, Config, Report), so a side panel can be added to its right, and a vertical
splitter that puts the log under it; the conversion bar at the bottom.
"""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, QThreadPool, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QIcon, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QStyle,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ..core.demo import DEMO_CHECKPOINT
from ..core.errors import Cancelled, NeedsBaseModel, OutputNotEmpty, PlanProblems, SpeechportError, UnsafePickle
from ..core.mapping_file import Overrides
from ..core.plan import Plan, Status
from . import commands, dialogs, theme, workers
from .formatting import human_bytes as _human_bytes, human_seconds as _human_seconds, time_left
from .pages import ConfigPage, ReportPage
from .plan_model import ALL_ROWS, PROBLEM_ROWS, Column, PlanFilterProxy, PlanTableModel
from .widgets import KeyEditorDelegate, MessageBar, PathField, local_paths

log = logging.getLogger(__name__)

CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors);;All files (*)"
CONFIG_FILTER = "Transformers config (*.json);;All files (*)"
MAPPING_FILTER = "Mapping files (*.toml *.json);;TOML (*.toml);;JSON (*.json)"
LOG_LIMIT = 5000  # lines kept in the log pane
# Inferred config values worth a glance next to the config field (short names for the line).
SUMMARY_FIELDS = {"hidden_size": "hidden", "num_hidden_layers": "layers", "intermediate_size": "FFN",
                  "num_attention_heads": "heads"}


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
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        self.tasks: set[workers.Task] = set()
        self.libraries: workers.LibrariesLoaded | None = None
        self.library_task: workers.Task | None = None
        self.prepare_task: workers.Task | None = None
        self.convert_task: workers.Task | None = None
        self.prepared = None  # core.conversion.Prepared, once a checkpoint is open
        self.fixes = Overrides()
        self.result = None  # core.conversion.ConversionResult of the last conversion
        self.undo_stack = QUndoStack(self)
        self.trusted_sources: set[str] = set()  # pickles the user agreed to load, this session
        self.prepare_wanted = False
        self.base_model_wanted = base_model is not None
        self.output_suggested = False
        self.opening_source = ""
        self.last_stage = ""

        self.setObjectName("speechportMainWindow")
        self.setWindowTitle("Speechport[*]")
        self.setWindowIcon(theme.app_icon())
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_ui()
        self._build_menus()
        self._set_glyph_icons()
        self._connect()
        self.resize(1280, 800)
        self._restore_layout()

        self.source_field.set_path(source)
        self.config_field.set_path(config)
        self.base_model_field.set_path(base_model)
        self.output_field.set_path(output)
        if source and not output:
            self._suggest_output(str(source))
        self._set_base_model_visible(self.base_model_wanted)
        self._update_all()
        if source:
            self.prepare_wanted = True
            QTimer.singleShot(0, self._open_from_fields)

    # == construction =============================================================================

    def _build_actions(self) -> None:
        def action(text, slot, shortcut=None, tip="", icon=None, name=None, checkable=False) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcuts(shortcut if isinstance(shortcut, list) else [shortcut])
            act.setStatusTip(tip)
            act.setToolTip(f"{tip or text.replace('&', '').rstrip('…')}" + (
                f" ({act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})" if shortcut is not None else ""))
            if icon is not None:
                act.setIcon(icon)
            act.setCheckable(checkable)
            act.setObjectName(name or "")
            act.triggered.connect(slot)
            self.addAction(act)  # shortcuts work wherever the focus is
            return act

        style = self.style()
        sp = QStyle.StandardPixmap
        K = QKeySequence
        self.act_open = action("&Open checkpoint…", self._browse_source, K(K.StandardKey.Open),
                               "Open a checkpoint file", _icon("document-open", style, sp.SP_DialogOpenButton), "actionOpen")
        self.act_demo = action("Open the &demo", self.open_demo, K("Ctrl+Shift+D"),
                               "Open the bundled demo checkpoint (a tiny conformer_shaw)", theme.app_icon(), "actionDemo")
        self.act_config = action("Choose &config…", lambda: self.config_field.choose(), K("Ctrl+Shift+C"),
                                 "Choose a transformers config.json (otherwise it is inferred)", name="actionConfig")
        self.act_base_model = action("Choose &base model folder…", self._choose_base_model, K("Ctrl+Shift+B"),
                                     "Choose the upstream model folder a head-only checkpoint needs", name="actionBaseModel")
        self.act_output = action("Choose o&utput folder…", lambda: self.output_field.choose(), K("Ctrl+Shift+O"),
                                 "Choose where the converted folder goes", name="actionOutput")
        self.act_reload = action("&Reload", self._open_from_fields, K(K.StandardKey.Refresh),
                                 "Open the checkpoint again with the current inputs", _icon("view-refresh", style, sp.SP_BrowserReload), "actionReload")
        self.act_load_mapping = action("&Load mapping file…", self._load_mapping, K("Ctrl+L"),
                                       "Load fixes from a mapping file (the CLI's --mapping format)", _icon("document-import", style, sp.SP_DirOpenIcon), "actionLoadMapping")
        self.act_save_mapping = action("&Save mapping file…", self._save_mapping, K(K.StandardKey.Save),
                                       "Save your fixes as a mapping file for `speechport convert --mapping`", _icon("document-save", style, sp.SP_DialogSaveButton), "actionSaveMapping")
        self.act_quit = action("&Quit", self.close, K(K.StandardKey.Quit), "Close Speechport", name="actionQuit")

        self.act_undo = action("&Undo", self.undo_stack.undo, K("Ctrl+Z"), "Undo the last fix", name="actionUndo")
        self.act_redo = action("&Redo", self.undo_stack.redo, [K("Ctrl+Shift+Z"), K("Ctrl+Y")], "Redo the fix undone last",
                               name="actionRedo")
        self.act_edit = action("&Edit target key", self._edit_current, K("F2"),
                               "Type the target key of the current row, with completion from the unclaimed ones", name="actionEditTarget")
        self.act_drop = action("&Drop rows", self._drop_selected, K(K.StandardKey.Delete),
                               "Leave the selected keys out of the converted model", _icon("edit-delete", style, sp.SP_TrashIcon), "actionDrop")
        self.removeAction(self.act_drop)  # Delete drops rows only in the table (added there below)
        self.act_drop.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.act_restore = action("Re&store rows", self._restore_selected, K("Ctrl+R"),
                                  "Undo your drop or rename of the selected rows; for a key the recipe drops, type its target",
                                  _icon("edit-clear", style, sp.SP_DialogResetButton), "actionRestore")
        self.act_bulk = action("&Bulk rename…", self._bulk_rename, K("Ctrl+H"),
                               "Rename the selected or filtered rows with one regular expression", name="actionBulkRename")
        self.act_find = action("&Filter keys", self._focus_filter, K(K.StandardKey.Find),
                               "Type words that the source or target key must contain", name="actionFind")
        self.act_problems = action("Show &problems only", self._toggle_problems, K("Ctrl+Shift+P"),
                                   "Show only the rows that stop the conversion", name="actionProblemsOnly", checkable=True)
        self.act_next_problem = action("&Next problem", self._next_problem, K("F8"),
                                       "Select the next row with a problem", name="actionNextProblem")

        self.act_convert = action("&Convert", self._convert_triggered, [K("Ctrl+Return"), K("Ctrl+Enter")],
                                  "Write the converted transformers folder", name="actionConvert")
        self.act_cancel = action("C&ancel", self.cancel, K("Esc"), "Stop; nothing is left behind", name="actionCancel")
        self.act_open_folder = action("Open output &folder", self.open_output_folder, K("Ctrl+Shift+F"),
                                      "Show the converted folder in the file manager", _icon("folder-open", style, sp.SP_DirIcon), "actionOpenFolder")
        self.act_show_log = action("Show &log", self._toggle_log, K("Ctrl+Shift+L"), "Show or hide the log pane",
                                   name="actionShowLog", checkable=True)
        self.act_show_log.setChecked(True)
        self.act_shortcuts = action("&Keyboard shortcuts", self._show_shortcuts, K(K.StandardKey.HelpContents),
                                    "List the keyboard shortcuts", name="actionShortcuts")
        self.act_about = action("&About Speechport", self._show_about, None, "About Speechport", name="actionAbout")

        self.appearance_group = QActionGroup(self)
        self.appearance_actions: dict[str, QAction] = {}
        for key, label in (("system", "Follow the &system"), ("light", "&Light"), ("dark", "&Dark")):
            act = QAction(label, self, checkable=True)
            act.setData(key)
            act.setObjectName(f"actionAppearance{key.title()}")
            act.triggered.connect(self._appearance_chosen)
            self.appearance_group.addAction(act)
            self.appearance_actions[key] = act
        current = str(self.settings.value("appearance", "system"))
        self.appearance_actions.get(current, self.appearance_actions["system"]).setChecked(True)

    def _build_ui(self) -> None:
        central = QWidget(self)
        central.setObjectName("central")
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 6)
        outer.setSpacing(6)

        self.message_bar = MessageBar(central)
        outer.addWidget(self.message_bar)

        # -- inputs -----------------------------------------------------------------------------
        inputs = QGroupBox("Inputs", central)
        inputs.setObjectName("inputsGroup")
        grid = QGridLayout(inputs)
        grid.setContentsMargins(10, 6, 10, 8)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(5)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(2, 2)
        self.source_field = PathField(
            "sourcePath", settings=self.settings, recent_key="source", file_filter=CHECKPOINT_FILTER,
            dialog_title="Open checkpoint", placeholder="a .pt, .ckpt or .safetensors file — or drop one on the window",
            tooltip="The checkpoint to convert. Press Enter to open what you typed.", parent=inputs)
        self.config_field = PathField(
            "configPath", settings=self.settings, recent_key="config", file_filter=CONFIG_FILTER,
            dialog_title="Choose config.json", placeholder="inferred from the checkpoint (optional: a config.json)",
            tooltip="A transformers config.json for the target model; leave empty to infer it from the checkpoint.",
            parent=inputs)
        self.base_model_field = PathField(
            "baseModelPath", settings=self.settings, recent_key="base_model", folder=True,
            dialog_title="Choose the base model folder", placeholder="the upstream model folder this head was trained on",
            tooltip="A head-only checkpoint (e.g. S3PRL downstream) needs the upstream model folder it was trained on.",
            parent=inputs)
        self.output_field = PathField(
            "outputPath", settings=self.settings, recent_key="output", folder=True,
            dialog_title="Choose the output folder", placeholder="where the transformers folder is written",
            tooltip="The folder to write. It is created when the conversion completes; a non-empty one is replaced only if you agree.",
            parent=inputs)
        self.config_info = QLabel(inputs)
        self.config_info.setObjectName("configInfo")
        self.config_info.setTextFormat(Qt.TextFormat.PlainText)
        self.base_model_info = QLabel("needed: this checkpoint holds only a head", inputs)
        self.base_model_info.setObjectName("baseModelInfo")
        self.recipe_label = QLabel(inputs)
        self.recipe_label.setObjectName("recipeLabel")
        self.recipe_label.setWordWrap(True)
        self.recipe_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.input_labels: dict[str, QLabel] = {}
        rows = (
            ("source", "&Checkpoint:", self.source_field, None),
            ("config", "Con&fig:", self.config_field, self.config_info),
            ("base_model", "&Base model:", self.base_model_field, self.base_model_info),
            ("output", "&Output folder:", self.output_field, None),
        )
        for number, (key, text, field, info) in enumerate(rows):
            label = QLabel(text, inputs)
            label.setBuddy(field.edit)
            self.input_labels[key] = label
            grid.addWidget(label, number, 0)
            grid.addWidget(field, number, 1)
            if info is not None:
                grid.addWidget(info, number, 2)
        recipe_title = QLabel("Recipe:", inputs)
        self.input_labels["recipe"] = recipe_title
        grid.addWidget(recipe_title, len(rows), 0)
        grid.addWidget(self.recipe_label, len(rows), 1, 1, 2)
        outer.addWidget(inputs)

        # -- work area: tabs (mapping first) beside room for more, log below ----------------------
        self.tabs = QTabWidget(central)
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_mapping_page(), "&Mapping")
        self.config_page = ConfigPage(self)
        self.report_view = ReportPage(self)
        self.tabs.addTab(self.config_page, "Con&fig")
        self.tabs.addTab(self.report_view, "&Report")

        self.work_area = QSplitter(Qt.Orientation.Horizontal, central)
        self.work_area.setObjectName("workArea")
        self.work_area.addWidget(self.tabs)
        self.work_area.setChildrenCollapsible(False)

        self.log_pane = QPlainTextEdit(central)
        self.log_pane.setObjectName("logPane")
        self.log_pane.setReadOnly(True)
        self.log_pane.setMaximumBlockCount(LOG_LIMIT)
        self.log_pane.setPlaceholderText("What Speechport does shows up here.")
        self.log_pane.setAccessibleName("Log")
        log_box = QWidget(central)
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.setSpacing(2)
        log_title = QLabel("Log", log_box)
        log_title.setObjectName("logTitle")
        font = log_title.font()
        font.setBold(True)
        log_title.setFont(font)
        log_layout.addWidget(log_title)
        log_layout.addWidget(self.log_pane)
        self.log_box = log_box

        self.main_splitter = QSplitter(Qt.Orientation.Vertical, central)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(self.work_area)
        self.main_splitter.addWidget(log_box)
        self.main_splitter.setStretchFactor(0, 1)
        self.main_splitter.setStretchFactor(1, 0)
        self.main_splitter.setSizes([520, 110])
        self.main_splitter.setChildrenCollapsible(False)
        outer.addWidget(self.main_splitter, 1)

        # -- conversion bar ---------------------------------------------------------------------
        bar = QFrame(central)
        bar.setObjectName("conversionBar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(0, 2, 0, 0)
        row.setSpacing(8)
        self.convert_reason = QLabel(bar)
        self.convert_reason.setObjectName("convertReason")
        self.convert_reason.setWordWrap(True)
        self.convert_reason.setTextFormat(Qt.TextFormat.RichText)
        self.convert_reason.linkActivated.connect(self._reason_link)
        self.convert_reason.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.progress_bar = QProgressBar(bar)
        self.progress_bar.setObjectName("conversionProgress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("")
        self.progress_bar.setMinimumWidth(320)
        self.progress_bar.setAccessibleName("Conversion progress")
        self.eta_label = QLabel(bar)
        self.eta_label.setObjectName("etaLabel")
        self.eta_label.setMinimumWidth(90)
        self.cancel_button = QPushButton("Cancel", bar)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("Stop; nothing is left behind (Esc)")
        self.convert_button = QPushButton("Convert", bar)
        self.convert_button.setObjectName("convertButton")
        self.convert_button.setMinimumWidth(120)
        font = self.convert_button.font()
        font.setBold(True)
        self.convert_button.setFont(font)
        row.addWidget(self.convert_reason, 1)
        row.addWidget(self.progress_bar)
        row.addWidget(self.eta_label)
        row.addWidget(self.cancel_button)
        row.addWidget(self.convert_button)
        outer.addWidget(bar)
        self.setCentralWidget(central)

        # -- status line ------------------------------------------------------------------------
        self.library_status = QLabel("Loading torch and transformers…", self)
        self.library_status.setObjectName("libraryStatus")
        self.statusBar().addPermanentWidget(self.library_status)
        self.statusBar().setSizeGripEnabled(True)

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolBar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(18, 18))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act in (self.act_open, self.act_demo, None, self.act_load_mapping, self.act_save_mapping, None,
                    self.act_undo, self.act_redo, None, self.act_convert, self.act_open_folder):
            if act is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(act)
        self.addToolBar(toolbar)

    def _build_mapping_page(self) -> QWidget:
        page = QWidget(self)
        page.setObjectName("mappingPage")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.setSpacing(5)

        tools = QHBoxLayout()
        tools.setSpacing(6)
        self.filter_edit = QLineEdit(page)
        self.filter_edit.setObjectName("mappingFilter")
        self.filter_edit.setPlaceholderText("Filter keys… (Ctrl+F)")
        self.filter_edit.setToolTip("Show rows whose source or target key contains every word typed")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Filter keys")
        self.status_filter = QComboBox(page)
        self.status_filter.setObjectName("statusFilter")
        self.status_filter.setToolTip("Show rows of one status, or every problem")
        self.status_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.status_filter.setAccessibleName("Status filter")
        self._fill_status_filter(None)
        tools.addWidget(self.filter_edit, 2)
        tools.addWidget(self.status_filter)
        tools.addStretch(1)
        self.drop_button = _tool_button(self.act_drop, "dropButton", page)
        self.restore_button = _tool_button(self.act_restore, "restoreButton", page)
        self.bulk_button = _tool_button(self.act_bulk, "bulkRenameButton", page)
        for button in (self.drop_button, self.restore_button, self.bulk_button):
            tools.addWidget(button)
        layout.addLayout(tools)

        self.model = PlanTableModel(self)
        self.proxy = PlanFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView(page)
        self.table.setObjectName("mappingTable")
        self.table.setModel(self.proxy)
        self.table.setAccessibleName("Mapping plan")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.addAction(self.act_drop)
        self.delegate = KeyEditorDelegate(self._completion_candidates, self.table)
        self.table.setItemDelegateForColumn(Column.TARGET, self.delegate)
        self.table.setItemDelegateForColumn(Column.SOURCE, self.delegate)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # the checkpoint's order until a header is clicked
        self.table.setSortingEnabled(True)
        metrics = self.fontMetrics()
        widths = {Column.SHAPE: "[1024, 1024, 31]", Column.DTYPE: "bfloat16", Column.TARGET_SHAPE: "[1024, 1024, 31]",
                  Column.STATUS: "shape mismatch__"}
        for column in Column:
            if column in widths:
                header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(column, metrics.horizontalAdvance(widths[column]) + 34)
            else:
                header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)

        self.empty_state = self._build_empty_state(page)
        self.table_stack = QStackedWidget(page)
        self.table_stack.addWidget(self.empty_state)
        self.table_stack.addWidget(self.table)
        layout.addWidget(self.table_stack, 1)

        self.summary_label = QLabel(page)
        self.summary_label.setObjectName("statusSummary")
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        return page

    def _build_empty_state(self, parent: QWidget) -> QWidget:
        page = QWidget(parent)
        page.setObjectName("emptyState")
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        title = QLabel(page)
        title.setObjectName("emptyTitle")
        self.empty_title = title
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(page)
        hint.setObjectName("emptyHint")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        self.empty_hint = hint
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        open_button = QPushButton("Open checkpoint…", page)
        open_button.setObjectName("emptyOpenButton")
        open_button.clicked.connect(self._browse_source)
        demo_button = QPushButton("Open the demo", page)
        demo_button.setObjectName("emptyDemoButton")
        demo_button.clicked.connect(self.open_demo)
        buttons.addWidget(open_button)
        buttons.addWidget(demo_button)
        buttons.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addSpacing(8)
        layout.addLayout(buttons)
        layout.addStretch(2)
        return page

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addAction(self.act_open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.setObjectName("recentMenu")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.act_demo)
        file_menu.addSeparator()
        for act in (self.act_config, self.act_base_model, self.act_output, self.act_reload):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.act_load_mapping)
        file_menu.addAction(self.act_save_mapping)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)

        edit_menu = menus.addMenu("&Edit")
        for act in (self.act_undo, self.act_redo, None, self.act_edit, self.act_drop, self.act_restore, self.act_bulk,
                    None, self.act_find, self.act_problems, self.act_next_problem):
            edit_menu.addSeparator() if act is None else edit_menu.addAction(act)

        convert_menu = menus.addMenu("&Convert")
        for act in (self.act_convert, self.act_cancel, None, self.act_open_folder):
            convert_menu.addSeparator() if act is None else convert_menu.addAction(act)

        view_menu = menus.addMenu("&View")
        view_menu.addAction(self.act_show_log)
        appearance = view_menu.addMenu("&Appearance")
        for act in self.appearance_actions.values():
            appearance.addAction(act)

        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.act_shortcuts)
        help_menu.addAction(self.act_about)

    def _connect(self) -> None:
        self.source_field.pathChosen.connect(self._source_chosen)
        self.config_field.pathChosen.connect(self._config_chosen)
        self.base_model_field.pathChosen.connect(self._base_model_chosen)
        self.output_field.pathChosen.connect(self._output_chosen)
        self.output_field.edit.textEdited.connect(self._output_typed)
        self.filter_edit.textChanged.connect(self.proxy.set_text_filter)
        self.filter_edit.textChanged.connect(self._update_summary)
        self.status_filter.currentIndexChanged.connect(self._status_filter_chosen)
        self.model.renameRequested.connect(self._rename_requested)
        self.proxy.rowsInserted.connect(self._update_summary)
        self.proxy.rowsRemoved.connect(self._update_summary)
        self.proxy.modelReset.connect(self._update_summary)
        self.proxy.layoutChanged.connect(self._update_summary)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)
        self.convert_button.clicked.connect(self.act_convert.trigger)
        self.cancel_button.clicked.connect(self.act_cancel.trigger)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        for signal in (self.undo_stack.canUndoChanged, self.undo_stack.canRedoChanged, self.undo_stack.indexChanged):
            signal.connect(self._update_actions)
        QApplication.styleHints().colorSchemeChanged.connect(self._palette_changed)

    # == opening ====================================================================================

    def open_source(self, path: str | Path) -> None:
        """Open a checkpoint, as choosing it in the file dialog does."""
        self.source_field.commit(str(path))

    def open_demo(self) -> None:
        if not self.output_field.path() or self.output_suggested:
            self.output_field.set_path(Path.home() / "speechport-demo-hf")
            self.output_suggested = True
        self.open_source(DEMO_CHECKPOINT)

    def _browse_source(self) -> None:
        self.source_field.choose()

    def _choose_base_model(self) -> None:
        self._set_base_model_visible(True)
        self.base_model_field.choose()

    def _source_chosen(self, path: str) -> None:
        if self.prepared is not None and str(self.prepared.source) != str(Path(path).expanduser().absolute()):
            self._forget_checkpoint()
        self._suggest_output(path)
        self._open_from_fields()

    def _config_chosen(self, path: str) -> None:
        self._open_from_fields()

    def _base_model_chosen(self, path: str) -> None:
        self.base_model_wanted = bool(path) or self.base_model_wanted
        self._open_from_fields()

    def _output_chosen(self, path: str) -> None:
        self.output_suggested = False
        self._update_all()

    def _output_typed(self, text: str) -> None:
        self.output_suggested = False
        self._update_actions()

    def _suggest_output(self, source: str) -> None:
        if source and (not self.output_field.path() or self.output_suggested):
            source_path = Path(source).expanduser().absolute()
            if source_path.resolve() == DEMO_CHECKPOINT.resolve():
                folder = Path.home() / "speechport-demo-hf"  # not inside the installed package
            else:
                folder = source_path.with_name(f"{source_path.stem}-hf")
            self.output_field.set_path(folder)
            self.output_suggested = True

    def _forget_checkpoint(self) -> None:
        """A different checkpoint: its fixes, undo history and plan do not apply any more."""
        self._cancel_prepare()
        if self.prepared is not None:
            self.prepared.hasher.cancel()
        self.prepared = None
        self.result = None
        self.fixes = Overrides()
        self.undo_stack.clear()
        self.model.set_plan(None)
        self.base_model_wanted = bool(self.base_model_field.path())
        self._set_base_model_visible(self.base_model_wanted)

    def _open_from_fields(self) -> None:
        source = self.source_field.path()
        self.prepare_wanted = False
        if not source:
            self._forget_checkpoint()
            self._update_all()
            return
        if self.libraries is None:
            self.prepare_wanted = True  # opened as soon as torch and transformers are in
            self.start_loading_libraries()
            self._update_all()
            return
        self._cancel_prepare()
        self.message_bar.hide()
        self.opening_source = source
        task = workers.Task(
            "prepare", workers.prepare_job, source,
            config=self.config_field.path() or None,
            base_model=self.base_model_field.path() or None,
            trust_pickle=str(Path(source).expanduser().absolute()) in self.trusted_sources,
            fixes=commands.copy_overrides(self.fixes),
            with_progress=True,
        )
        self.prepare_task = task
        self._run(task, self._prepare_succeeded, self._prepare_failed, self._prepare_progress)
        self._log(f"Opening {source}")
        self._update_all()

    def _cancel_prepare(self) -> None:
        if self.prepare_task is not None:
            self.prepare_task.cancel()
            self.prepare_task = None

    def _prepare_progress(self, task, event) -> None:
        if task is self.prepare_task and event.stage:
            self.statusBar().showMessage(f"Opening: {event.stage}…", 3000)

    def _prepare_succeeded(self, task, prepared) -> None:
        if task is not self.prepare_task:
            prepared.hasher.cancel()  # a newer request replaced this one
            return
        self.prepare_task = None
        self.statusBar().clearMessage()
        if self.prepared is not None and self.prepared is not prepared:
            self.prepared.hasher.cancel()
        if not commands.same_overrides(prepared.overrides, self.fixes):
            prepared.replan(commands.copy_overrides(self.fixes))  # fixes made while it was opening
        self.prepared = prepared
        self.result = None
        if prepared.recipe.needs_base_model or prepared.base_model is not None:
            self.base_model_wanted = True
        self._set_base_model_visible(self.base_model_wanted)
        self.model.set_plan(prepared.plan)
        self.table_stack.setCurrentWidget(self.table)
        self.config_page.show_config(prepared)
        plan = prepared.plan
        self._log(
            f"Opened {prepared.source.name} in {task.seconds:.2f} s: {prepared.recipe.name} recipe, "
            f"{prepared.layout} layout, config {prepared.config.origin}; plan: {plan.summary()}"
        )
        for note in plan.notes:
            self._log(f"note: {note}")
        for line in plan.problem_lines():
            self._log(f"problem: {line}")
        self._update_all()

    def _prepare_failed(self, task, error) -> None:
        if task is not self.prepare_task:
            return
        self.prepare_task = None
        self.statusBar().clearMessage()
        source = self.opening_source
        if isinstance(error, Cancelled):
            self._log("Opening cancelled.")
        elif isinstance(error, UnsafePickle):
            self._log(f"refused: {error}")
            if dialogs.ask_trust_pickle(self, error):
                self._log(f"You chose to trust {error.path}; loading it with its code.")
                self.trusted_sources.add(str(Path(source).expanduser().absolute()))
                self._open_from_fields()
                return
            self._show_plan_unavailable()
            # error.message: the hint names the CLI's --trust-pickle; here the question was the way to trust it
            self._show_error(f"Not opened: you chose not to trust it. {error.message}")
        elif isinstance(error, NeedsBaseModel):
            self.base_model_wanted = True
            self._set_base_model_visible(True)
            self._show_plan_unavailable()
            self.recipe_label.setText(f"{error.recipe} (a downstream head: it needs its base model)")
            self.message_bar.show_message(
                "warning",
                f"This {error.recipe} checkpoint holds only a downstream head. Choose the upstream model "
                "folder it was trained on (Base model), and it opens.",
                [("Choose base model folder…", self._choose_base_model, "chooseBaseModelButton")],
            )
            self._log(str(error))
            self.base_model_field.edit.setFocus()
        elif isinstance(error, SpeechportError):
            self._show_plan_unavailable()
            self._show_error(str(error))
        else:
            self._show_plan_unavailable()
            self.report_internal_error(error, task.traceback)
        self._update_all()

    def _show_plan_unavailable(self) -> None:
        if self.prepared is not None:
            self.prepared.hasher.cancel()
        self.prepared = None
        self.model.set_plan(None)

    # == libraries ==================================================================================

    def start_loading_libraries(self) -> None:
        """Import torch and transformers in the background; the window is usable meanwhile."""
        if self.libraries is not None or self.library_task is not None:
            return
        self.library_status.setText("Loading torch and transformers…")
        self._log("Loading torch and transformers in the background…")
        self.library_task = workers.Task("libraries", workers.load_libraries)
        self._run(self.library_task, self._libraries_loaded, self._libraries_failed)

    def _libraries_loaded(self, task, loaded: workers.LibrariesLoaded) -> None:
        self.libraries = loaded
        self.library_task = None
        self.timings["libraries"] = time.perf_counter()
        versions = " · ".join(f"{name} {version}" for name, version in loaded.versions.items())
        self.library_status.setText(f"Ready — {versions} (loaded in {loaded.seconds:.1f} s)")
        self._log(f"Loaded {versions} in {loaded.seconds:.1f} s")
        if self.prepare_wanted:
            self.prepare_wanted = False
            self._open_from_fields()
        self._update_all()

    def _libraries_failed(self, task, error) -> None:
        self.library_task = None
        self.prepare_wanted = False
        self.library_status.setText("torch and transformers could not be loaded")
        self.report_internal_error(error, task.traceback, context="loading torch and transformers")

    # == fixes ======================================================================================

    def set_fixes(self, fixes: Overrides) -> None:
        """Apply the user's fixes: the core recomputes the plan (milliseconds), the table shows it."""
        self.fixes = commands.copy_overrides(fixes)
        if self.prepared is not None:
            plan = self.prepared.replan(commands.copy_overrides(fixes))
            self.model.set_plan(plan)
        self._update_all()

    def _push(self, command) -> None:
        if command is not None:
            self.undo_stack.push(command)
            self._log(command.text())

    def _rename_requested(self, source: str, target: str) -> None:
        if self._busy_converting():
            return
        self._push(commands.rename_command(self.fixes, {source: target}, self.set_fixes))
        self.select_source_key(source)

    def rename_target(self, source: str, target: str) -> None:
        """Give one source key a new target key (undoable), as editing the cell does."""
        self._rename_requested(source, target)

    def _selected_rows(self):
        rows = self.proxy.source_rows(self.table.selectionModel().selectedRows())
        return [self.model.row_at(r) for r in rows]

    def _drop_selected(self) -> None:
        keys = [row.source_key for row in self._selected_rows() if row.source_key is not None and row.status is not Status.DROPPED]
        if not keys:
            self.statusBar().showMessage("Select rows with a source key to drop them.", 4000)
            return
        self._push(commands.drop_command(self.fixes, keys, self.set_fixes))

    def _restore_selected(self) -> None:
        rows = self._selected_rows()
        overridden = [r.source_key for r in rows if r.source_key in self.fixes.rename or r.source_key in self.fixes.drop]
        if overridden:
            self._push(commands.restore_command(self.fixes, overridden, self.set_fixes))
            return
        recipe_dropped = [r for r in rows if r.status is Status.DROPPED and r.source_shape is not None]
        if recipe_dropped:
            # The recipe drops it on purpose; restoring it means choosing where it goes.
            self.select_source_key(recipe_dropped[0].source_key)
            self._edit_current()
            self.statusBar().showMessage("The recipe drops this key: type the target key it should become.", 6000)
        else:
            self.statusBar().showMessage("Nothing to restore: the selected rows have no fixes of yours.", 4000)

    def _bulk_rename(self) -> None:
        if self.prepared is None:
            return
        selected = [r.source_key for r in self._selected_rows() if r.source_key is not None and r.source_shape is not None]
        filtered = [self.model.row_at(r).source_key for r in self.proxy.visible_source_rows()]
        filtered = [key for key in filtered if key is not None and self.prepared.tensors.get(key) is not None]
        dialog = dialogs.BulkRenameDialog(
            self, selected=selected, filtered=filtered, known_targets=set(self.prepared.targets),
            on_apply=self._apply_bulk_rename,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.bulk_dialog = dialog
        dialog.open()

    def _apply_bulk_rename(self, renames: dict[str, str], pattern: str) -> None:
        if self._busy_converting():
            return
        self._push(commands.bulk_rename_command(self.fixes, renames, pattern, self.set_fixes))

    def _completion_candidates(self, index) -> list[str]:
        if self.prepared is None:
            return []
        row = self.model.row_at(self.proxy.mapToSource(index).row())
        if row.source_key is None:  # a missing target: which checkpoint tensor fills it?
            return [r.source_key for r in self.model.rows()
                    if r.source_key is not None and r.source_shape is not None and r.status is not Status.MAPPED]
        return self.prepared.unclaimed_targets()

    def _edit_current(self) -> None:
        index = self.table.currentIndex()
        if not index.isValid():
            if self.proxy.rowCount() == 0:
                return
            index = self.proxy.index(0, 0)
        row = self.model.row_at(self.proxy.mapToSource(index).row())
        column = Column.SOURCE if row.source_key is None else Column.TARGET
        target = self.proxy.index(index.row(), column)
        self.table.setCurrentIndex(target)
        self.table.edit(target)

    def select_source_key(self, source_key: str) -> None:
        row = self.model.row_of_source(source_key)
        if row < 0:
            return
        index = self.proxy.mapFromSource(self.model.index(row, Column.TARGET))
        if index.isValid():
            self.table.setCurrentIndex(index)
            self.table.selectRow(index.row())
            self.table.scrollTo(index)

    # -- mapping files --------------------------------------------------------------------------------

    def _load_mapping(self) -> None:
        start = str(Path(self.source_field.path()).parent) if self.source_field.path() else str(Path.home())
        path, _ = _open_file_name(self, "Load mapping file", start, MAPPING_FILTER)
        if path:
            self.load_mapping(path)

    def load_mapping(self, path: str | Path) -> None:
        """Replace the fixes with a mapping file's (one undoable step)."""
        task = workers.Task("load mapping", workers.load_mapping_job, str(path))
        task.path = str(path)
        self._run(task, self._mapping_loaded, self._file_task_failed)

    def _mapping_loaded(self, task, loaded: Overrides) -> None:
        if self._busy_converting():
            self._show_error(f"{task.path} was not loaded: a conversion is running.", kind="warning")
            return
        command = commands.load_mapping_command(self.fixes, loaded, Path(task.path).name, self.set_fixes)
        self.undo_stack.push(command)
        self.undo_stack.setClean()
        self._log(f"Loaded the mapping file {task.path}: {len(loaded.rename)} rename(s), "
                  f"{len(loaded.drop)} drop(s), {len(loaded.rules)} rule(s)")
        if self.prepared is not None:
            for note in self.prepared.plan.notes:
                if note.startswith("mapping file:"):
                    self._log(f"note: {note}")

    def _save_mapping(self) -> None:
        source = self.source_field.path()
        start = str(Path(source).with_name(f"{Path(source).stem}-mapping.toml")) if source else str(Path.home() / "mapping.toml")
        path, _ = _save_file_name(self, "Save mapping file", start, MAPPING_FILTER)
        if path:
            self.save_mapping(path)

    def save_mapping(self, path: str | Path) -> None:
        task = workers.Task("save mapping", workers.save_mapping_job, str(path), commands.copy_overrides(self.fixes))
        task.undo_index = self.undo_stack.index()  # what was saved, whatever happens meanwhile
        self._run(task, self._mapping_saved, self._file_task_failed)

    def _mapping_saved(self, task, path: str) -> None:
        if self.undo_stack.index() == task.undo_index:
            self.undo_stack.setClean()
        self._log(f"Saved your fixes to {path} (use it with: speechport convert SOURCE --mapping {path})")
        self.statusBar().showMessage(f"Saved {path}", 5000)

    def _file_task_failed(self, task, error) -> None:
        if isinstance(error, SpeechportError):
            self._show_error(str(error))
        else:
            self.report_internal_error(error, task.traceback, context=task.kind)

    # == converting =================================================================================

    def _convert_triggered(self) -> None:
        self.convert()

    def convert(self, force: bool = False) -> None:
        if not self.act_convert.isEnabled() and not force:
            return
        out = self.output_field.path()
        self.message_bar.hide()
        self.result = None
        self.last_stage = ""
        task = workers.Task("convert", workers.convert_job, self.prepared, out, force=bool(force), with_progress=True)
        task.out = out
        self.convert_task = task
        self.model.set_editable(False)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting…")
        self.eta_label.clear()
        self._log(f"Converting {self.prepared.source.name} → {out}" + (" (replacing it)" if force else ""))
        self._run(task, self._convert_succeeded, self._convert_failed, self._convert_progress)
        self._update_all()

    def cancel(self) -> None:
        if self.convert_task is not None and not self.convert_task.cancelled:
            self.convert_task.cancel()
            self.progress_bar.setFormat("Cancelling…")
            self._log("Cancelling the conversion…")
        elif self.prepare_task is not None or self.prepare_wanted:
            self._cancel_prepare()
            self.prepare_wanted = False
            self._log("Opening cancelled.")
        self._update_all()

    def _convert_progress(self, task, event) -> None:
        if task is not self.convert_task:
            return
        if event.stage != self.last_stage:
            self.last_stage = event.stage
            self._log(f"  {event.stage}")
        if event.message:
            self._log(f"  {event.message}")
        if task.cancelled:
            return
        self.progress_bar.setValue(int(event.fraction * 1000))
        parts = [event.stage]
        if event.items_total:
            parts.append(f"{event.items_done}/{event.items_total} tensors")
        if event.bytes_total:
            parts.append(f"{_human_bytes(event.bytes_done)} / {_human_bytes(event.bytes_total)}")
        self.progress_bar.setFormat(" · ".join(parts) + (f" — {event.fraction:.0%}" if event.bytes_total or event.items_total else ""))
        self.eta_label.setText(time_left(event.eta) if event.eta is not None and event.fraction < 1 else "")

    def _convert_succeeded(self, task, result) -> None:
        if task is not self.convert_task:
            return
        self.convert_task = None
        self.result = result
        self.model.set_editable(True)
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat(f"Done in {_human_seconds(result.seconds)}")
        self.eta_label.clear()
        weights = result.weights
        self._log(f"Converted in {result.seconds:.2f} s: {', '.join(weights.files)} ({_human_bytes(weights.total_bytes)}) → {result.output}")
        self.message_bar.show_message(
            "success",
            f"Converted {self.prepared.source.name} in {_human_seconds(result.seconds)} → {result.output}\n"
            f"{len(self.prepared.plan.mapped())} tensors, {_human_bytes(weights.total_bytes)} in {', '.join(weights.files)}; "
            f"load it with {self.prepared.plan.target_class}.from_pretrained(folder).",
            [("Open folder", self.open_output_folder, "openFolderButton"),
             ("Show report", lambda: self.tabs.setCurrentWidget(self.report_view), "showReportButton")],
        )
        self.report_view.show_result(result, self.fixes)
        self._update_all()

    def _convert_failed(self, task, error) -> None:
        if task is not self.convert_task:
            return
        self.convert_task = None
        self.model.set_editable(True)
        self.eta_label.clear()
        self.progress_bar.setValue(0)
        if isinstance(error, OutputNotEmpty):
            self.progress_bar.setFormat("")
            if dialogs.ask_replace_folder(self, str(error.path)):
                self.convert(force=True)
                return
            self._show_error(f"Not converted: {error.path} is not empty. Choose another output folder, "
                             "or convert again and agree to replace it.", kind="warning")
        elif isinstance(error, Cancelled):
            self.progress_bar.setFormat("Cancelled")
            self._log(str(error))
            self.message_bar.show_message("info", "Conversion cancelled; nothing was written.")
        elif isinstance(error, PlanProblems):
            self.progress_bar.setFormat("")
            self._show_error(f"{error}: " + "; ".join(error.plan.problem_lines()[:5]))
        elif isinstance(error, SpeechportError):
            self.progress_bar.setFormat("Failed")
            self._show_error(str(error))
        else:
            self.progress_bar.setFormat("Failed")
            self.report_internal_error(error, task.traceback, context="converting")
        self._update_all()

    def open_output_folder(self) -> None:
        folder = self.result.output if self.result is not None else Path(self.output_field.path())
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # == state → widgets ==========================================================================

    def _busy_converting(self) -> bool:
        return self.convert_task is not None

    def _update_all(self) -> None:
        self._update_inputs()
        self._update_summary()
        self._update_actions()

    def _update_empty_state(self) -> None:
        """What the mapping page says while there is no plan to show."""
        source = self.source_field.path()
        name = Path(source).name if source else ""
        if not source:
            title, hint = ("Open a checkpoint to see how its keys map",
                           "Choose a .pt, .ckpt or .safetensors file above (Ctrl+O), drop one anywhere on the "
                           "window, or open the bundled demo.")
        elif self.prepare_task is not None or self.prepare_wanted:
            waiting = "Waiting for torch and transformers, then reading" if self.libraries is None else "Reading"
            title, hint = (f"Opening {name}…", f"{waiting} the checkpoint, detecting its recipe and building the plan.")
        elif self.base_model_wanted and not self.base_model_field.path():
            title, hint = (f"{name} needs its base model",
                           "Choose the upstream model folder it was trained on (Base model, above).")
        else:
            title, hint = (f"{name} is not open",
                           "See the message above: fix the input and press Enter in its field, or Reload (F5).")
        self.empty_title.setText(title)
        self.empty_hint.setText(hint)

    def _update_inputs(self) -> None:
        self._update_empty_state()
        prepared = self.prepared
        title = "Speechport"
        if self.source_field.path():
            title = f"{Path(self.source_field.path()).name} — Speechport"
        self.setWindowTitle(title + "[*]")
        if prepared is None:
            if self.prepare_task is not None or self.prepare_wanted:
                self.recipe_label.setText("detecting…")
            elif not self.source_field.path():
                self.recipe_label.setText("— (open a checkpoint to detect it)")
            self.config_info.setText("")
            self.config_page.clear()
            self.table_stack.setCurrentWidget(self.empty_state)
            return
        detection = prepared.detection
        self.recipe_label.setText(
            f"{prepared.recipe.name} · {prepared.layout} layout → {prepared.plan.target_class}   ({detection.evidence})")
        self.recipe_label.setToolTip(f"{prepared.recipe.title}\nWhy: {detection.evidence}")
        choice = prepared.config
        if choice.origin == "file":
            self.config_info.setText(f"from {Path(choice.path).name}" if choice.path else "from file")
            self.config_info.setToolTip(str(choice.path or ""))
        else:
            shown = [f"{short} {choice.inferred[name].split(':', 1)[0]}" for name, short in SUMMARY_FIELDS.items()
                     if name in choice.inferred]
            if not shown:  # another family: its first few values
                shown = [f"{name} {value.split(':', 1)[0]}" for name, value in list(choice.inferred.items())[:3]]
            more = len(choice.inferred) - len(shown)
            self.config_info.setText("inferred: " + " · ".join(shown) + (f" · +{more} more (Config tab)" if more > 0 else ""))
            self.config_info.setToolTip("\n".join(f"{name} = {value}" for name, value in choice.inferred.items()))

    def _fill_status_filter(self, plan: Plan | None) -> None:
        counts = plan.counts() if plan is not None else {}
        problems = sum(n for status, n in counts.items() if Status(status).is_problem)
        total = len(plan.rows) if plan is not None else 0
        entries = [(ALL_ROWS, f"All statuses ({total})"), (PROBLEM_ROWS, f"Problems only ({problems})")]
        entries += [(status.value, f"{status.value} ({counts.get(status.value, 0)})") for status in Status]
        current = self.status_filter.currentData() or ALL_ROWS
        self.status_filter.blockSignals(True)
        self.status_filter.clear()
        for data, text in entries:
            self.status_filter.addItem(text, data)
        for number in range(2, self.status_filter.count()):
            self.status_filter.setItemIcon(number, theme.status_icon(Status(self.status_filter.itemData(number))))
        self.status_filter.setCurrentIndex(max(0, self.status_filter.findData(current)))
        self.status_filter.blockSignals(False)

    def _status_filter_chosen(self, number: int) -> None:
        value = self.status_filter.itemData(number) or ALL_ROWS
        self.proxy.set_status_filter(value)
        self.act_problems.setChecked(value == PROBLEM_ROWS)
        self._update_summary()

    def _reason_link(self, link: str) -> None:
        self.tabs.setCurrentIndex(0)
        self._toggle_problems(True)
        self._next_problem()

    def _toggle_problems(self, checked: bool) -> None:
        self.status_filter.setCurrentIndex(self.status_filter.findData(PROBLEM_ROWS if checked else ALL_ROWS))

    def _focus_filter(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.filter_edit.setFocus()
        self.filter_edit.selectAll()

    def _next_problem(self) -> None:
        count = self.proxy.rowCount()
        start = self.table.currentIndex().row() if self.table.currentIndex().isValid() else -1
        for step in range(1, count + 1):
            proxy_row = (start + step) % count
            row = self.model.row_at(self.proxy.mapToSource(self.proxy.index(proxy_row, 0)).row())
            if row.status.is_problem:
                index = self.proxy.index(proxy_row, Column.TARGET)
                self.table.setCurrentIndex(index)
                self.table.selectRow(proxy_row)
                self.table.scrollTo(index)
                return
        self.statusBar().showMessage("No problems: ready to convert.", 3000)

    def _update_summary(self, *_) -> None:
        plan = self.model.plan
        self._fill_status_filter(plan)
        if plan is None:
            self.summary_label.setText("")
            return
        counts = plan.counts()
        parts = []
        for status in Status:
            count = counts[status.value]
            if count:
                colour = theme.status_colour(status, self.palette()).name() if status.is_problem else None
                text = f"{count} {status.value}"
                parts.append(f"<span style='color:{colour}'><b>{text}</b></span>" if colour else text)
        problems = len(plan.problems()) + len(plan.config_conflicts)
        if plan.config_conflicts:
            parts.append(f"<span style='color:{theme.message_colour('error', self.palette()).name()}'>"
                         f"<b>{len(plan.config_conflicts)} config conflict(s)</b></span>")
        sources = sum(1 for row in plan.rows if row.source_key is not None)
        verdict = (f"<span style='color:{theme.message_colour('success', self.palette()).name()}'>no problems</span>"
                   if problems == 0 else f"<b>{problems} problem(s) to fix</b>")
        shown = self.proxy.rowCount()
        filtered = f" — showing {shown} of {len(plan.rows)}" if shown != len(plan.rows) else ""
        self.summary_label.setText(f"{sources} source keys: " + " · ".join(parts) + f" — {verdict}{filtered}")

    def _conversion_blocker(self) -> tuple[str, str]:
        """Why Convert is disabled (kind, sentence), or ("", "") when it is not."""
        if self.convert_task is not None:
            return "busy", "Converting…"
        if not self.source_field.path():
            return "info", "Open a checkpoint to convert it."
        if self.prepare_task is not None or (self.prepare_wanted and self.libraries is None):
            waiting = " (waiting for torch and transformers)" if self.libraries is None else ""
            return "info", f"Opening the checkpoint…{waiting}"
        if self.prepared is None:
            if self.base_model_wanted and not self.base_model_field.path():
                return "warning", "Choose the base model folder to open this checkpoint."
            return "error", "The checkpoint could not be opened: see the message above."
        plan = self.prepared.plan
        if not plan.ok:
            lines = plan.problem_lines()
            first = lines[0] if lines else "config conflicts"
            more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
            count = len(plan.problems()) + len(plan.config_conflicts)
            return "error", (f"Convert is disabled: {count} problem(s) — {html.escape(first)}{more} · "
                             "<a href='#problems'>show them</a>")
        if not self.output_field.path():
            return "warning", "Choose an output folder to convert."
        return "", ""

    def _update_actions(self, *_) -> None:
        converting = self.convert_task is not None
        kind, reason = self._conversion_blocker()
        can_convert = not kind
        self.convert_button.setEnabled(can_convert)
        self.act_convert.setEnabled(can_convert)
        if can_convert:
            plan = self.prepared.plan
            mapped = plan.mapped()
            nbytes = sum(row.nbytes for row in mapped)
            self.convert_reason.setText(html.escape(f"Ready: {len(mapped)} tensors ({_human_bytes(nbytes)}) → {self.output_field.path()}"))
            self.convert_reason.setStyleSheet("")
            self.convert_reason.setToolTip("")
            self.convert_button.setToolTip("Write the converted transformers folder (Ctrl+Enter)")
        else:
            self.convert_reason.setText(reason)
            colour = theme.message_colour(kind, self.palette()).name() if kind in theme.MESSAGE_COLOURS else None
            self.convert_reason.setStyleSheet(f"color: {colour}" if colour else "")
            tip = reason.split(" · <a", 1)[0]
            if self.prepared is not None and not self.prepared.plan.ok:
                tip = "Convert is disabled until these are fixed:\n" + "\n".join(self.prepared.plan.problem_lines())
            self.convert_reason.setToolTip(tip)
            self.convert_button.setToolTip(tip)
        cancellable = converting or self.prepare_task is not None or self.prepare_wanted
        self.cancel_button.setEnabled(cancellable and not (converting and self.convert_task.cancelled))
        self.act_cancel.setEnabled(self.cancel_button.isEnabled())

        editable = self.prepared is not None and not converting
        has_selection = self.table.selectionModel().hasSelection()
        self.act_drop.setEnabled(editable and has_selection)
        self.act_restore.setEnabled(editable and has_selection)
        self.act_edit.setEnabled(editable)
        self.act_bulk.setEnabled(editable)
        self.act_next_problem.setEnabled(self.prepared is not None)
        self.act_undo.setEnabled(editable and self.undo_stack.canUndo())
        self.act_redo.setEnabled(editable and self.undo_stack.canRedo())
        # The menu names the step; the toolbar keeps its short label (icon text).
        self.act_undo.setText(f"&Undo {self.undo_stack.undoText()}" if self.undo_stack.canUndo() else "&Undo")
        self.act_redo.setText(f"&Redo {self.undo_stack.redoText()}" if self.undo_stack.canRedo() else "&Redo")
        self.act_undo.setIconText("Undo")
        self.act_redo.setIconText("Redo")
        self.act_undo.setToolTip(f"Undo {self.undo_stack.undoText()} (Ctrl+Z)" if self.undo_stack.canUndo() else "Undo (Ctrl+Z)")
        self.act_redo.setToolTip(f"Redo {self.undo_stack.redoText()} (Ctrl+Shift+Z)" if self.undo_stack.canRedo() else "Redo (Ctrl+Shift+Z)")
        self.act_save_mapping.setEnabled(not converting)
        self.act_load_mapping.setEnabled(not converting)
        self.act_open_folder.setEnabled(self.result is not None)
        for field in (self.source_field, self.config_field, self.base_model_field, self.output_field):
            field.setEnabled(not converting)
        for act in (self.act_open, self.act_demo, self.act_config, self.act_base_model, self.act_output, self.act_reload):
            act.setEnabled(not converting)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
            if editable else QAbstractItemView.EditTrigger.NoEditTriggers)

    def _set_base_model_visible(self, visible: bool) -> None:
        for widget in (self.input_labels["base_model"], self.base_model_field, self.base_model_info):
            widget.setVisible(visible)
        self.base_model_info.setText("needed: this checkpoint holds only a downstream head" if visible else "")

    # == messages ===================================================================================

    def _show_error(self, text: str, kind: str = "error") -> None:
        self.message_bar.show_message(kind, text)
        self._log(f"{'error' if kind == 'error' else kind}: {text}")

    def report_internal_error(self, error: BaseException, traceback_text: str = "", context: str = "") -> None:
        """An exception the core does not expect: one readable line, never a traceback."""
        where = f" while {context}" if context else ""
        text = f"internal error{where}: {type(error).__name__}: {error}"
        if traceback_text:
            log.error("%s\n%s", text, traceback_text)  # for developers, on stderr; not in the window
        self._log(text)
        self.message_bar.show_message("error", text + " (the log has details of what was being done)")
        dialogs.show_internal_error(self, text)

    def _log(self, text: str) -> None:
        self.log_pane.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    # == tasks ======================================================================================

    def _run(self, task: workers.Task, on_success, on_failure, on_progress=None) -> None:
        queued = Qt.ConnectionType.QueuedConnection  # always handled on this (the GUI) thread
        task.succeeded.connect(on_success, queued)
        task.failed.connect(on_failure, queued)
        task.succeeded.connect(self._task_done, queued)
        task.failed.connect(self._task_done, queued)
        if on_progress is not None:
            task.progressed.connect(on_progress, queued)
        self.tasks.add(task)
        workers.start(self.pool, task)

    def _task_done(self, task, _outcome) -> None:
        self.tasks.discard(task)

    def busy(self) -> bool:
        """True while anything runs or waits to run in the background (tests and the benchmark wait on this)."""
        return bool(self.tasks) or self.prepare_wanted

    # == window =====================================================================================

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if "shown" not in self.timings:
            self.timings["shown"] = time.perf_counter()
            QTimer.singleShot(0, self.start_loading_libraries)  # after the first paint

    def closeEvent(self, event) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.prepare_wanted = False
        self.pool.waitForDone(30_000)  # a cancelled conversion removes its partial folder first
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
        """Put each dropped path where it belongs: checkpoint, config, mapping, base model or output."""
        if self._busy_converting():
            self.statusBar().showMessage("A conversion is running: drop files once it is done.", 4000)
            return
        sources = []
        for raw in paths:
            path = Path(raw)
            suffix = path.suffix.lower()
            if path.is_dir():
                if self.base_model_wanted and not self.base_model_field.path():
                    self.base_model_field.commit(str(path))
                else:
                    self.output_field.commit(str(path))
            elif path.name == "config.json":
                self.config_field.commit(str(path))
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
        self.convert_button.setIcon(self.act_convert.icon())
        self.cancel_button.setIcon(self.act_cancel.icon())

    def _palette_changed(self, *_) -> None:
        if not hasattr(self, "model"):
            return
        self._set_glyph_icons()
        self.model.refresh_colours()
        self._update_summary()
        self._update_actions()

    def _appearance_chosen(self) -> None:
        action = self.sender()
        appearance = action.data() if isinstance(action, QAction) else "system"
        self.settings.setValue("appearance", appearance)
        theme.apply_appearance(QApplication.instance(), appearance)
        self._palette_changed()

    def _clean_changed(self, clean: bool) -> None:
        self.setWindowModified(not clean)  # "[*]" in the title: fixes not saved to a mapping file

    def _toggle_log(self, checked: bool) -> None:
        self.log_box.setVisible(checked)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.source_field.recent.items()
        for path in items:
            action = self.recent_menu.addAction(path)
            action.setData(path)
            action.triggered.connect(self._recent_source_triggered)
        if not items:
            self.recent_menu.addAction("No recent checkpoints").setEnabled(False)

    def _recent_source_triggered(self) -> None:
        action = self.sender()
        if isinstance(action, QAction):
            self.open_source(action.data())

    def _show_shortcuts(self) -> None:
        lines = []
        for act in (self.act_open, self.act_demo, self.act_reload, self.act_load_mapping, self.act_save_mapping,
                    self.act_undo, self.act_redo, self.act_edit, self.act_drop, self.act_restore, self.act_bulk,
                    self.act_find, self.act_problems, self.act_next_problem, self.act_convert, self.act_cancel,
                    self.act_open_folder, self.act_show_log):
            keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in act.shortcuts())
            name = act.text().replace("&", "").split(" ", 1)[0] if act in (self.act_undo, self.act_redo) else act.text().replace("&", "")
            lines.append(f"<tr><td style='padding-right:18px'>{html.escape(name)}</td><td><b>{html.escape(keys)}</b></td></tr>")
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", "", QMessageBox.StandardButton.Close, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText("<table>" + "".join(lines) + "</table>")
        box.open()

    def _show_about(self) -> None:
        from .. import __version__

        QMessageBox.about(
            self, "About Speechport",
            f"<h3>Speechport {__version__}</h3><p>Port speech-model checkpoints into Hugging Face "
            "<code>transformers</code> folders, and check that they still behave like the original.</p>",
        )


# -- small helpers ----------------------------------------------------------------------------------


def _icon(theme_name: str, style: QStyle, fallback: QStyle.StandardPixmap) -> QIcon:
    icon = QIcon.fromTheme(theme_name)
    return icon if not icon.isNull() else style.standardIcon(fallback)


class ActionButton(QPushButton):
    """A push button that mirrors an action (text, icon, tooltip, enabled state) and triggers it."""

    def __init__(self, action: QAction, name: str, parent: QWidget):
        super().__init__(action.icon(), action.text().replace("&", ""), parent)
        self.action = action
        self.setObjectName(name)
        self.setToolTip(action.toolTip())
        self.clicked.connect(action.trigger)
        action.changed.connect(self.sync)
        self.sync()

    def sync(self) -> None:
        self.setEnabled(self.action.isEnabled())


def _tool_button(action: QAction, name: str, parent: QWidget) -> QPushButton:
    return ActionButton(action, name, parent)


def _open_file_name(parent, title, start, filters) -> tuple[str, str]:
    from PySide6.QtWidgets import QFileDialog

    return QFileDialog.getOpenFileName(parent, title, start, filters)


def _save_file_name(parent, title, start, filters) -> tuple[str, str]:
    from PySide6.QtWidgets import QFileDialog

    return QFileDialog.getSaveFileName(parent, title, start, filters)
