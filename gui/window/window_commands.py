"""The window's commands: every action with its shortcut, tip and icon, and the menus and toolbar
that offer them. The window owns the actions (`window.act_*`) and its panels' buttons mirror them;
this module only builds them."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QStyle, QToolBar

from ..audition.compare_bar import COMPARE_KEYS
from ..audition.modes import MODE_SHORTCUTS
from ..shared import dialogs, theme


def build_actions(window) -> None:
    """Every action of the window, as `window.act_*`, with its shortcut, tip and icon; added to the
    window so its shortcut works wherever the focus is."""

    def action(text, slot, shortcut=None, tip="", icon=None, name=None, checkable=False) -> QAction:
        act = QAction(text, window)
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
        window.addAction(act)  # shortcuts work wherever the focus is
        return act

    style = window.style()
    sp = QStyle.StandardPixmap
    K = QKeySequence
    def fixes(method: str):
        """A slot calling the fixes editor, which is built after the actions its page shows."""
        return lambda: getattr(window.fixes_editor, method)()

    window.act_open = action("&Open checkpoint…", window.browse_source, K(K.StandardKey.Open),
                           "Open a checkpoint file", _icon("document-open", style, sp.SP_DialogOpenButton), "actionOpen")
    window.act_demo = action("Open the &demo", window.open_demo, K("Ctrl+Shift+D"),
                           "Open the bundled demo checkpoint (a tiny conformer_shaw)", theme.app_icon(), "actionDemo")
    window.act_config = action("Choose &config…", lambda: window.inputs.config_field.choose(), K("Ctrl+Shift+C"),
                             "Choose a transformers config.json (otherwise it is inferred)", name="actionConfig")
    window.act_base_model = action("Choose &base model…", window.choose_base_model, K("Ctrl+Shift+B"),
                                 "Choose the upstream model a head-only checkpoint needs: a transformers folder or "
                                 "its original checkpoint file", name="actionBaseModel")
    window.act_output = action("Choose o&utput folder…", lambda: window.inputs.output_field.choose(), K("Ctrl+Shift+O"),
                             "Choose where the converted folder goes", name="actionOutput")
    window.act_reload = action("R&eload", window.reload, K(K.StandardKey.Refresh),
                             "Open the checkpoint again with the current inputs", _icon("view-refresh", style, sp.SP_BrowserReload), "actionReload")
    window.act_load_mapping = action("&Load mapping file…", fixes("choose_mapping_to_load"), K("Ctrl+L"),
                                   "Load fixes from a mapping file (the CLI's --mapping format)", _icon("document-import", style, sp.SP_DirOpenIcon), "actionLoadMapping")
    window.act_save_mapping = action("&Save mapping file…", fixes("choose_mapping_to_save"), K(K.StandardKey.Save),
                                   "Save your fixes as a mapping file for `speechport convert --mapping`", _icon("document-save", style, sp.SP_DialogSaveButton), "actionSaveMapping")
    # Ctrl+Q spelled out: the platform's standard Quit key is none on Windows and some Linux platforms.
    window.act_quit = action("&Quit", window.close, K("Ctrl+Q"), "Close Speechport", name="actionQuit")

    window.act_undo = action("&Undo", window.undo_stack.undo, K("Ctrl+Z"), "Undo the last fix", name="actionUndo")
    window.act_redo = action("&Redo", window.undo_stack.redo, [K("Ctrl+Shift+Z"), K("Ctrl+Y")], "Redo the fix undone last",
                           name="actionRedo")
    window.act_edit = action("&Edit target key", lambda: window.mapping_page.edit_current(), K("F2"),
                           "Type the target key of the current row, with completion from the unclaimed ones", name="actionEditTarget")
    window.act_drop = action("&Drop rows", fixes("drop_selected"), K(K.StandardKey.Delete),
                           "Leave the selected keys out of the converted model", _icon("edit-delete", style, sp.SP_TrashIcon), "actionDrop")
    window.removeAction(window.act_drop)  # Delete drops rows only in the table (the mapping page adds it there)
    window.act_drop.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    window.act_restore = action("Re&store rows", fixes("restore_selected"), K("Ctrl+R"),
                              "Undo your drop or rename of the selected rows; for a key the recipe drops, type its target",
                              _icon("edit-clear", style, sp.SP_DialogResetButton), "actionRestore")
    window.act_bulk = action("&Bulk rename…", fixes("bulk_rename"), K("Ctrl+H"),
                           "Rename source keys, or set the target keys of many rows, with one regular expression",
                           name="actionBulkRename")
    window.act_suggestions = action("Apply confident su&ggestions", fixes("apply_suggestions"), K("Ctrl+Shift+G"),
                                  "Give every unmapped key whose suggestion is confident that parameter, in one step",
                                  name="actionApplySuggestions")
    window.act_suggestions.setIconText("Apply suggestions")
    window.act_find = action("&Filter keys", window.focus_filter, K(K.StandardKey.Find),
                           "Type words that the source or target key must contain", name="actionFind")
    window.act_problems = action("Show &problems only", lambda checked: window.mapping_page.toggle_problems(checked),
                               K("Ctrl+Shift+P"), "Show only the rows that stop the conversion", name="actionProblemsOnly",
                               checkable=True)
    window.act_next_problem = action("&Next problem", lambda: window.mapping_page.next_problem(), K("F8"),
                                   "Select the next row with a problem", name="actionNextProblem")

    window.act_convert = action("&Convert", lambda: window.convert(), [K("Ctrl+Return"), K("Ctrl+Enter")],
                              "Write the converted transformers folder", name="actionConvert")
    window.act_cancel = action("C&ancel", window.cancel, K("Esc"), "Stop; nothing is left behind", name="actionCancel")
    window.act_open_folder = action("Open output &folder", window.open_output_folder, K("Ctrl+Shift+F"),
                                  "Show the converted folder in the file manager", _icon("folder-open", style, sp.SP_DirIcon), "actionOpenFolder")
    window.act_show_log = action("Show &log", window.toggle_log, K("Ctrl+Shift+L"), "Show or hide the log pane",
                               name="actionShowLog", checkable=True)
    window.act_show_log.setChecked(True)
    window.act_audition = action("&Audition a clip", lambda: window.show_audition(), K("Ctrl+Shift+A"),
                               "Play a clip and compare the original and converted models on it", name="actionAudition")
    window.act_shortcuts = action("&Keyboard shortcuts", lambda: show_shortcuts(window), K(K.StandardKey.HelpContents),
                                "List the keyboard shortcuts", name="actionShortcuts")
    window.act_about = action("&About Speechport", lambda: dialogs.show_about(window), None, "About Speechport",
                            name="actionAbout")
    window.act_getting_started = action("&Getting started", lambda: show_getting_started(window), None,
                                      "Open, fix, convert, audition: the four steps in plain words",
                                      name="actionGettingStarted")

    window.appearance_group = QActionGroup(window)
    window.appearance_actions: dict[str, QAction] = {}
    for key, label in (("system", "Follow the &system"), ("light", "&Light"), ("dark", "&Dark")):
        act = QAction(label, window, checkable=True)
        act.setData(key)
        act.setObjectName(f"actionAppearance{key.title()}")
        act.triggered.connect(window.appearance_chosen)
        window.appearance_group.addAction(act)
        window.appearance_actions[key] = act
    current = str(window.settings.value("appearance", "system"))
    window.appearance_actions.get(current, window.appearance_actions["system"]).setChecked(True)


def build_toolbar(window) -> None:
    toolbar = QToolBar("Main", window)
    toolbar.setObjectName("mainToolBar")
    toolbar.setMovable(False)
    toolbar.setIconSize(QSize(18, 18))
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for act in (window.act_open, window.act_demo, None, window.act_load_mapping, window.act_save_mapping, None,
                window.act_undo, window.act_redo, None, window.act_convert, window.act_open_folder):
        if act is None:
            toolbar.addSeparator()
        else:
            toolbar.addAction(act)
    window.addToolBar(toolbar)


def build_menus(window) -> None:
    menus = window.menuBar()
    file_menu = menus.addMenu("&File")
    file_menu.addAction(window.act_open)
    window.recent_menu = file_menu.addMenu("Open &recent")
    window.recent_menu.setObjectName("recentMenu")
    window.recent_menu.aboutToShow.connect(lambda: _fill_recent_menu(window))
    file_menu.addAction(window.act_demo)
    file_menu.addSeparator()
    for act in (window.act_config, window.act_base_model, window.act_output, window.act_reload):
        file_menu.addAction(act)
    file_menu.addSeparator()
    file_menu.addAction(window.act_load_mapping)
    file_menu.addAction(window.act_save_mapping)
    file_menu.addSeparator()
    file_menu.addAction(window.act_quit)

    edit_menu = menus.addMenu("&Edit")
    for act in (window.act_undo, window.act_redo, None, window.act_edit, window.act_drop, window.act_restore, window.act_bulk,
                window.act_suggestions, None, window.act_find, window.act_problems, window.act_next_problem):
        edit_menu.addSeparator() if act is None else edit_menu.addAction(act)

    convert_menu = menus.addMenu("&Convert")
    for act in (window.act_convert, window.act_cancel, None, window.act_open_folder):
        convert_menu.addSeparator() if act is None else convert_menu.addAction(act)

    view_menu = menus.addMenu("&View")
    view_menu.addAction(window.act_audition)
    view_menu.addAction(window.act_show_log)
    appearance = view_menu.addMenu("A&ppearance")
    for act in window.appearance_actions.values():
        appearance.addAction(act)

    help_menu = menus.addMenu("&Help")
    help_menu.addAction(window.act_getting_started)
    help_menu.addAction(window.act_shortcuts)
    help_menu.addAction(window.act_about)


def _fill_recent_menu(window) -> None:
    window.recent_menu.clear()
    items = window.inputs.source_field.recent.items()
    for path in items:
        action = window.recent_menu.addAction(path)
        action.setData(path)
        action.triggered.connect(lambda _checked=False, chosen=path: window.open_source(chosen))
    if not items:
        window.recent_menu.addAction("No recent checkpoints").setEnabled(False)


# Shortcuts of a page rather than of a window action: (what, key).
PAGE_SHORTCUTS = (("Play / Pause the clip (Audition)", "Ctrl+Space"),
                  ("Compare the two models on the clip (Audition)", COMPARE_KEYS[0]), *MODE_SHORTCUTS)


def show_shortcuts(window):
    return dialogs.show_shortcuts(
        window,
        (window.act_open, window.act_demo, window.act_reload, window.act_load_mapping, window.act_save_mapping,
         window.act_undo, window.act_redo, window.act_edit, window.act_drop, window.act_restore, window.act_bulk,
         window.act_suggestions, window.act_find, window.act_problems, window.act_next_problem, window.act_convert,
         window.act_cancel, window.act_open_folder, window.act_audition, window.act_show_log),
        first_word_only=(window.act_undo, window.act_redo),
        others=PAGE_SHORTCUTS,
    )


def show_getting_started(window):
    return dialogs.show_getting_started(window, window.open_demo)


def _icon(theme_name: str, style: QStyle, fallback: QStyle.StandardPixmap) -> QIcon:
    icon = QIcon.fromTheme(theme_name)
    return icon if not icon.isNull() else style.standardIcon(fallback)
