"""JSON that every parser accepts: no bare NaN or Infinity.

Python's `json` writes `NaN` and `Infinity` for non-finite floats, which strict parsers (and the
JSON specification) refuse. Everything Speechport writes as JSON (`--json` output, the report,
exported comparisons) goes through `dumps`, which writes `null` for them instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


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
