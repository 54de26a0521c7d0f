"""JSON that every parser accepts: no bare NaN or Infinity; and JSON read from users' files, bounded.

Python's `json` writes `NaN` and `Infinity` for non-finite floats, which strict parsers (and the
JSON specification) refuse. Everything Speechport writes as JSON (`--json` output, the report,
exported comparisons) goes through `dumps`, which writes `null` for them instead.

What users give (a mapping file, a config) is read by `loads`: Python's parsers recurse once per
level of nesting, so `[[[[...]]]]` a hundred thousand deep would end in a RecursionError; such a
file is refused by name instead, as is anything nested deeper than any of these files needs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .files import regular_file

# How deep arrays and tables may nest in a file a user gives. A mapping file needs 3 levels (the
# file, its list of rules, a rule); a model's config.json a handful.
MAX_NESTING = 32


def plain(value: Any) -> Any:
    """`value` with non-finite floats as None, tuples and sets as lists, paths as strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        return plain(value.tolist())
    return str(value)


def dumps(value: Any, **kwargs) -> str:
    """`json.dumps` of `plain(value)`; raises ValueError rather than ever writing NaN."""
    return json.dumps(plain(value), allow_nan=False, **kwargs)


def loads(text: str, origin: str, what: str) -> Any:
    """JSON text a user gave (`what`: "the mapping file", "the config") as Python values; BadInput,
    in one sentence naming `origin`, when it is not valid JSON or nests deeper than MAX_NESTING."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise too_deep(origin, what) from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{origin}: {what} is not valid JSON ({exc})") from None
    return check_nesting(data, origin, what)


def load_file(path: str | Path, noun: str) -> Any:
    """A JSON file a user or another tool wrote (`noun`: "config", "report"), as Python values; BadInput
    in one sentence naming the file when it is no regular file, unreadable, not valid JSON or nested
    past MAX_NESTING. Nothing but a regular file is opened: a FIFO would block the read."""
    path = regular_file(path, noun)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: the {noun} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    return loads(text, str(path), f"the {noun}")


def check_nesting(data: Any, origin: str, what: str) -> Any:
    """`data` (as a JSON or TOML parser returns it), or BadInput when it nests deeper than MAX_NESTING."""
    level = [(data, 1)]  # walked with a stack of its own: the check must not recurse either
    while level:
        value, depth = level.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > MAX_NESTING:
            raise too_deep(origin, what)
        level.extend((child, depth + 1) for child in children)
    return data


def too_deep(origin: str, what: str) -> BadInput:
    return BadInput(f"{origin}: {what} nests lists or tables more than {MAX_NESTING} levels deep, "
                    f"deeper than any such file needs")
