import argparse
import os
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from speechport.core.errors import BadInput, UnsafePickle
from speechport.core.storage.checkpoint import as_torch, iter_tensors, load_checkpoint
from speechport.core.storage.stored_tensor import FileTensor, MemoryTensor

from conftest import FIXTURES
from support import (
    CraftedStorage,
    CraftedTensor,
    checkpoint_path,
    craft_torch_zip,
    load_fs2,
    recompress,
    torch_tensors,
)

FIXTURE_CHECKPOINTS = sorted(p for p in FIXTURES.rglob("*") if p.suffix in (".pt", ".ckpt"))
# fairseq files pickle omegaconf's DictConfig: torch.load(weights_only=True) refuses them; Speechport
# reads them as plain data (tested below against their S3PRL-converted twins).
FAIRSEQ_CFG = [p for p in FIXTURE_CHECKPOINTS if p.name.endswith(".fairseq_cfg.pt")]
# fairseq's CTC fine-tuned checkpoints pickle DictConfig too (tests/test_ctc.py reproduces fairseq with them).
FAIRSEQ_FINE_TUNED = sorted((FIXTURES / "ctc").rglob("*.pt"))
TORCH_READABLE = [p for p in FIXTURE_CHECKPOINTS if p not in FAIRSEQ_CFG and p not in FAIRSEQ_FINE_TUNED]


class RunsCode:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def torch_load(path):
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, weights_only=True, map_location="cpu")


def assert_same_as(reference: dict[str, torch.Tensor], checkpoint):
    """Keys (in order, for pickles), dtypes, shapes and bytes equal; every located span holds the
    tensor's bytes. A safetensors header is a JSON object: its order carries no meaning."""
    ours = dict(iter_tensors(checkpoint.content))
    if checkpoint.container == "safetensors":
        assert sorted(ours) == sorted(reference)
    else:
        assert list(ours) == list(reference)
    data = checkpoint.path.read_bytes()
    for name, expected in reference.items():
        stored = ours[name]
        assert stored.dtype.name == str(expected.dtype).removeprefix("torch."), name
        assert stored.shape == tuple(expected.shape), name
        value = stored.to_torch()
        assert value.dtype == expected.dtype and torch.equal(value, expected), name
        expected_bytes = expected.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        assert bytes(stored.contiguous_bytes()) == expected_bytes, name
        located = stored.span()
        if located is not None:
            path, span = located
            assert path == checkpoint.path and data[span.offset : span.offset + span.nbytes] == expected_bytes, name


@pytest.mark.parametrize("path", TORCH_READABLE, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_reader_returns_exactly_what_torch_load_returns_for_every_fixture_checkpoint(path):
    checkpoint = load_checkpoint(path)
    assert checkpoint.container == "torch" and checkpoint.reader == "speechport" and not checkpoint.trusted
    assert_same_as(dict(torch_tensors(torch_load(path))), checkpoint)
    assert all(isinstance(t, FileTensor) and t.span() is not None for _, t in iter_tensors(checkpoint.content))


def test_reader_opens_a_checkpoint_without_importing_torch():
    code = (
        "import sys; from speechport.core.storage.checkpoint import load_checkpoint, iter_tensors; "
        f"c = load_checkpoint({str(checkpoint_path('cs_s64'))!r}); n = len(list(iter_tensors(c.content))); "
        "print(n, 'torch' in sys.modules)"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["77", "False"]


def odd_tensors() -> dict:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "half": torch.linspace(-2, 2, 10).half(),
        "bf16": torch.linspace(-2, 2, 10).bfloat16(),
        "f64": torch.linspace(-2, 2, 10).double(),
        "int8": torch.arange(-5, 5, dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
        "f8": torch.linspace(-1, 1, 8).to(torch.float8_e4m3fn),  # pickled with _rebuild_tensor_v3
        "u16": torch.tensor([0, 1, 65535], dtype=torch.int32).to(torch.uint16),
        "complex": torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64),
        "tied": base,
        "tied_again": base,  # the same tensor twice: one storage
        "rows": base[1:3],  # a view with an offset into the shared storage
        "transposed": base.t(),  # not contiguous
        "strided": base[:, ::2],
        "empty": torch.empty(0, 3),
        "scalar": torch.tensor(3.5),
        "parameter": torch.nn.Parameter(torch.ones(2, 2)),
        "nested": {"list": [torch.ones(1), (torch.zeros(2),)]},
    }


@pytest.mark.parametrize("zip_compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
def test_dtypes_shared_storages_and_views_read_as_torch_load_reads_them(tmp_path, zip_compression):
    path = tmp_path / "odd.pt"
    torch.save(odd_tensors(), path)
    if zip_compression != zipfile.ZIP_STORED:
        path = recompress(path, tmp_path / "deflated.pt", zip_compression)
    checkpoint = load_checkpoint(path)
    assert checkpoint.reader == "speechport"
    assert_same_as(dict(torch_tensors(torch_load(path))), checkpoint)
    tensors = dict(iter_tensors(checkpoint.content))
    assert tensors["transposed"].span() is None  # not one span: read and rearranged, not copied
    if zip_compression == zipfile.ZIP_DEFLATED:
        assert all(t.span() is None for t in tensors.values())  # compressed bytes are never copied
    else:
        assert tensors["rows"].span()[1].offset == tensors["tied"].span()[1].offset + 6 * 4


def test_deflated_fixture_checkpoint_reads_every_tensor_as_torch_load(tmp_path):
    path = recompress(checkpoint_path("cs_s48"), tmp_path / "deflated.pt", zipfile.ZIP_DEFLATED)
    assert_same_as(dict(torch_tensors(torch_load(path))), load_checkpoint(path))


@pytest.mark.parametrize("compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_zip_compression_torch_cannot_read_is_refused(tmp_path, compression):
    path = recompress(checkpoint_path("cs_s64"), tmp_path / "odd.pt", compression)
    with pytest.raises(Exception):  # noqa: B017 - torch's own reader fails in its own way
        torch_load(path)
    with pytest.raises(BadInput, match="uses zip compression method"):
        load_checkpoint(path)


def test_storage_that_reaches_past_its_record_is_refused_as_torch_load_refuses_it(tmp_path):
    # The first storage claims 6 floats, its record holds 4: with a memory map, torch hands back
    # the next record's bytes as the last two values.
    path = craft_torch_zip(
        tmp_path / "short.pt",
        {"w": CraftedTensor(CraftedStorage("0", 6), 0, (2, 3), (3, 1)), "v": CraftedTensor(CraftedStorage("1", 2), 0, (2,), (1,))},
        {"0": np.arange(4, dtype=np.float32).tobytes(), "1": np.ones(2, np.float32).tobytes()},
    )
    with pytest.raises(RuntimeError, match="record size"):
        torch_load(path)
    with pytest.raises(BadInput) as refused:
        load_checkpoint(path)
    assert str(refused.value) == (f"{path}: tensor 'w': its storage needs 24 bytes but its record archive/data/0 "
                                  "holds 16; the file is corrupt or was crafted")


@pytest.mark.parametrize(
    "offset, size, stride, expected",
    [
        (2, (2, 3), (3, 1), "the view needs 32 bytes (offset 2, shape [2, 3], stride [3, 1], float32) but its storage holds 24"),
        (0, (3, 3), (3, 1), "the view needs 36 bytes"),
        (0, (2, 3), (1, 4), "the view needs 40 bytes"),
        (-1, (2,), (1,), "negative shape, stride or offset"),
        (0, (2, 3), (3,), "differ in length"),
    ],
    ids=["offset", "shape", "stride", "negative offset", "ranks"],
)
def test_view_that_reaches_past_its_storage_is_refused(tmp_path, offset, size, stride, expected):
    path = craft_torch_zip(tmp_path / "view.pt", {"w": CraftedTensor(CraftedStorage("0", 6), offset, size, stride)},
                           {"0": np.arange(6, dtype=np.float32).tobytes()})
    with pytest.raises(Exception):  # noqa: B017 - torch refuses too, each in its own words
        torch_load(path)
    with pytest.raises(BadInput, match=r"tensor 'w': ") as refused:
        load_checkpoint(path)
    assert expected in str(refused.value)


def test_storage_record_missing_from_the_archive_is_refused(tmp_path):
    path = craft_torch_zip(tmp_path / "missing.pt", {"w": CraftedTensor(CraftedStorage("9", 2), 0, (2,), (1,))}, {})
    with pytest.raises(BadInput, match="refers to storage data/9, which the archive lacks"):
        load_checkpoint(path)


def test_a_file_truncated_after_opening_gives_a_clear_error_not_a_crash(tmp_path):
    path = tmp_path / "model.pt"
    shutil.copy(checkpoint_path("cs_s64"), path)
    checkpoint = load_checkpoint(path)
    os.truncate(path, 1000)
    tensor = checkpoint.content["model"]["encoder.layers.1.ffn1.inner_proj.weight"]
    with pytest.raises(BadInput, match="the file ended early"):
        tensor.to_torch()


# -- safetensors ------------------------------------------------------------------------------------


def test_safetensors_and_bare_state_dict_load_with_the_same_tensors(tmp_path):
    state = load_fs2("cs_s48")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "bare.pt")
    from_safetensors = load_checkpoint(tmp_path / "w.safetensors")
    assert from_safetensors.container == "safetensors"
    assert_same_as(state, from_safetensors)
    assert_same_as(state, load_checkpoint(tmp_path / "bare.pt"))


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = __import__("json").dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


F32_12 = np.arange(6, dtype=np.float32).tobytes() + np.ones(6, dtype=np.float32).tobytes()
HOSTILE_SAFETENSORS = {
    "overlapping offsets": ({"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]},
                             "b": {"dtype": "F32", "shape": [6], "data_offsets": [16, 40]}}, F32_12[:40],
                            "tensor 'b': its data overlaps tensor 'a''s"),
    "negative offsets": ({"a": {"dtype": "F32", "shape": [6], "data_offsets": [-24, 0]}}, F32_12[:24],
                         "tensor 'a': negative data offsets [-24, 0]"),
    "reversed offsets": ({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
                          "b": {"dtype": "F32", "shape": [6], "data_offsets": [24, 0]}}, F32_12[:24],
                         "tensor 'b': its data offsets are reversed (24 > 0)"),
    "F16 declared over F32 bytes": ({"a": {"dtype": "F16", "shape": [6], "data_offsets": [0, 24]}}, F32_12[:24],
                                    "tensor 'a': F16 [6] needs 12 bytes, its data offsets hold 24"),
    "F64 declared over F32 bytes": ({"a": {"dtype": "F64", "shape": [6], "data_offsets": [0, 24]}}, F32_12[:24],
                                    "tensor 'a': F64 [6] needs 48 bytes, its data offsets hold 24"),
    "shape of another size": ({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 24]}}, F32_12[:24],
                              "tensor 'a': F32 [2, 2] needs 16 bytes, its data offsets hold 24"),
    "metadata a bare string": ({"__metadata__": "format=pt", "a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}},
                               F32_12[:24], "__metadata__ must map strings to strings"),
    "metadata values not strings": ({"__metadata__": {"n": 1}, "a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}},
                                    F32_12[:24], "__metadata__ must map strings to strings"),
    "a gap between tensors": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}, F32_12[:24],
                              "tensor 'b': a gap of 8 bytes precedes its data"),
    "truncated data": ({"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, F32_12[:20],
                       "the file is truncated (its tensors need"),
    "bytes after the data": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, F32_12[:24],
                             "16 bytes follow the last tensor's data"),
    "unknown dtype": ({"a": {"dtype": "F33", "shape": [6], "data_offsets": [0, 24]}}, F32_12[:24],
                      "tensor 'a': unknown dtype 'F33'"),
}


@pytest.mark.parametrize("case", list(HOSTILE_SAFETENSORS))
def test_safetensors_the_library_refuses_are_refused_naming_the_tensor(tmp_path, case):
    header, data, expected = HOSTILE_SAFETENSORS[case]
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(header, data))
    with pytest.raises(Exception):  # noqa: B017 - the library is the authority: it refuses each of these
        with safe_open(str(path), framework="numpy") as handle:
            [handle.get_tensor(k) for k in handle.keys()]
    with pytest.raises(BadInput) as refused:
        load_checkpoint(path)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_safetensors_with_unaligned_offsets_reads_as_the_library_does(tmp_path):
    # One int8 tensor of 3 bytes first: the float32 that follows starts at an odd offset.
    data = np.arange(3, dtype=np.int8).tobytes() + np.linspace(0, 1, 4, dtype=np.float32).tobytes()
    header = {"__metadata__": {"format": "pt"}, "i": {"dtype": "I8", "shape": [3], "data_offsets": [0, 3]},
              "f": {"dtype": "F32", "shape": [2, 2], "data_offsets": [3, 19]}}
    path = tmp_path / "odd.safetensors"
    path.write_bytes(safetensors_bytes(header, data))
    with safe_open(str(path), framework="pt") as handle:
        expected = {key: handle.get_tensor(key) for key in handle.keys()}
    checkpoint = load_checkpoint(path)
    assert checkpoint.metadata == {"format": "pt"}
    ours = dict(iter_tensors(checkpoint.content))
    for key, tensor in expected.items():
        assert torch.equal(ours[key].to_torch(), tensor)
    assert ours["f"].span()[1].offset == 8 + len(__import__("json").dumps(header).encode()) + 3


# -- legacy format, unsafe pickles, consent -----------------------------------------------------


def test_legacy_format_loads_through_torch_into_memory(tmp_path):
    torch.save({"model": {"w": torch.arange(6.0)}}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    checkpoint = load_checkpoint(tmp_path / "old.pt")
    assert checkpoint.container == "torch-legacy" and checkpoint.reader == "torch.load"
    tensor = checkpoint.content["model"]["w"]
    assert isinstance(tensor, MemoryTensor) and tensor.span() is None  # written from memory instead
    assert torch.equal(tensor.to_torch(), torch.arange(6.0))


def test_argparse_namespace_is_allowed(tmp_path):
    torch.save({"Args": argparse.Namespace(lr=0.1), "Downstream": {"w": torch.ones(2)}}, tmp_path / "s3prl.ckpt")
    checkpoint = load_checkpoint(tmp_path / "s3prl.ckpt")
    assert checkpoint.content["Args"].lr == 0.1 and checkpoint.reader == "speechport"
    assert [name for name, _ in iter_tensors(checkpoint.content)] == ["Downstream.w"]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickle_that_would_run_code_is_refused_and_never_executed(tmp_path, legacy):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(1)}, "payload": RunsCode(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(path)
    assert refused.value.globals_needed == ["posix.system"]
    assert "posix.system" in str(refused.value) and "--trust-pickle" in refused.value.for_cli()
    assert not marker.exists()


def test_every_global_outside_the_list_is_refused_by_name_in_one_message(tmp_path):
    path = tmp_path / "many.pt"
    torch.save({"model": {"w": torch.ones(1)}, "a": argparse.ArgumentParser, "b": Path, "c": os.getcwd}, path)
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(path)
    assert refused.value.globals_needed == ["argparse.ArgumentParser", "pathlib.Path", "posix.getcwd"]


def test_trust_pickle_loads_what_needs_other_globals(tmp_path):
    path = tmp_path / "custom.pt"
    torch.save({"model": {"w": torch.ones(1)}, "note": argparse.ArgumentParser}, path)
    with pytest.raises(UnsafePickle):
        load_checkpoint(path)
    checkpoint = load_checkpoint(path, trust_pickle=True)
    assert checkpoint.trusted and checkpoint.content["note"] is argparse.ArgumentParser
    assert checkpoint.reader == "torch.load" and isinstance(checkpoint.content["model"]["w"], MemoryTensor)


def pickle_naming_a_module_that_is_not_installed(path: Path) -> Path:
    """A checkpoint pickling an object of `speechport_absent_module.Config` (like fairseq's omegaconf
    DictConfig on a machine without omegaconf): the module does not exist here."""

    class Config:
        pass

    Config.__module__, Config.__qualname__ = "speechport_absent_module", "Config"
    sys.modules["speechport_absent_module"] = type(sys)("speechport_absent_module")
    sys.modules["speechport_absent_module"].Config = Config
    try:
        torch.save({"model": {"w": torch.ones(1)}, "cfg": Config()}, path)
    finally:
        del sys.modules["speechport_absent_module"]
    return path


def test_a_global_of_a_module_that_is_not_installed_is_refused_by_name_and_a_stand_in_with_trust(tmp_path):
    path = pickle_naming_a_module_that_is_not_installed(tmp_path / "cfg.pt")
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(path)
    assert refused.value.globals_needed == ["speechport_absent_module.Config"]
    checkpoint = load_checkpoint(path, trust_pickle=True)  # the class is not here: a stand-in keeps its state
    assert checkpoint.trusted and checkpoint.content["cfg"] == {}
    assert checkpoint.content["cfg"].global_name == "speechport_absent_module.Config"
    assert "speechport_absent_module" not in sys.modules
    assert torch.equal(checkpoint.content["model"]["w"].to_torch(), torch.ones(1))


def test_unusual_tensor_kinds_are_read_through_torch(tmp_path):
    path = tmp_path / "big.pt"
    torch.save({"w": torch.arange(4.0)}, path)
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(tmp_path / "be.pt", "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.endswith("byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = np.arange(4, dtype=">f4").tobytes()
            new.writestr(info, data)
    checkpoint = load_checkpoint(tmp_path / "be.pt")
    assert checkpoint.reader == "torch.load"
    assert torch.equal(checkpoint.content["w"].to_torch(), torch.arange(4.0))


def test_as_torch_reads_floats_in_the_asked_dtype_and_keeps_integers():
    checkpoint = load_checkpoint(checkpoint_path("cs_s64"))
    state = as_torch(checkpoint.content["model"], torch.float64)
    assert state["encoder.layers.0.ffn1.inner_proj.weight"].dtype == torch.float64
    assert state["quantizer.num_updates"].dtype == torch.int64


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
        (lambda p: p.write_bytes(checkpoint_path("cs_s64").read_bytes()[:300_000]), "truncated or corrupt"),
        (lambda p: shutil.copy("tests/fixtures/conformer_shaw/audio/s_speech_16k_mono.wav", p), "WAV audio file"),
        (lambda p: p.write_bytes(b"hello world, not a model"), "not a checkpoint Speechport can read"),
    ],
    ids=["empty", "truncated", "wav", "text"],
)
def test_bad_files_raise_one_clear_sentence(tmp_path, make, expected):
    path = tmp_path / "model.pt"
    make(path)
    with pytest.raises(BadInput) as error:
        load_checkpoint(path)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadInput, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(BadInput, match="is a folder"):
        load_checkpoint(tmp_path)


def test_corrupt_pickle_is_bad_input(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"w": torch.ones(2)}, path)
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(tmp_path / "broken.pt", "w") as new:
        for info in old.infolist():
            data = old.read(info)
            new.writestr(info, data[: len(data) // 2] if info.filename.endswith("data.pkl") else data)
    with pytest.raises(BadInput, match="the checkpoint's pickle is corrupt"):
        load_checkpoint(tmp_path / "broken.pt")



# -- checkpoints that pickle their training library's objects (fairseq, omegaconf) -------------------


UPSTREAMS = {u["id"]: u for u in __import__("json").loads((FIXTURES / "s3prl_upstreams" / "MANIFEST.json").read_text())["upstreams"]}


@pytest.mark.parametrize("path", FAIRSEQ_CFG, ids=lambda p: p.name)
def test_fairseq_checkpoints_are_read_as_plain_data_without_consent(path):
    upstream = UPSTREAMS[path.parent.name]
    with pytest.raises(Exception):  # noqa: B017 - torch refuses omegaconf's DictConfig
        torch_load(path)
    checkpoint = load_checkpoint(path)  # no trust needed: nothing of omegaconf or fairseq is imported
    assert checkpoint.reader == "speechport" and not checkpoint.trusted
    assert "omegaconf" not in sys.modules and "fairseq" not in sys.modules
    cfg = checkpoint.content["cfg"]
    assert cfg["model"] == upstream["model_cfg"] and cfg["task"] == upstream["task_cfg"]
    twin = load_checkpoint(path.parent / upstream["files"]["s3prl"]["file"]).content["model_weight"]
    ours = checkpoint.content["model"]
    shared = [key for key, value in twin.items() if isinstance(value, FileTensor)]
    assert shared and all(torch.equal(ours[key].to_torch(), twin[key].to_torch()) for key in shared)
    if path.parent.name.startswith("hubert"):
        dictionary = checkpoint.content["task_state"]["dictionaries"][0]
        assert dictionary["symbols"][:4] == ["<s>", "<pad>", "</s>", "<unk>"] and dictionary["pad_index"] == 1


class DictConfig:
    """Pickles under omegaconf's name, with a payload in its state that would run code."""

    def __init__(self, marker):
        self._content = {"x": RunsCode(marker)}


def test_a_known_library_class_carrying_an_unknown_global_is_still_refused(tmp_path):
    DictConfig.__module__, DictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
    package, module = type(sys)("omegaconf"), type(sys)("omegaconf.dictconfig")
    module.DictConfig, package.dictconfig = DictConfig, module
    sys.modules.update({"omegaconf": package, "omegaconf.dictconfig": module})
    marker = tmp_path / "code-ran"
    path = tmp_path / "cfg.pt"
    try:
        torch.save({"cfg": DictConfig(marker), "model": {"w": torch.ones(1)}}, path)
    finally:
        del sys.modules["omegaconf"], sys.modules["omegaconf.dictconfig"]
    with pytest.raises(UnsafePickle) as refused:
        load_checkpoint(path)
    assert refused.value.globals_needed == ["posix.system"] and not marker.exists()
