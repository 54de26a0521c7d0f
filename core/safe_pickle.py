"""Reading pickles as plain data, without importing or running anything they name.

A pickle names the globals it needs (`module.name`) and the unpickler imports and calls them:
that is how a checkpoint can run code. `PlainDataUnpickler` resolves names only through a table
given by the caller, whose entries build plain data (dicts, tuples, Speechport's own records).
Every other name is neither imported nor called: it becomes an inert `Opaque` placeholder and is
listed in `unknown`, so a caller can refuse the file naming every global it would have needed.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import collections
import io
import pickle
from collections.abc import Callable, Mapping
from typing import Any

from .errors import BadInput


class Opaque:
    """Stands in for an object of a global the table does not know. It records what the pickle
    would have passed to it and does nothing else."""

    global_name = ""

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        instance.args = args
        instance.state = None
        instance.items = []
        return instance

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    # list and dict subclasses are filled with APPEND(S) / SETITEM(S) after they are created
    def append(self, value):
        self.items.append(value)

    def extend(self, values):
        self.items.extend(values)

    def __setitem__(self, key, value):
        self.items.append((key, value))

    def __repr__(self) -> str:
        return f"<{self.global_name}, not loaded>"


def _opaque_class(global_name: str) -> type:
    return type("Opaque", (Opaque,), {"global_name": global_name})


def _encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode`, which protocol 2 uses to write bytes: only str -> bytes, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode used for something other than bytes")
    return text.encode("latin1")


# Globals that build harmless plain data whatever their arguments. torch.load(weights_only=True)
# allows each of them too; argparse.Namespace is what S3PRL's run_downstream.py saves as `Args`.
PLAIN_GLOBALS: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "collections.Counter": collections.Counter,
    "argparse.Namespace": argparse.Namespace,
    "_codecs.encode": _encode,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.complex": complex,
    "builtins.bytearray": bytearray,
}


def _py3_name(module: str, name: str) -> tuple[str, str]:
    # torch.save writes protocol 2, in which Python 3 names are written as Python 2's
    # (`__builtin__.set`); map them back as the standard unpickler does.
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class PlainDataUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, table: Mapping[str, Any], persistent_load: Callable[[Any], Any] | None = None):
        super().__init__(io.BytesIO(data))
        self._table = table
        self._persistent = persistent_load
        self.unknown: set[str] = set()

    def find_class(self, module: str, name: str):
        module, name = _py3_name(module, name)
        full = f"{module}.{name}"
        if full in self._table:
            return self._table[full]
        self.unknown.add(full)
        return _opaque_class(full)

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError("a persistent id in a pickle that has no external data")
        return self._persistent(pid)


def load_plain(data: bytes, table: Mapping[str, Any], *, persistent_load=None, where: str = "the pickle") -> tuple[Any, set[str]]:
    """Unpickle `data` resolving globals through `table` only; returns (object, unknown globals).

    Anything a pickle can do wrong without running code (truncation, bad opcodes, wrong argument
    types for a table entry) is `BadInput`.
    """
    unpickler = PlainDataUnpickler(data, table, persistent_load)
    try:
        content = unpickler.load()
    except BadInput:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        text = str(exc).strip().splitlines()
        raise BadInput(f"{where} is corrupt ({text[0][:200] if text else type(exc).__name__})") from None
    return content, unpickler.unknown
