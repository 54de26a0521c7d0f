"""Reading pickles as plain data, without importing or running anything they name.

A pickle names the globals it needs (`module.name`) and the unpickler imports and calls them:
that is how a checkpoint can run code. `PlainDataUnpickler` resolves names only through a table
given by the caller, whose entries build plain data (dicts, tuples, Speechport's own records).
Every other name is neither imported nor called: it becomes an inert `Opaque` placeholder and is
listed in `unknown`, so a caller can refuse the file naming every global it would have needed.

Some checkpoints pickle objects of libraries they were trained with: fairseq saves its config as
an omegaconf `DictConfig` (and HuBERT's task state as fairseq `Dictionary` objects). Those known
classes are read as `Recorded` objects — inert records of what the pickle gave them, neither
imported nor run — and `plain_data` turns them into the dicts and lists they stand for.
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


class Recorded(Opaque):
    """An object of a class Speechport knows how to read as plain data (see `plain_data`)."""


class TypeToken:
    """Stands for a type that a pickle names only as a value (omegaconf metadata: `typing.Any`)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _recorded_class(global_name: str) -> type:
    return type(global_name.rsplit(".", 1)[-1], (Recorded,), {"global_name": global_name})


# omegaconf 2.x containers and nodes (what fairseq's `cfg` is) and fairseq's Dictionary: their
# pickled state is a plain __dict__ (omegaconf Container.__getstate__, Node, Dictionary).
_DICT_CONFIG = "omegaconf.dictconfig.DictConfig"
_LIST_CONFIG = "omegaconf.listconfig.ListConfig"
_NODES = tuple(f"omegaconf.nodes.{name}" for name in (
    "AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "EnumNode", "BytesNode", "PathNode"))
_METADATA = ("omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata")
_DICTIONARY = "fairseq.data.dictionary.Dictionary"
RECORDED_GLOBALS: dict[str, Any] = {
    name: _recorded_class(name) for name in (_DICT_CONFIG, _LIST_CONFIG, *_NODES, *_METADATA, _DICTIONARY)
}
# What else a fairseq checkpoint's config pickles: the types omegaconf metadata names as values
# (ref_type, object_type, element_type) and its resolver cache, a defaultdict(dict).
LIBRARY_GLOBALS: dict[str, Any] = {
    **RECORDED_GLOBALS,
    "builtins.dict": dict, "builtins.list": list, "builtins.int": int, "builtins.float": float,
    "builtins.str": str, "builtins.bool": bool, "typing.Any": TypeToken("typing.Any"),
    "collections.defaultdict": collections.defaultdict,
}


def plain_data(obj: Any, _seen: set[int] | None = None) -> Any:
    """`obj` with every `Recorded` object turned into the plain data it stands for: a DictConfig
    into a dict, a ListConfig into a list, a node into its value, a fairseq Dictionary into the
    dict of its fields. Everything else is kept as it is (tensors included)."""
    seen = _seen if _seen is not None else set()
    if isinstance(obj, Recorded):
        if id(obj) in seen:  # a container pickled inside itself: never more than one level down
            return None
        seen = seen | {id(obj)}
        state = obj.state if isinstance(obj.state, dict) else {}
        name = obj.global_name
        if name == _DICT_CONFIG:
            content = state.get("_content")
            return {str(k): plain_data(v, seen) for k, v in content.items()} if isinstance(content, dict) else content
        if name == _LIST_CONFIG:
            content = state.get("_content")
            return [plain_data(v, seen) for v in content] if isinstance(content, list) else content
        if name in _NODES:
            return plain_data(state.get("_val"), seen)
        if name in _METADATA:
            return None
        return {str(k): plain_data(v, seen) for k, v in state.items()}
    if isinstance(obj, dict):
        return {k: plain_data(v, _seen) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain_data(v, _seen) for v in obj]
    if isinstance(obj, tuple):
        return tuple(plain_data(v, _seen) for v in obj)
    return obj


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
        self.used: set[str] = set()

    def find_class(self, module: str, name: str):
        module, name = _py3_name(module, name)
        full = f"{module}.{name}"
        if full in self._table:
            self.used.add(full)
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
    if unpickler.used & set(RECORDED_GLOBALS):
        content = plain_data(content)
    return content, unpickler.unknown
