"""The Audition tab's two views, one clip and a test set, and the keys that show each: a module of its
own, light enough for the window's list of shortcuts to import at start-up."""

from __future__ import annotations

MODE_KEYS = (("Ctrl+1", False), ("Ctrl+2", True))  # (key, shows the test set)
MODE_SHORTCUTS = (("Show one clip (Audition)", MODE_KEYS[0][0]), ("Show the test set (Audition)", MODE_KEYS[1][0]))
