"""Reading pickles as plain data, without importing or running anything they name.

A pickle names the globals it needs (`module.name`) and the unpickler imports and calls them:
that is how a checkpoint can run code. `PlainDataUnpickler` resolves names only through a table
given by the caller, whose entries build plain data (dicts, tuples, Speechport's own records).
Every other name is neither imported nor called: it becomes an inert `Opaque` placeholder and is
listed in `unknown`, so a caller can refuse the file naming every global it would have needed.

Some checkpoints pickle objects of libraries they were trained with: fairseq saves its config as
an omegaconf `DictConfig` (and HuBERT's task state as fairseq `Dictionary` objects). Those known
classes are read as `Recorded` objects — inert records of what the pickle gave them, neither
imported nor run — and `settle` turns them into the dicts and lists they stand for. Training
checkpoints also keep numpy scalars and dtypes beside their tensors: those are decoded by hand
(a numpy scalar is a dtype and its raw bytes), never through numpy.

A pickle is also a program that can ask for far more than it holds: `bytearray(3 << 30)` in a few
bytes, a list holding one list twice, forty levels over (2**40 lists to anything that walks it as
a tree), a memo index that makes CPython's own unpickler allocate a table of 2**29 slots, keys
chosen to share one hash. So the unpickler here is the pure-Python one, with every step that can
cost more than the bytes that ask for it charged against a budget proportional to the pickle's
size (`item_limit`), and what it returns is checked once per object (`settle`): no container
inside itself, no more than `MAX_PICKLE_NESTING` levels, no more items as a tree than the budget.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import collections
import io
import pickle
import struct
import sys
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from ..errors import BadInput

# -- what a pickle of N bytes may build ----------------------------------------------------------------
#
# Every opcode of a pickle builds at most what its own bytes spell out, except those that call
# something (a table entry, the persistent id loader), hash a key or fill an object's state: those
# are charged in items (one object, one character of a string or byte of a buffer they copy or
# create). A pickle may spend PICKLE_ITEMS_PER_BYTE items per byte of itself, plus PICKLE_ITEMS_FLOOR,
# and what it returns may be no more items as a tree. Real checkpoints spend at most a third of an
# item per byte (a state dict of thousands of small tensors; a fairseq config about a sixth), and
# are a twentieth of an item per byte as a tree.
PICKLE_ITEMS_PER_BYTE = 4
PICKLE_ITEMS_FLOOR = 1_000_000
# Containers within containers: real checkpoints nest a dozen levels (a fairseq config the most);
# Python code that walks them recursively (and CPython hashing a nested tuple) has a stack of ~1000.
MAX_PICKLE_NESTING = 100
# Distinct keys that may share one hash value: ints, floats and tuples hash the same in every process,
# so a pickle can choose thousands of keys that collide and make every dict insertion scan them all.
MAX_EQUAL_HASHES = 64


def item_limit(pickle_bytes: int) -> int:
    """The most items a pickle of `pickle_bytes` bytes may build or spend (see the constants above)."""
    return PICKLE_ITEMS_PER_BYTE * pickle_bytes + PICKLE_ITEMS_FLOOR


def _too_much(where: str, pickle_bytes: int) -> BadInput:
    return BadInput(
        f"{where} would build more than {item_limit(pickle_bytes):,} items from its {pickle_bytes:,} bytes "
        f"(the limit is {PICKLE_ITEMS_PER_BYTE} per byte plus {PICKLE_ITEMS_FLOOR:,}); it was made to "
        "exhaust memory or time"
    )


def _too_deep(where: str) -> BadInput:
    return BadInput(f"{where} nests containers more than {MAX_PICKLE_NESTING} levels deep (the most Speechport reads)")


def _holds_itself(where: str) -> BadInput:
    return BadInput(f"{where} holds a list or dict that contains itself, which Speechport does not read")


def _same_hash(where: str) -> BadInput:
    return BadInput(f"{where} holds more than {MAX_EQUAL_HASHES} different keys of one hash value; "
                    "it was made to make lookups slow")


# -- what globals read as ------------------------------------------------------------------------------


class Opaque:
    """Stands in for an object of a global the table does not know. It records what the pickle
    would have passed to it and does nothing else."""

    global_name = ""

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        instance.args = args
        instance.state = None
        instance.items = []  # what APPEND(S) gave it (a list subclass)
        instance.entries = []  # what SETITEM(S) gave it (a dict subclass), as (key, value)
        return instance

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def append(self, value):
        self.items.append(value)

    def extend(self, values):
        self.items.extend(values)

    def __setitem__(self, key, value):
        self.entries.append((key, value))

    def __repr__(self) -> str:
        return f"<{self.global_name}, not loaded>"


def _opaque_class(global_name: str) -> type:
    return type("Opaque", (Opaque,), {"global_name": global_name})


class Recorded(Opaque):
    """An object of a class Speechport knows how to read as plain data (see `settle`)."""


class Missing(Opaque):
    """In a pickle loaded with the user's consent, an object of a class that cannot be imported
    here (a training script's `__main__.TrainState`, a library that is not installed): `settle`
    turns it into a `StandIn` holding the state the pickle gave it."""


def missing_class(global_name: str) -> type:
    return type(global_name.rsplit(".", 1)[-1], (Missing,), {"global_name": global_name})


class StandIn(dict):
    """What an object of a class that could not be imported reads as: a dict of the state its pickle
    gave it (its attributes; `args` when it was built from arguments, `items` when appended to), so
    that the tensors under it are reachable. `global_name` says which class it stands for."""

    global_name = ""

    def __repr__(self) -> str:
        return f"<{self.global_name} stand-in {dict.__repr__(self)}>"


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


class NotPlain(Exception):
    """Raised by a table entry given something it does not read as plain data (a numpy dtype of
    strings or records): the global is then treated as unknown, as if the table lacked it."""


# numpy dtypes a scalar of real checkpoints has, by the code numpy pickles them with
# (`numpy.dtype('f8', False, True)`): their name and struct format.
_NUMPY_SCALARS: dict[str, tuple[str, str]] = {
    "b1": ("bool", "?"), "i1": ("int8", "b"), "i2": ("int16", "h"), "i4": ("int32", "i"), "i8": ("int64", "q"),
    "u1": ("uint8", "B"), "u2": ("uint16", "H"), "u4": ("uint32", "I"), "u8": ("uint64", "Q"),
    "f2": ("float16", "e"), "f4": ("float32", "f"), "f8": ("float64", "d"),
    "c8": ("complex64", "ff"), "c16": ("complex128", "dd"),
}


class NumpyDType(str):
    """A numpy dtype as its pickle describes it, read by hand: it reads as its name ('float64').

    numpy pickles a dtype as `numpy.dtype(code, align, copy)` and then its state, (version,
    byte order, subarray, names, fields, ...) (numpy's arraydescr_setstate); only the byte order
    matters for the numeric dtypes read here.
    """

    def __new__(cls, code, align=False, copy=True):
        if not isinstance(code, str) or code not in _NUMPY_SCALARS:
            raise NotPlain
        instance = super().__new__(cls, _NUMPY_SCALARS[code][0])
        instance.format = _NUMPY_SCALARS[code][1]
        instance.byteorder = "<"
        return instance

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")
                and state[2] is None and state[3] is None and state[4] is None):
            raise pickle.UnpicklingError("a numpy dtype whose state is not that of a number type")
        self.byteorder = state[1]


def _numpy_scalar(dtype, data=None):
    """`numpy.core.multiarray.scalar(dtype, bytes)`: the Python number those bytes hold."""
    if not isinstance(dtype, NumpyDType):
        raise NotPlain
    if isinstance(data, bytearray):
        data = bytes(data)
    if not isinstance(data, bytes) or len(data) != struct.calcsize(dtype.format):
        raise pickle.UnpicklingError(f"a numpy {dtype} scalar whose bytes are not one {dtype}")
    big = dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big")
    values = struct.unpack((">" if big else "<") + dtype.format, data)
    if len(values) == 2:
        return complex(*values)
    return bool(values[0]) if dtype.format == "?" else values[0]


# numpy 1.x and 2.x name the scalar constructor differently; the dtype classes of numpy >= 1.25
# appear as values only.
NUMPY_GLOBALS: dict[str, Any] = {
    "numpy.dtype": NumpyDType,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    **{f"numpy.dtypes.{name}": TypeToken(f"numpy.dtypes.{name}") for name in (
        "BoolDType", "Int8DType", "Int16DType", "Int32DType", "Int64DType", "UInt8DType", "UInt16DType",
        "UInt32DType", "UInt64DType", "Float16DType", "Float32DType", "Float64DType", "Complex64DType",
        "Complex128DType")},
}


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


def full_name(module: str, name: str) -> str:
    """The dotted name of a global as a pickle names it, in Python 3's words."""
    module, name = _py3_name(module, name)
    return f"{module}.{name}"


# -- the unpickler ---------------------------------------------------------------------------------------

# Objects BUILD may give attributes to: instances the pickle created of these types (never a table
# entry itself, which is shared by every file: `torch.float32` is one object for the whole process).
_ATTRIBUTE_HOLDERS = (argparse.Namespace, collections.OrderedDict, collections.Counter, collections.defaultdict)
# Types whose hash is the same in every process (str and bytes hashes are salted per process).
_SEEDLESS_HASH = (int, float, complex, bool, type(None), tuple, frozenset)
# The table entries that hash what they are given (to build a set or a dict of it); a new entry
# that does must be listed here.
_HASHES_ITS_ARGUMENTS = (set, frozenset, dict, collections.OrderedDict, collections.Counter, collections.defaultdict)


class PlainDataUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, resolving globals through a table and charging for work.

    The pure-Python unpickler (rather than CPython's C one) is used because its memo is a dict
    and each opcode is a method that can be checked: the C unpickler sizes its memo table by the
    largest index a pickle names, so `LONG_BINPUT 0x0fffffff` alone allocates 4 GiB.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO, pickle_bytes: int, table: Mapping[str, Any],
                 persistent_load: Callable[[Any], Any] | None = None, where: str = "the pickle"):
        super().__init__(file)
        self._table = table
        self._persistent = persistent_load
        self._where = where
        self._size = pickle_bytes  # what the pickle may take at most: bounds what it may build
        self._limit = item_limit(pickle_bytes)
        self._spent = 0
        self._names: dict[int, str] = {}  # id of a table entry -> the global it was found as
        self._tuples: dict[int, tuple[tuple, int, int]] = {}  # id -> (tuple, nesting, items when hashed)
        self._hashes: dict[int, set] = {}  # hash value -> the distinct seedless keys that have it
        self.unknown: set[str] = set()
        self.used: set[str] = set()

    # -- globals

    def find_class(self, module: str, name: str):
        full = full_name(module, name)
        if full in self._table:
            self.used.add(full)
            value = self._table[full]
            self._names[id(value)] = full
            return value
        self.unknown.add(full)
        return _opaque_class(full)

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError("a persistent id in a pickle that has no external data")
        self._charge(_tree_items(pid, self._limit - self._spent, self._where, self._size))
        return self._persistent(pid)

    # -- the budget

    def _charge(self, items: int) -> None:
        self._spent += items
        if self._spent > self._limit:
            raise _too_much(self._where, self._size)

    def _call(self, func, args, kwargs=None, *, new: bool = False):
        """`func(*args, **kwargs)` (`func.__new__(func, ...)` for NEWOBJ), charged for what it may cost.

        A table entry may copy, hash or print its arguments: it is charged their size as a tree,
        and every key it may hash is checked for shared hashes. Recording classes only keep
        references and cost nothing more.
        """
        if new and not isinstance(func, type):
            raise pickle.UnpicklingError("NEWOBJ on something that is not a class")
        args = tuple(args) if isinstance(args, (tuple, list)) else args
        if not isinstance(args, tuple) or not (kwargs is None or isinstance(kwargs, dict)):
            raise pickle.UnpicklingError("a call whose arguments are not a tuple")
        kwargs = kwargs or {}
        if not (isinstance(func, type) and issubclass(func, Opaque)):
            self._charge(_tree_items(args, self._limit - self._spent, self._where, self._size))
            if kwargs:
                self._charge(_tree_items(kwargs, self._limit - self._spent, self._where, self._size))
            if func is bytearray and args and isinstance(args[0], int):
                self._charge(max(args[0], 0))  # bytearray(n) is n bytes, from an argument of one item
            if func in _HASHES_ITS_ARGUMENTS:
                for arg in args:
                    self._check_keys_in(arg)
        try:
            result = func.__new__(func, *args, **kwargs) if new else func(*args, **kwargs)
        except NotPlain:
            name = self._names.get(id(func), getattr(func, "__qualname__", "?"))
            self.unknown.add(name)
            result = _opaque_class(name)(*args, **kwargs)
        if type(result) is tuple:
            self._register_tuple(result)
        return result

    # -- hashing

    def _register_tuple(self, value: tuple) -> tuple[int, int]:
        """A tuple's nesting and what hashing it costs (hash recurses into tuples, only tuples)."""
        known = self._tuples.get(id(value))
        if known is not None and known[0] is value:
            return known[1], known[2]
        nesting, items = 1, 1 + len(value)
        for item in value:
            if type(item) is tuple:
                inner_nesting, inner_items = self._register_tuple(item)
                if inner_nesting >= nesting:
                    nesting = inner_nesting + 1
                items += inner_items - 1
        if nesting > MAX_PICKLE_NESTING:  # CPython hashes nested tuples recursively in C: a deep one crashes it
            raise _too_deep(self._where)
        self._tuples[id(value)] = (value, nesting, items)
        return nesting, items

    def _key(self, key) -> None:
        """Charge hashing `key`, and refuse one hash value shared by too many distinct keys."""
        items = self._register_tuple(key)[1] if type(key) is tuple else 1
        self._charge(items)
        if type(key) not in _SEEDLESS_HASH:
            return
        group = self._hashes.setdefault(hash(key), set())
        self._charge(items * len(group))  # comparing with the keys already there
        if key not in group:
            if len(group) >= MAX_EQUAL_HASHES:
                raise _same_hash(self._where)
            group.add(key)

    def _check_keys_in(self, arg) -> None:
        # What a table entry may hash: the items of a collection it is given, the first of each pair
        # (dict(pairs)) and the keys of a mapping.
        if isinstance(arg, (list, tuple, set, frozenset)):
            for item in arg:
                if type(item) in _SEEDLESS_HASH:
                    self._key(item)
                if type(item) is tuple and len(item) == 2 and type(item[0]) in _SEEDLESS_HASH:
                    self._key(item[0])
        elif isinstance(arg, dict):
            for key in arg:
                if type(key) in _SEEDLESS_HASH:
                    self._key(key)

    # -- opcodes that call, hash, fill an object's state or allocate

    def load_reduce(self):
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._call(cls, args, new=True))

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._call(cls, args, kwargs, new=True))

    def _instantiate(self, klass, args):  # INST and OBJ (protocols 0 and 1)
        self.append(self._call(klass, args))

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, (Opaque, NumpyDType)):  # records (or checks) the state it is given
            self._charge(1)
            inst.__setstate__(state)
        elif (isinstance(inst, _ATTRIBUTE_HOLDERS) and type(state) is dict
              and all(type(key) is str for key in state)):
            self._charge(len(state))
            inst.__dict__.update(state)  # an OrderedDict's _metadata (a torch state dict), a Namespace
        else:
            raise pickle.UnpicklingError(f"a BUILD instruction on {type(inst).__name__}, which takes no state")

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._key(key)
        self.stack[-1][key] = value

    def load_setitems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        for index in range(0, len(items), 2):
            self._key(items[index])
            target[items[index]] = items[index + 1]

    def load_dict(self):
        items = self.pop_mark()
        for index in range(0, len(items), 2):
            self._key(items[index])
        self.append({items[index]: items[index + 1] for index in range(0, len(items), 2)})

    def load_additems(self):
        items = self.pop_mark()
        for item in items:
            self._key(item)
        target = self.stack[-1]
        if not isinstance(target, set):
            raise pickle.UnpicklingError("ADDITEMS on something that is not a set")
        target.update(items)

    def load_frozenset(self):
        items = self.pop_mark()
        for item in items:
            self._key(item)
        self.append(frozenset(items))

    def load_bytearray8(self):
        # The pure-Python unpickler allocates the announced length before reading: read first.
        (length,) = struct.unpack("<Q", self.read(8))
        data = self.read(length)
        if len(data) != length:
            raise pickle.UnpicklingError("a bytearray longer than the pickle that holds it")
        self.append(bytearray(data))

    def _memo_index(self, index: int) -> None:
        # A pickler numbers its memo entries from 0, one per PUT of at least 2 bytes: an index past the
        # pickle's size is crafted (and would make CPython's own unpickler allocate a table that large).
        if not 0 <= index < self._size:
            raise pickle.UnpicklingError(f"a memo index ({index}) beyond the pickle's {self._size} bytes")

    def load_put(self):
        index = int(self.readline()[:-1])
        self._memo_index(index)
        self.memo[index] = self.stack[-1]

    def load_long_binput(self):
        (index,) = struct.unpack("<I", self.read(4))
        self._memo_index(index)
        self.memo[index] = self.stack[-1]

    def load_ext(self):
        raise pickle.UnpicklingError("an extension-registry opcode, which torch.save never writes")

    def _tuple_opcode(base):
        def load(self):
            base(self)
            self._register_tuple(self.stack[-1])

        return load

    for _opcode, _method in (
        (pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj), (pickle.NEWOBJ_EX, load_newobj_ex),
        (pickle.BUILD, load_build), (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems),
        (pickle.DICT, load_dict), (pickle.ADDITEMS, load_additems), (pickle.FROZENSET, load_frozenset),
        (pickle.BYTEARRAY8, load_bytearray8), (pickle.PUT, load_put), (pickle.LONG_BINPUT, load_long_binput),
        (pickle.EXT1, load_ext), (pickle.EXT2, load_ext), (pickle.EXT4, load_ext),
    ):
        dispatch[_opcode[0]] = _method
    for _opcode in (pickle.TUPLE, pickle.EMPTY_TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3):
        dispatch[_opcode[0]] = _tuple_opcode(pickle._Unpickler.dispatch[_opcode[0]])
    del _opcode, _method, _tuple_opcode


_SCALARS = frozenset({int, float, complex, bool, type(None)})


def _tree_items(obj: Any, budget: int, where: str, pickle_bytes: int) -> int:
    """How many items `obj` is walked as a tree (strings and buffers count their length): what
    copying, hashing or printing it costs. Each object is measured once (a shared one is added
    again for every reference to it, without walking it again); refuses past `budget` items,
    `MAX_PICKLE_NESTING` levels, or a container inside itself."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def measure(value, depth: int) -> int:
        if isinstance(value, (str, bytes, bytearray)):
            return max(len(value), 1)
        if isinstance(value, argparse.Namespace):  # printed with its attributes
            value = vars(value)
        if isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            children = value
        else:
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if depth > MAX_PICKLE_NESTING:
            raise _too_deep(where)
        if key in active:
            raise _holds_itself(where)
        active.add(key)
        total = 1
        for child in children:
            kind = type(child)  # the common leaves counted here, without a call
            if kind in _SCALARS:
                total += 1
            elif kind is str or kind is bytes:
                total += len(child) or 1
            else:
                total += measure(child, depth + 1)
            if total > budget:
                raise _too_much(where, pickle_bytes)
        active.discard(key)
        sizes[key] = total
        return total

    return measure(obj, 0)


# -- what the pickle built, as plain data ----------------------------------------------------------------


class _Settler:
    """One walk over what a pickle built, each object once (memo by id): `Recorded` and `Missing`
    objects become the plain data they stand for, containers are updated in place (keeping their
    type and any sharing), and the whole is checked to be safe for code that walks it as a tree.

    Each object's result is remembered with its size as a tree and its levels (containers from it
    down to its deepest one), so that an object met again, deeper, still counts for all it is."""

    def __init__(self, where: str, limit: int, pickle_bytes: int):
        self.where = where
        self.limit = limit
        self.pickle_bytes = pickle_bytes
        self.done: dict[int, tuple[Any, Any, int, int]] = {}  # id -> (object, what it became, items, levels)
        self.active: dict[int, Any] = {}  # the objects on the way down to the current one

    def __call__(self, obj: Any, depth: int = 0) -> tuple[Any, int, int]:
        """(what `obj` becomes, its items as a tree, its levels), for `obj` met `depth` levels down."""
        if not isinstance(obj, (dict, list, tuple, set, frozenset, Opaque, NumpyDType)):
            if isinstance(obj, type) and issubclass(obj, Opaque):
                return TypeToken(obj.global_name), 1, 0  # a class named as a value
            return obj, 1, 0
        key = id(obj)
        done = self.done.get(key)
        if done is None:
            if key in self.active:
                if isinstance(obj, (Recorded, Missing)):
                    return None, 1, 0  # an object's reference back to one that holds it (omegaconf's _parent)
                raise _holds_itself(self.where)
            if depth > MAX_PICKLE_NESTING:
                raise _too_deep(self.where)
            self.active[key] = obj
            done = (obj, *self._settle(obj, depth))
            del self.active[key]
            self.done[key] = done
        _, result, items, levels = done
        if depth + levels - 1 > MAX_PICKLE_NESTING:  # met again deeper than where it was first
            raise _too_deep(self.where)
        if items > self.limit:
            raise _too_much(self.where, self.pickle_bytes)
        return result, items, levels

    def _settle(self, obj: Any, depth: int) -> tuple[Any, int, int]:
        if isinstance(obj, NumpyDType):
            return str.__str__(obj), 1, 0
        if isinstance(obj, Recorded):
            return self._recorded(obj, depth)
        if isinstance(obj, Missing):
            return self(_stand_in(obj), depth)
        if isinstance(obj, Opaque):
            return obj, 1, 0  # not loaded: the file is refused, or loaded by torch with consent
        items, below = 1, 0
        if isinstance(obj, dict):
            for key, value in list(obj.items()):
                _, key_items, key_levels = self(key, depth + 1)
                new, count, levels = self(value, depth + 1)
                items, below = items + key_items + count, max(below, key_levels, levels)
                if new is not value:
                    obj[key] = new
            return obj, items, below + 1
        if isinstance(obj, list):
            for index, value in enumerate(obj):
                new, count, levels = self(value, depth + 1)
                items, below = items + count, max(below, levels)
                if new is not value:
                    obj[index] = new
            return obj, items, below + 1
        if isinstance(obj, tuple):
            values = []
            for value in obj:
                new, count, levels = self(value, depth + 1)
                values.append(new)
                items, below = items + count, max(below, levels)
            if any(new is not old for new, old in zip(values, obj)):
                obj = type(obj)(*values) if hasattr(obj, "_fields") else tuple(values)
            return obj, items, below + 1
        for value in obj:  # a set or frozenset: its items are hashable, kept as they are
            _, count, levels = self(value, depth + 1)
            items, below = items + count, max(below, levels)
        return obj, items, below + 1

    def _recorded(self, obj: Recorded, depth: int) -> tuple[Any, int, int]:
        # What it stands for takes its place; counted one level down, so that a chain of nodes
        # (a node's value a node, ...) is as deep as it is long.
        state = obj.state if isinstance(obj.state, dict) else {}
        name = obj.global_name
        if name in _METADATA:
            return None, 1, 0
        if name == _DICT_CONFIG or name == _LIST_CONFIG:
            result, items, levels = self(state.get("_content"), depth + 1)
            if name == _DICT_CONFIG and isinstance(result, dict) and not all(type(key) is str for key in result):
                result = {str(key): value for key, value in result.items()}
        elif name in _NODES:
            result, items, levels = self(state.get("_val"), depth + 1)
        else:
            result, items, levels = self({str(key): value for key, value in state.items()}, depth + 1)
        return result, items, levels + 1


def _stand_in(obj: Missing) -> StandIn:
    """The attributes a pickle gave an object of a class that is not here, as pickle would set them:
    BUILD's state (a __dict__, or a (__dict__, slots) pair), else the state under `state`; the
    arguments it was built from under `args`, what was appended under `items`, what was set by key."""
    entries: dict = {}
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and all(part is None or isinstance(part, dict) for part in state):
        for part in state:
            entries.update(part or {})
    elif isinstance(state, dict):
        entries.update(state)
    elif state is not None:
        entries["state"] = state
    for key, value in obj.entries:
        entries[key] = value
    if obj.args:
        entries.setdefault("args", obj.args)
    if obj.items:
        entries.setdefault("items", obj.items)
    stand_in = StandIn(entries)
    stand_in.global_name = obj.global_name
    return stand_in


def settle(obj: Any, *, pickle_bytes: int, where: str = "the pickle") -> Any:
    """`obj` as plain data: every `Recorded` object turned into what it stands for (a DictConfig
    into a dict, a ListConfig into a list, a node into its value, a fairseq Dictionary into the dict
    of its fields), every `Missing` one into a `StandIn`, numpy dtypes into their names; tensors and
    everything else kept as they are. Refuses (`BadInput`) a list or dict inside itself, nesting
    beyond `MAX_PICKLE_NESTING`, and more items as a tree than a pickle of `pickle_bytes` may build."""
    return _Settler(where, item_limit(pickle_bytes), pickle_bytes)(obj)[0]


def load_plain(data: bytes | BinaryIO, table: Mapping[str, Any], *, persistent_load=None, where: str = "the pickle",
               pickle_bytes: int | None = None) -> tuple[Any, set[str]]:
    """Unpickle `data` resolving globals through `table` only; returns (object, unknown globals).

    `data` is the pickle's bytes, or a file positioned at a pickle (one of several in a row) that
    takes at most `pickle_bytes` bytes and is read up to its end. Anything a pickle can do wrong
    without running code (truncation, bad opcodes, wrong argument types for a table entry, asking
    for more than its size allows) is `BadInput`.
    """
    if isinstance(data, (bytes, bytearray)):
        data, pickle_bytes = io.BytesIO(data), len(data)
    elif pickle_bytes is None:
        raise TypeError("load_plain needs pickle_bytes to read a pickle from a file")
    unpickler = PlainDataUnpickler(_Capped(data, pickle_bytes), pickle_bytes, table, persistent_load, where)
    try:
        content = unpickler.load()
    except BadInput:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, LookupError, AttributeError, struct.error,
            OverflowError, RecursionError, MemoryError) as exc:
        text = str(exc).strip().splitlines()
        raise BadInput(f"{where} is corrupt ({text[0][:200] if text else type(exc).__name__})") from None
    return settle(content, pickle_bytes=pickle_bytes, where=where), unpickler.unknown


class _Capped:
    """A file read no further than `limit` bytes from where it was: a length a pickle announces
    never makes a read (and the buffer a read allocates for it) larger than what is there."""

    def __init__(self, file: BinaryIO, limit: int):
        self._file = file
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(self._left if size is None or size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        data = self._file.readline(self._left)
        self._left -= len(data)
        return data

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)[: self._left]
        count = self._file.readinto(view)
        self._left -= count
        return count
