"""Questions the window asks, its file choosers and small notices: keyboard shortcuts, getting
started, about.

The questions are plain functions so the window reads as a sequence of decisions, and so tests
can answer them. Every risky question defaults to the safe answer: No.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from ...core.errors import ConsentNeeded, UnsafePickle

TRUST_NAMES_SHOWN = 5  # a crafted pickle may name hundreds of globals: the question names a few, counts the rest


def trust_question(error: ConsentNeeded) -> str:
    """What the trust question says: the globals the pickle needs (a handful, then how many more), or
    why torch's safe loader refuses it."""
    if isinstance(error, UnsafePickle):
        needed = error.globals_needed
        lines = [f"  • {name}" for name in needed[:TRUST_NAMES_SHOWN]]
        if len(needed) > TRUST_NAMES_SHOWN:
            lines.append(f"  • and {len(needed) - TRUST_NAMES_SHOWN:,} more")
        what = f"{error.path}\n\nThis file asks to run Python code when it is loaded. It needs:\n" + "\n".join(lines)
    else:
        what = (f"{error.message}.\n\nLoading it anyway uses Python's own unpickler, which runs whatever "
                "code the file asks for.")
    return (f"{what}\n\nA checkpoint only needs this when it was saved with custom objects; it is also how a "
            "malicious file would take over your computer.\n\nLoad it anyway? Answer Yes only if you "
            "trust where this file came from.")


def ask_trust_pickle(parent: QWidget, error: ConsentNeeded) -> bool:
    """Loading such a pickle can run code from the file: only a clear Yes loads it."""
    answer = QMessageBox.question(
        parent,
        "Trust this checkpoint?",
        trust_question(error),
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def ask_replace_folder(parent: QWidget, path: str) -> bool:
    answer = QMessageBox.question(
        parent,
        "Replace the output folder?",
        f"{path}\n\nThis folder is not empty. Replace its contents with the converted model?\n\n"
        "The old contents are removed only once the new folder is complete.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def ask_stop_conversion(parent: QWidget) -> bool:
    """Quitting while a conversion runs: Yes stops it (what it wrote so far is removed) and quits."""
    answer = QMessageBox.question(
        parent,
        "Quit Speechport?",
        "Stop the conversion and quit?\n\nA conversion is running. Stopping it removes what it has written so "
        "far; the output folder is left as it was.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


SAVE, DISCARD, CANCEL = "save", "discard", "cancel"


def ask_save_fixes(parent: QWidget, checkpoint: str, doing: str) -> str:
    """Fixes not saved to a mapping file are about to be left behind: SAVE, DISCARD or CANCEL."""
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(
        parent,
        "Save your fixes?",
        f"Your fixes to {checkpoint} are not saved to a mapping file.\n\n"
        f"{doing[:1].upper()}{doing[1:]} throws them and their undo history away. Save them first?",
        buttons.Save | buttons.Discard | buttons.Cancel,
        buttons.Save,
    )
    return {buttons.Save: SAVE, buttons.Discard: DISCARD}.get(answer, CANCEL)


def show_internal_error(parent: QWidget, text: str) -> None:
    QMessageBox.critical(parent, "Speechport: internal error", text)


# The file choosers are looked up on QFileDialog at call time, so tests can answer them.


def open_file_name(parent: QWidget, title: str, start: str, filters: str) -> tuple[str, str]:
    return QFileDialog.getOpenFileName(parent, title, start, filters)


def save_file_name(parent: QWidget, title: str, start: str, filters: str) -> tuple[str, str]:
    return QFileDialog.getSaveFileName(parent, title, start, filters)


def show_shortcuts(parent: QWidget, actions: Iterable[QAction], first_word_only: Iterable[QAction] = (),
                   others: Iterable[tuple[str, str]] = ()) -> QMessageBox:
    """A table of the actions and their keys; `first_word_only` are actions whose text names a step
    ("Undo Rename …"), listed by their first word; `others` are (what, key) of shortcuts that belong
    to a page rather than to an action of the window."""
    short = set(first_word_only)
    entries = []
    for act in actions:
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in act.shortcuts())
        name = act.text().replace("&", "")
        if act in short:
            name = name.split(" ", 1)[0]
        entries.append((name, keys))
    entries += [(name, QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)) for name, key in others]
    lines = [f"<tr><td style='padding-right:18px'>{html.escape(name)}</td><td><b>{html.escape(keys)}</b></td></tr>"
             for name, keys in entries]
    box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", "", QMessageBox.StandardButton.Close, parent)
    box.setObjectName("shortcutsDialog")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText("<table>" + "".join(lines) + "</table>")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


GETTING_STARTED = """
<h3>Getting started</h3>
<p>Speechport turns a speech model's training checkpoint into a folder that Hugging Face
<code>transformers</code> loads — and lets you hear that the result behaves like the original.</p>
<ol>
<li><b>Open</b> a checkpoint: <i>Open checkpoint…</i> (Ctrl+O), or drop the file on the window.
Speechport recognises what it is, works out its settings, and lists every key in the
<b>Mapping</b> table with what it becomes.</li>
<li><b>Fix</b> what is red. Double-click a target key to type it: the keys that fit come first.
<i>Apply confident suggestions</i> fixes keys that were only renamed; <i>Bulk rename</i> renames many
keys with one pattern; Delete leaves a key out. Every fix can be undone (Ctrl+Z) and saved as a
mapping file the command line reads too.</li>
<li><b>Convert</b>: choose an output folder and press Convert (Ctrl+Enter). The folder appears only
once it is complete.</li>
<li><b>Audition</b>: in the Audition tab, choose a clip, listen to it and press Compare. The original
and the converted model both run on it, and the verdict says whether they agree.</li>
</ol>
<p>New to it? The demo is a tiny model that opens and converts in a second.</p>
"""


def show_getting_started(parent: QWidget, open_demo: Callable[[], None]) -> QMessageBox:
    """The four steps in plain words, with the demo one click away."""
    box = QMessageBox(QMessageBox.Icon.NoIcon, "Getting started with Speechport", "", QMessageBox.StandardButton.Close,
                      parent)
    box.setObjectName("gettingStartedDialog")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(GETTING_STARTED)
    demo = box.addButton("Open the demo", QMessageBox.ButtonRole.AcceptRole)
    demo.setObjectName("gettingStartedDemoButton")
    demo.clicked.connect(open_demo)
    box.setDefaultButton(demo)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def about_text() -> str:
    """What the About box says: the version, what Speechport does, and the versions of the libraries it
    runs on (those `speechport --version` names)."""
    from ... import __version__
    from ...core.versions import carried

    runs_on = " · ".join(f"{name} {version}" for name, version in carried().items())
    return (f"<h3>Speechport {__version__}</h3><p>Port speech-model checkpoints into Hugging Face "
            "<code>transformers</code> folders, and check that they still behave like the original.</p>"
            f"<p>Runs on {runs_on}.</p>")


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, "About Speechport", about_text())
