"""Errors are values: a user-facing sentence plus a machine-readable kind.

The CLI maps `exit_code` to its process exit status; the window shows `str(error)` in a dialog.
Nothing here ever needs a traceback to be understood. `str(error)` speaks plain words that hold
in the window too; what to type on the command line (a flag) is `cli_hint`, which only the CLI adds.
"""

from __future__ import annotations

# Anything quoted from a user's file (a key, a pattern, a value) is cut to this many characters in a
# message: an error stays one readable line even when the file holds a 48 MB key.
QUOTED_LIMIT = 200


def quoted(text: object, limit: int = QUOTED_LIMIT) -> str:
    """`repr(text)` for a message, its middle elided when longer than `limit` characters (both ends
    kept: a key's prefix and its parameter's own name are what tell it apart)."""
    text = text if isinstance(text, str) else str(text)
    if len(text) > 2 * limit:  # never build the repr of a whole 48 MB key to show 200 characters of it
        text = text[:limit] + text[-limit:]
    shown = repr(text)
    if len(shown) <= limit:
        return shown
    keep = max(limit - 1, 2)
    return f"{shown[: keep - keep // 2]}…{shown[len(shown) - keep // 2:]}"


def named(text: object, limit: int = QUOTED_LIMIT) -> str:
    """A name from a user's file (a pickled global, a storage key) as it is when it is short and
    printable, else `quoted`: a name that is a whole line, or holds a line break, is never pasted."""
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= limit and text.isprintable() else quoted(text, limit)


class SpeechportError(Exception):
    """Base of every error Speechport reports to a user."""

    kind = "error"
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, cli_hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.cli_hint = cli_hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"

    def for_cli(self) -> str:
        """The sentence with the command-line way out, where there is one."""
        return f"{self}; {self.cli_hint}" if self.cli_hint else str(self)


class BadInput(SpeechportError):
    """Unreadable or unknown file, refused pickle, bad config, unusable output path, bad audio."""

    kind = "bad_input"
    exit_code = 2


class ConsentNeeded(BadInput):
    """A file read only with the user's explicit consent (`--trust-pickle`, or Yes in the window): its
    pickle needs globals outside the allow-list (`UnsafePickle`), or torch's weights-only loader refuses it."""


class UnsafePickle(ConsentNeeded):
    """A pickle needs globals outside the allow-list; it is loaded only with explicit consent."""

    kind = "unsafe_pickle"

    NAMES_SHOWN = 10  # a crafted pickle can name thousands of globals: the message names the first ones

    def __init__(self, path: str, globals_needed: list[str]):
        self.path = path
        self.globals_needed = sorted(named(name) for name in globals_needed)
        names = ", ".join(self.globals_needed[: self.NAMES_SHOWN])
        if len(self.globals_needed) > self.NAMES_SHOWN:
            names += f" and {len(self.globals_needed) - self.NAMES_SHOWN:,} more"
        super().__init__(
            f"{path}: refused to unpickle: it needs {names}, which could run code when loaded",
            hint="load it only if you trust where this file came from",
            cli_hint="to load it anyway: --trust-pickle",
        )


class OutputNotEmpty(BadInput):
    """The output folder exists and holds files; it is replaced only with consent (force)."""

    kind = "output_not_empty"

    def __init__(self, path: str):
        self.path = path
        super().__init__(
            f"{path}: the output folder exists and is not empty",
            hint="choose another folder, or replace it once the new one is complete",
            cli_hint="to replace it: --force",
        )


class NeedsBaseModel(BadInput):
    """The checkpoint holds only a head; its recipe needs the upstream model too (a folder or a checkpoint file)."""

    kind = "needs_base_model"

    def __init__(self, path: str, recipe: str):
        self.path = path
        self.recipe = recipe
        super().__init__(
            f"{path}: a {recipe} checkpoint holds only a downstream head; give the upstream (base) model "
            "it was trained on",
            cli_hint="--base-model DIR_OR_FILE",
        )


class NeedsDictionary(BadInput):
    """A speech recognition (CTC) checkpoint whose dictionary of output symbols was not found."""

    kind = "needs_dictionary"

    def __init__(self, path: str, reason: str):
        self.path = path
        super().__init__(f"{path}: no dictionary of the model's output symbols: {reason}",
                         cli_hint="--dictionary FILE")


class PlanProblems(SpeechportError):
    """The mapping plan has problems; nothing was written. Carries the plan so every problem is shown."""

    kind = "plan_problems"
    exit_code = 3

    def __init__(self, plan):
        self.plan = plan
        count = len(plan.problems()) + len(plan.config_conflicts)
        super().__init__(f"the mapping plan has {count} problem(s); nothing was written")


class Cancelled(SpeechportError):
    """The user cancelled; whatever was being written has been removed."""

    kind = "cancelled"
    exit_code = 130

    def __init__(self, message: str = "cancelled; nothing was written"):
        super().__init__(message)
