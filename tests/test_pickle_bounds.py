"""Pickles built to exhaust, and refusals that name the right global.

Every hostile pickle is built here, byte by byte where pickle itself would not write it, inside a
torch zip (or torch's legacy format). Where a pickle could hang or crash the reader, the CLI runs
in a child process with a generous timeout: a hang fails the test by timing out, a crash by its
exit status; no test reads a clock.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import json
import pickle
import pickletools
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from speechport.core.errors import QUOTED_LIMIT, BadInput, UnsafePickle
from speechport.core.storage.checkpoint import iter_tensors, load_checkpoint
from speechport.core.storage.safe_pickle import (
    MAX_EQUAL_HASHES,
    MAX_PICKLE_NESTING,
    PICKLE_ITEMS_FLOOR,
    PICKLE_ITEMS_PER_BYTE,
    StandIn,
    item_limit,
)
from speechport.core.storage.stored_tensor import DTYPES

from conftest import FIXTURES
from support import CraftedStorage, CraftedTensor, checkpoint_path, craft_torch_zip, load_fs2

HUBERT_FAIRSEQ = FIXTURES / "s3prl_upstreams" / "upstreams" / "hubert_base" / "hubert_base.fairseq_cfg.pt"
GiB = 1 << 30


# -- building pickles -------------------------------------------------------------------------------------


def zip_with_pickle(path: Path, data: bytes, records: dict[str, bytes] | None = None) -> Path:
    """A torch zip whose data.pkl is exactly `data`."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/byteorder", "little")
        for key, value in (records or {}).items():
            archive.writestr(f"archive/data/{key}", value)
        archive.writestr("archive/version", "3\n")
    return Path(path)


def ops(obj) -> bytes:
    """The opcodes that build `obj` (protocol 2, no PROTO, no STOP, no memo), to splice into a pickle."""
    return pickletools.optimize(pickle.dumps(obj, protocol=2))[2:-1]


def text(value: str) -> bytes:
    """BINUNICODE: a string."""
    data = value.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def one_entry(key: str, value_ops: bytes, protocol: int = 2) -> bytes:
    """A pickle of {key: value}."""
    return b"\x80" + bytes([protocol]) + b"}" + text(key) + value_ops + b"s."


def with_entries(source: Path, target: Path, entries: dict[str, bytes]) -> Path:
    """`source` with more top-level entries: their opcodes are spliced in before its pickle's STOP,
    where the top-level dict is alone on the stack. Every tensor record is kept as it is."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.endswith("/data.pkl"):
                assert data.endswith(b".")
                data = data[:-1] + b"(" + b"".join(text(key) + value for key, value in entries.items()) + b"u."
            new.writestr(info, data)
    return target


def pickle_size(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return next(info.file_size for info in archive.infolist() if info.filename.endswith("/data.pkl"))


def run_child(*args, timeout: int = 180) -> tuple[int, str, list[str], int | None]:
    """The CLI in a child process: (exit status, stdout, stderr lines, the most memory it held in bytes).
    A hang fails the test by its timeout; a crash shows as a negative status and no memory line."""
    # VmHWM, the peak of this interpreter's own memory: getrusage's ru_maxrss would also count the pages the
    # child shared with this (large) test process between fork and exec.
    harness = ("import sys\nfrom speechport.cli import main\ncode = main(sys.argv[1:])\n"
               "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]\n"
               "print(int(hwm.split()[1]) * 1024, file=sys.stderr)\nsys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", harness, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    lines = done.stderr.splitlines()
    peak = int(lines.pop()) if lines and lines[-1].isdigit() else None
    return done.returncode, done.stdout, lines, peak


def too_much(pickle_bytes: int) -> str:
    return (f"would build more than {item_limit(pickle_bytes):,} items from its {pickle_bytes:,} bytes "
            f"(the limit is {PICKLE_ITEMS_PER_BYTE} per byte plus {PICKLE_ITEMS_FLOOR:,})")


TOO_DEEP = f"nests containers more than {MAX_PICKLE_NESTING} levels deep"


# -- 1. pickles built to explode ----------------------------------------------------------------------------


def shared_forty_levels(kind: str):
    """One container holding the one below twice, forty levels over: 2**40 containers as a tree."""
    value = [] if kind == "list" else {} if kind == "dict" else (1,)
    for _ in range(40):
        value = [value, value] if kind == "list" else {"a": value, "b": value} if kind == "dict" else (value, value)
    return value


@pytest.mark.parametrize("kind", ["list", "dict", "tuple as a key", "printed by builtins.str"])
def test_a_container_shared_forty_levels_deep_is_refused_naming_the_limit(tmp_path, kind):
    if kind == "list":
        data = pickle.dumps({"dag": shared_forty_levels("list")}, protocol=2)
    elif kind == "dict":
        data = pickle.dumps({"dag": shared_forty_levels("dict")}, protocol=2)
    elif kind == "tuple as a key":  # hashing it walks the whole tree: built by hand (pickle would hash it)
        data = b"\x80\x02}" + pickle.dumps(shared_forty_levels("tuple"), protocol=2)[2:-1] + b"K\x01s."
    else:
        data = one_entry("s", global_("__builtin__", "str") + pickle.dumps(shared_forty_levels("list"), protocol=2)[2:-1]
                         + b"\x85R")
    source = zip_with_pickle(tmp_path / "dag.pt", data)
    code, _, stderr, _ = run_child("inspect", source)
    assert code == 2 and len(stderr) == 1, stderr
    assert stderr[0] == (f"speechport: error: {source}: the checkpoint's pickle {too_much(len(data))}; "
                         "it was made to exhaust memory or time")


def test_bytearray_of_3_gib_in_a_533_kb_pickle_is_refused_before_it_is_allocated(tmp_path):
    padding = text("p" * 533_000)
    huge = global_("__builtin__", "bytearray") + b"\x8a\x05" + (3 * GiB).to_bytes(5, "little") + b"\x85R"
    data = b"\x80\x02}(" + text("padding") + padding + text("buffer") + huge + b"u."
    source = zip_with_pickle(tmp_path / "big.pt", data)
    assert 530_000 < len(data) < 540_000
    code, _, stderr, peak = run_child("inspect", source)
    assert code == 2 and len(stderr) == 1, stderr
    assert too_much(len(data)) in stderr[0]
    assert peak is not None and peak < GiB  # nothing near 3 GiB was ever allocated


def bytearray_of(length: int) -> bytes:
    return one_entry("b", global_("__builtin__", "bytearray") + b"\x8a\x04" + length.to_bytes(4, "little") + b"\x85R")


def test_a_bytearray_reads_up_to_the_limit_and_is_refused_past_it(tmp_path):
    size = len(bytearray_of(0))  # the same for every length below
    limit = item_limit(size)

    def load(length: int) -> bytearray:
        return load_checkpoint(zip_with_pickle(tmp_path / f"{length}.pt", bytearray_of(length))).content["b"]

    assert len(load(limit // 2)) == limit // 2 and load(1000) == bytes(1000)
    with pytest.raises(BadInput) as refused:
        load(limit + 1)
    assert too_much(size) in str(refused.value)


@pytest.mark.parametrize("copier", [("__builtin__", "list"), ("__builtin__", "set"), ("__builtin__", "str"),
                                    ("torch", "Size"), ("collections", "Counter")])
def test_copying_one_list_over_and_over_is_refused(tmp_path, copier):
    # A list of 3000 items, copied 3000 times: 9 million items from a pickle of 24 KB.
    count = 3000
    data = b"\x80\x02}" + text("copies") + b"]r\x00\x00\x00\x00(" + b"K\x01" * count + b"e" + b"s"
    data += global_(*copier) + b"q\x010" + b"h\x01h\x00\x85R0" * count + b"."
    source = zip_with_pickle(tmp_path / "copies.pt", data)
    with pytest.raises(BadInput) as refused:
        load_checkpoint(source)
    assert too_much(len(data)) in str(refused.value)


def test_a_memo_index_past_the_pickle_is_corrupt(tmp_path):
    # CPython's C unpickler would size its memo table by this index: 2**24 slots from 18 bytes.
    source = zip_with_pickle(tmp_path / "memo.pt", one_entry("m", b"K\x01r" + struct.pack("<I", 1 << 24)))
    with pytest.raises(BadInput) as refused:
        load_checkpoint(source)
    assert str(refused.value) == (f"{source}: the checkpoint's pickle is corrupt (a memo index (16777216) beyond "
                                  "the pickle's 18 bytes)")


def test_a_bytearray8_longer_than_its_pickle_is_corrupt(tmp_path):
    # Protocol 5's BYTEARRAY8 announces its length: the pure-Python unpickler would allocate it first.
    data = one_entry("b", b"\x96" + struct.pack("<Q", 3 * GiB) + b"abc", protocol=5)
    source = zip_with_pickle(tmp_path / "bytearray8.pt", data)
    code, _, stderr, peak = run_child("inspect", source)
    assert code == 2 and stderr == [f"speechport: error: {source}: the checkpoint's pickle is corrupt "
                                    "(a bytearray longer than the pickle that holds it)"]
    assert peak < GiB


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_a_container_that_contains_itself_is_refused_in_one_line(tmp_path, kind):
    value = [] if kind == "list" else {}
    if kind == "list":
        value.append(value)
    else:
        value["me"] = value
    source = zip_with_pickle(tmp_path / "self.pt", pickle.dumps({"model": {}, "loop": value}, protocol=2))
    code, stdout, stderr, _ = run_child("inspect", source, "--json")
    assert code == 2 and stderr == [f"speechport: error: {source}: the checkpoint's pickle holds a list or dict "
                                    "that contains itself, which Speechport does not read"]
    assert json.loads(stdout)["error"]["kind"] == "bad_input"


def nested(kind: str, depth: int) -> bytes:
    """A pickle of {"deep": ...} with `depth` containers nested in one another, built without recursion."""
    if kind == "list":  # push them all, then APPEND each into the one below
        return b"\x80\x02}" + text("deep") + b"]" * depth + b"a" * (depth - 1) + b"s."
    if kind == "dict":
        return b"\x80\x02}" + text("deep") + (b"}" + text("k")) * (depth - 1) + b"}" + b"s" * (depth - 1) + b"s."
    # a tuple of a tuple of ... as a key: CPython hashes it recursively in C
    return b"\x80\x02}" + b")" + b"\x85" * (depth - 1) + b"K\x01s."


@pytest.mark.parametrize("kind", ["list", "dict", "tuple as a key"])
def test_containers_nested_100k_deep_are_refused_naming_the_limit(tmp_path, kind):
    source = zip_with_pickle(tmp_path / "deep.pt", nested(kind, 100_000))
    code, _, stderr, _ = run_child("inspect", source)
    assert code == 2, (code, stderr)  # not 4 (RecursionError), not -11 (a crash hashing the tuple)
    assert stderr == [f"speechport: error: {source}: the checkpoint's pickle {TOO_DEEP} (the most Speechport reads)"]


@pytest.mark.parametrize("kind", ["list", "dict", "tuple as a key"])
def test_nesting_reads_up_to_the_limit(tmp_path, kind):
    # The top-level dict is level 0: lists and dicts below it may reach level MAX_PICKLE_NESTING; a key's
    # tuples count on their own, MAX_PICKLE_NESTING of them.
    depth = MAX_PICKLE_NESTING
    content = load_checkpoint(zip_with_pickle(tmp_path / "ok.pt", nested(kind, depth))).content
    if kind == "tuple as a key":
        (key,) = content
        levels = 0
        while key != ():
            (key,), levels = key, levels + 1
        assert levels == MAX_PICKLE_NESTING - 1
    with pytest.raises(BadInput, match=TOO_DEEP):
        load_checkpoint(zip_with_pickle(tmp_path / "deep.pt", nested(kind, depth + 1)))


def test_a_chain_met_again_deeper_counts_all_its_levels(tmp_path):
    # Ten chains of 90 lists, each ending in the chain before it: every chain is first met one level
    # down, but walked from the last one the whole is 900 levels deep.
    data = b"\x80\x02}("
    for chain in range(10):
        data += text(f"c{chain}") + b"]" * 90 + (b"h" + bytes([chain - 1]) + b"a" if chain else b"") + b"a" * 89
        data += b"q" + bytes([chain])
    source = zip_with_pickle(tmp_path / "chains.pt", data + b"u.")
    code, _, stderr, _ = run_child("inspect", source)
    assert code == 2 and stderr == [f"speechport: error: {source}: the checkpoint's pickle {TOO_DEEP} "
                                    "(the most Speechport reads)"]


@pytest.mark.parametrize("built_by", ["SETITEMS", "builtins.set"])
def test_keys_chosen_to_share_one_hash_are_refused(tmp_path, built_by):
    # Ints hash the same in every process: i * (2**61 - 1) all hash to 0, so each insertion scans all
    # the keys before it.
    modulus = (1 << 61) - 1
    keys = [i * modulus for i in range(1, 2001)]
    assert len({hash(key) for key in keys}) == 1
    if built_by == "SETITEMS":
        data = b"\x80\x02}" + text("f") + b"}(" + b"".join(ops(key) + b"N" for key in keys) + b"us."
    else:
        data = one_entry("f", global_("__builtin__", "set") + b"](" + b"".join(ops(key) for key in keys) + b"e\x85R")
    with pytest.raises(BadInput) as refused:
        load_checkpoint(zip_with_pickle(tmp_path / "flood.pt", data))
    assert f"holds more than {MAX_EQUAL_HASHES} different keys of one hash value" in str(refused.value)
    # as many as the limit read as they are
    data = b"\x80\x02}" + text("f") + b"}(" + b"".join(ops(key) + b"N" for key in keys[:MAX_EQUAL_HASHES]) + b"us."
    assert len(load_checkpoint(zip_with_pickle(tmp_path / "few.pt", data)).content["f"]) == MAX_EQUAL_HASHES


def test_a_pickle_cannot_change_a_dtype_every_file_shares(tmp_path):
    # BUILD on torch.float32 (one object for the whole process) would set its itemsize to 0 for every
    # file opened after it: checked in a child process, so a failure cannot spoil this one.
    source = zip_with_pickle(tmp_path / "dtype.pt", one_entry("d", global_("torch", "float32") + b"}" + text("itemsize")
                                                                  + b"K\x00sb"))
    harness = ("import sys\nfrom speechport.core.storage.checkpoint import load_checkpoint\n"
               "from speechport.core.errors import BadInput\nfrom speechport.core.storage.stored_tensor import DTYPES\n"
               "try:\n    load_checkpoint(sys.argv[1])\nexcept BadInput as error:\n    print(error)\n"
               "print(DTYPES['float32'].itemsize)\n")
    done = subprocess.run([sys.executable, "-c", harness, str(source)], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == [f"{source}: the checkpoint's pickle is corrupt (a BUILD instruction on DType, "
                                        "which takes no state)", "4"]
    assert DTYPES["float32"].itemsize == 4


def test_a_legacy_format_file_is_bounded_too(tmp_path):
    # torch's legacy format: five pickles in a row; torch.load(weights_only=True) allows bytearray.
    header = b"".join(pickle.dumps(value, protocol=2) for value in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}))
    huge = one_entry("b", global_("__builtin__", "bytearray") + b"\x8a\x05" + (3 * GiB).to_bytes(5, "little") + b"\x85R")
    source = tmp_path / "legacy.pt"
    source.write_bytes(header + huge + pickle.dumps([], protocol=2))
    code, _, stderr, peak = run_child("inspect", source)
    assert code == 2 and len(stderr) == 1 and too_much(source.stat().st_size) in stderr[0]
    assert peak < GiB


def test_real_checkpoints_read_as_before(tmp_path):
    # Shared tensors (tied weights) and a state dict's _metadata, which BUILD sets on its OrderedDict.
    shared = torch.arange(4.0)
    model = torch.nn.Linear(2, 2)
    state = model.state_dict()
    torch.save({"model": state, "tied": {"a": shared, "b": shared}, "set": {1, 2}, "bytes": bytearray(b"ab")},
               tmp_path / "real.pt")
    content = load_checkpoint(tmp_path / "real.pt").content
    assert content["model"]._metadata == state._metadata and isinstance(content["model"], collections.OrderedDict)
    assert content["tied"]["a"] is content["tied"]["b"] and content["set"] == {1, 2} and content["bytes"] == b"ab"


# -- 2, 3. refusals name the globals that are not allowed; common harmless ones read as plain data -------------


def numpy_ops(value, *, old_name: bool = False, big_endian: bool = False) -> bytes:
    """The opcodes numpy pickles a scalar with; numpy 1.x names its module numpy.core, and a scalar
    stored big-endian has '>' in its dtype's state and its bytes reversed."""
    data = ops(value)
    if old_name:
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    if big_endian:
        raw = value.tobytes()
        data = data.replace(text("<"), text(">")).replace(text(raw.decode("latin1")), text(raw[::-1].decode("latin1")))
    return data


EXTRA_STATE = {
    "device": ops(torch.device("cuda", 1)),
    "cpu": ops(torch.device("cpu")),
    "best_loss": numpy_ops(np.float64(1.5)),
    "lr": numpy_ops(np.float32(0.25), old_name=True),
    "step": numpy_ops(np.int64(7)),
    "half": numpy_ops(np.float16(-0.5)),
    "big": numpy_ops(np.int16(-2), big_endian=True),
    "flag": numpy_ops(np.bool_(True)),
    "complex": numpy_ops(np.complex64(1 + 2j)),
    "dtype": ops(np.dtype("float32")),
    "dtype_class": global_("numpy.dtypes", "Float64DType"),
    "order": ops(collections.OrderedDict(a=1)),
}
EXTRA_VALUES = {"device": "cuda:1", "cpu": "cpu", "best_loss": 1.5, "lr": 0.25, "step": 7, "half": -0.5, "big": -2,
                "flag": True, "complex": 1 + 2j, "dtype": "float32", "order": collections.OrderedDict(a=1)}


def test_a_fairseq_checkpoint_with_devices_and_numpy_values_reads_without_consent(tmp_path, run_cli):
    source = with_entries(HUBERT_FAIRSEQ, tmp_path / "hubert.pt",
                          {"extra_state": b"}(" + b"".join(text(k) + v for k, v in EXTRA_STATE.items()) + b"u"})
    checkpoint = load_checkpoint(source)
    assert checkpoint.reader == "speechport" and not checkpoint.trusted
    extra = checkpoint.content["extra_state"]
    assert {key: extra[key] for key in EXTRA_VALUES} == EXTRA_VALUES
    assert all(type(extra[key]) is type(value) for key, value in EXTRA_VALUES.items())  # Python values, not numpy's
    assert repr(extra["dtype_class"]) == "numpy.dtypes.Float64DType"
    assert checkpoint.content["cfg"] == load_checkpoint(HUBERT_FAIRSEQ).content["cfg"]
    for flags in ([], ["--trust-pickle"]):  # consent changes nothing, and is never asked for again
        code, stdout, stderr = run_cli("inspect", source, *flags)
        assert code == 0 and stderr == "" and "no problems: ready to convert" in stdout


def fake_omegaconf() -> tuple[dict[str, types.ModuleType], type, type]:
    """Classes that pickle under omegaconf's names with omegaconf's state (a __dict__ with _content or
    _val, and _parent pointing back), in modules to put in sys.modules only while torch.save runs."""
    def state(self):
        return dict(self.__dict__)

    config = type("DictConfig", (), {"__getstate__": state})
    node = type("AnyNode", (), {"__getstate__": state})
    config.__module__, node.__module__ = "omegaconf.dictconfig", "omegaconf.nodes"
    modules = {name: types.ModuleType(name) for name in ("omegaconf", "omegaconf.dictconfig", "omegaconf.nodes")}
    modules["omegaconf.dictconfig"].DictConfig, modules["omegaconf.nodes"].AnyNode = config, node
    return modules, config, node


def save_with_fake_omegaconf(path: Path, make) -> Path:
    modules, config_class, node_class = fake_omegaconf()

    def config(**values):
        made = config_class()
        made._content, made._parent = {}, None
        for key, value in values.items():
            leaf = node_class()
            leaf._val, leaf._parent = value, made
            made._content[key] = leaf
        return made

    sys.modules.update(modules)
    try:
        torch.save(make(config), path)
    finally:
        for name in modules:
            del sys.modules[name]
    return path


def tagged_tensor() -> torch.Tensor:
    # A tensor with a Python attribute pickles through torch._tensor._rebuild_from_type_v2, which only
    # torch.load rebuilds.
    tensor = torch.arange(3.0)
    tensor.note = "ema"
    return tensor


def test_a_global_torch_allows_beside_a_fairseq_config_reads_through_torch_with_the_config_as_plain_data(tmp_path):
    source = save_with_fake_omegaconf(tmp_path / "cfg.pt", lambda config: {
        "cfg": config(model=config(layers=2), lr=0.1), "model": {"w": torch.ones(2)},
        "extra_state": {"ema": tagged_tensor(), "device": torch.device("cuda", 0)}})
    checkpoint = load_checkpoint(source)
    assert checkpoint.reader == "torch.load" and not checkpoint.trusted
    assert checkpoint.content["cfg"] == {"model": {"layers": 2}, "lr": 0.1}
    assert checkpoint.content["extra_state"]["device"] == "cuda:0"  # as Speechport's own reader reads it
    assert torch.equal(checkpoint.content["extra_state"]["ema"].to_torch(), torch.arange(3.0))
    assert "omegaconf" not in sys.modules


def test_a_refusal_names_exactly_the_globals_that_are_not_allowed(tmp_path, run_cli):
    entries = {**EXTRA_STATE, "parser": global_("argparse", "ArgumentParser"),
               "state": global_("__main__", "TrainState") + b")\x81"}
    source = with_entries(HUBERT_FAIRSEQ, tmp_path / "hubert.pt", entries)
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(source)
    assert refused.value.globals_needed == ["__main__.TrainState", "argparse.ArgumentParser"]
    code, _, stderr = run_cli("inspect", source)
    assert code == 2 and stderr == (f"speechport: error: {source}: refused to unpickle: it needs __main__.TrainState, "
                                    "argparse.ArgumentParser, which could run code when loaded (load it only if you "
                                    "trust where this file came from); to load it anyway: --trust-pickle\n")


def test_a_numpy_value_that_is_not_a_number_is_refused_by_name(tmp_path):
    source = with_entries(HUBERT_FAIRSEQ, tmp_path / "hubert.pt", {"name": ops(np.str_("abc"))})
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(source)
    assert refused.value.globals_needed == ["numpy._core.multiarray.scalar", "numpy.dtype"]


def test_what_only_torchs_safe_loader_refuses_loads_with_consent(tmp_path, run_cli):
    # torch.load(weights_only=True) fills nothing but dict, OrderedDict and Counter: a defaultdict with
    # items, beside a tensor only torch rebuilds, is read only with consent, which is then not asked again.
    source = tmp_path / "defaultdict.pt"
    torch.save({"model": {"w": torch.ones(1)}, "counts": collections.defaultdict(list, a=[1]), "ema": tagged_tensor()},
               source)
    with pytest.raises(BadInput) as refused:
        load_checkpoint(source)
    assert "torch's weights-only loader refuses its pickle" in str(refused.value)
    assert refused.value.for_cli().endswith("; to load it anyway: --trust-pickle")
    checkpoint = load_checkpoint(source, trust_pickle=True)
    assert checkpoint.trusted and checkpoint.content["counts"] == {"a": [1]}
    code, _, stderr = run_cli("inspect", source, "--trust-pickle")
    assert "--trust-pickle" not in stderr and "refuses" not in stderr


# -- 4. consent needs no library, and keeps what it cannot import ------------------------------------------------


def test_a_trusted_fairseq_checkpoint_loads_without_omegaconf(tmp_path):
    assert importlib.util.find_spec("omegaconf") is None and importlib.util.find_spec("fairseq") is None
    source = with_entries(HUBERT_FAIRSEQ, tmp_path / "hubert.pt", {"parser": global_("argparse", "ArgumentParser")})
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(source)
    assert refused.value.globals_needed == ["argparse.ArgumentParser"]
    checkpoint = load_checkpoint(source, trust_pickle=True)
    assert checkpoint.trusted and checkpoint.reader == "torch.load"
    assert checkpoint.content["parser"] is argparse.ArgumentParser
    plain = load_checkpoint(HUBERT_FAIRSEQ).content
    assert checkpoint.content["cfg"] == plain["cfg"] and checkpoint.content["task_state"] == plain["task_state"]
    assert all(torch.equal(checkpoint.content["model"][key].to_torch(), tensor.to_torch())
               for key, tensor in plain["model"].items())
    assert "omegaconf" not in sys.modules and "fairseq" not in sys.modules


@dataclasses.dataclass
class TrainState:
    """What a training script saves from its own `__main__`."""

    step: int
    model: dict


def save_from_main(path: Path, make) -> Path:
    """torch.save run as a training script runs it: TrainState is in `__main__` while it saves, and
    gone afterwards (as it is from whatever loads the file)."""
    main = sys.modules["__main__"]
    TrainState.__module__ = "__main__"
    main.TrainState = TrainState
    try:
        torch.save(make(), path)
    finally:
        del main.TrainState
        TrainState.__module__ = __name__
    return path


def test_a_training_scripts_class_is_a_stand_in_with_consent(tmp_path):
    source = save_from_main(tmp_path / "state.pt", lambda: {"state": TrainState(7, {"w": torch.arange(3.0)}), "epoch": 2})
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(source)
    assert refused.value.globals_needed == ["__main__.TrainState"]
    checkpoint = load_checkpoint(source, trust_pickle=True)
    state = checkpoint.content["state"]
    assert isinstance(state, StandIn) and state.global_name == "__main__.TrainState"
    assert state["step"] == 7 and checkpoint.content["epoch"] == 2
    (name, tensor), = iter_tensors(checkpoint.content)
    assert name == "state.model.w" and torch.equal(tensor.to_torch(), torch.arange(3.0))


def test_a_checkpoint_saved_as_a_training_state_converts_with_consent(tmp_path, run_cli):
    source = save_from_main(tmp_path / "state.pt", lambda: TrainState(7, load_fs2("cs_s64")))
    code, _, stderr = run_cli("inspect", source)
    assert code == 2 and "it needs __main__.TrainState" in stderr and stderr.rstrip().endswith("--trust-pickle")
    out = tmp_path / "out"
    code, _, stderr = run_cli("convert", source, "--out", out, "--trust-pickle", "--quiet")
    assert code == 0, stderr
    reference = tmp_path / "reference"
    assert run_cli("convert", checkpoint_path("cs_s64"), "--out", reference, "--quiet")[0] == 0
    from safetensors.torch import load_file

    ours, theirs = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours)


class Holder:
    """An object whose part points back at it, a list subclass and a tuple subclass: how the stand-ins
    keep what a pickle gives them (state, items, arguments)."""


class Part:
    pass


class Items(list):
    pass


Pair = collections.namedtuple("Pair", "left right")


def test_stand_ins_keep_state_items_arguments_and_cut_references_back(tmp_path):
    holder, part = Holder(), Part()
    holder.part, part.owner, part.weight = part, holder, torch.ones(2)
    items = Items([torch.zeros(1), 3])
    module = types.ModuleType("speechport_training_code")
    for cls in (Holder, Part, Items, Pair):
        cls.__module__ = module.__name__
        setattr(module, cls.__name__, cls)
    sys.modules[module.__name__] = module
    try:
        torch.save({"holder": holder, "items": items, "pair": Pair(torch.full((1,), 5.0), "x")}, tmp_path / "objects.pt")
    finally:
        del sys.modules[module.__name__]
        for cls in (Holder, Part, Items, Pair):
            cls.__module__ = __name__
    content = load_checkpoint(tmp_path / "objects.pt", trust_pickle=True).content
    assert content["holder"]["part"]["owner"] is None  # a reference back to the holder: cut, not a loop
    assert content["items"]["items"][1] == 3 and content["pair"]["args"][1] == "x"
    names = {name for name, _ in iter_tensors(content)}
    assert names == {"holder.part.weight", "items.items.0", "pair.args.0"}


def test_a_list_inside_itself_is_refused_even_with_consent(tmp_path):
    loop = []
    loop.append(loop)
    torch.save({"model": {"w": torch.ones(1)}, "loop": loop, "parser": argparse.ArgumentParser}, tmp_path / "loop.pt")
    with pytest.raises(BadInput, match="holds a list or dict that contains itself"):
        load_checkpoint(tmp_path / "loop.pt", trust_pickle=True)


# -- 5. short error lines ------------------------------------------------------------------------------------


def test_a_global_named_with_a_megabyte_is_refused_in_one_short_line(tmp_path, run_cli):
    source = zip_with_pickle(tmp_path / "long.pt", one_entry("x", global_("m" * 1_000_000, "Evil")))
    code, _, stderr = run_cli("inspect", source)
    assert code == 2 and stderr.count("\n") == 1 and len(stderr) < len(str(source)) + 2 * QUOTED_LIMIT + 200
    assert "'mmmm" in stderr and "…" in stderr and "Evil'" in stderr


def test_a_global_whose_name_holds_a_line_break_is_refused_in_one_line(tmp_path, run_cli):
    # STACK_GLOBAL (protocol 4) takes its names from strings, which may hold anything.
    data = b"\x80\x04}" + text("x") + text("os") + text("system\nspeechport: all fine") + b"\x93s."
    source = zip_with_pickle(tmp_path / "break.pt", data)
    code, _, stderr = run_cli("inspect", source)
    assert code == 2 and stderr.count("\n") == 1 and "'os.system\\nspeechport: all fine'" in stderr


def test_thousands_of_globals_are_counted_not_listed(tmp_path):
    data = b"\x80\x02}(" + b"".join(text(f"g{i}") + global_("speechport_absent", f"G{i:04}") for i in range(500)) + b"u."
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(zip_with_pickle(tmp_path / "many.pt", data))
    assert len(refused.value.globals_needed) == 500
    message = str(refused.value)
    assert "speechport_absent.G0009, and" not in message and "speechport_absent.G0009 and 490 more" in message
    assert "G0010" not in message


def test_a_bad_tensor_under_a_huge_key_is_refused_in_a_short_line(tmp_path):
    key = "layer." * 20_000 + "weight"
    source = craft_torch_zip(tmp_path / "key.pt", {key: CraftedTensor(CraftedStorage("0", 2), 0, (4,), (1,))},
                             {"0": bytes(8)})
    with pytest.raises(BadInput) as refused:
        load_checkpoint(source)
    message = str(refused.value)
    assert len(message) < len(str(source)) + QUOTED_LIMIT + 200 and "…" in message and "weight'" in message
    assert "the view needs 16 bytes" in message


def test_a_compressed_pickle_that_would_unpack_past_the_limit_is_refused_unread(tmp_path, run_cli):
    from speechport.core.storage.torch_zip import MAX_PICKLE_BYTES

    # A zip bomb: a pickle followed by zeros, deflated to a few hundred KB, that would unpack into
    # more memory than any checkpoint's pickle needs.
    data = pickle.dumps({"model": {}}, protocol=2) + bytes(MAX_PICKLE_BYTES + 1)
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/version", "3\n")
    assert path.stat().st_size < 1 << 20
    code, _, stderr = run_cli("inspect", path)
    assert code == 2 and stderr == (f"speechport: error: {path}: archive/data.pkl unpacks to {len(data):,} bytes; "
                                    f"a checkpoint's pickle is at most {MAX_PICKLE_BYTES:,} bytes\n")


def test_a_compressed_pickle_within_the_limit_reads(tmp_path, run_cli):
    state = load_fs2("cs_s64")
    plain = tmp_path / "plain.pt"
    torch.save({"model": state}, plain)
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(plain) as old, zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, old.read(info), compress_type=zipfile.ZIP_DEFLATED)
    code, _, stderr = run_cli("inspect", deflated)
    assert code == 0, stderr
