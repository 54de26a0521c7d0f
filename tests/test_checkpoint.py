import argparse
import os
import shutil

import pytest
import torch
from safetensors.torch import save_file

from speechport.core.checkpoint import iter_tensors, load_checkpoint
from speechport.core.errors import BadInput, UnsafePickle

from support import checkpoint_path, load_fs2


class RunsCode:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def file_bytes_match_spans(checkpoint, tensors):
    data = checkpoint.path.read_bytes()
    for name, tensor in tensors.items():
        span = checkpoint.span_of(tensor)
        assert span is not None, name
        assert data[span.offset : span.offset + span.nbytes] == tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes(), name


def test_fairseq2_checkpoint_is_memory_mapped_and_every_tensor_located_in_the_file():
    checkpoint = load_checkpoint(checkpoint_path("cs_s64"))
    assert checkpoint.container == "torch" and checkpoint.mmapped and not checkpoint.trusted
    assert checkpoint.top_level_keys() == ["model"]
    state = checkpoint.content["model"]
    assert len(state) == 77
    file_bytes_match_spans(checkpoint, state)


def test_safetensors_and_bare_state_dict_load_with_the_same_tensors(tmp_path):
    state = load_fs2("cs_s48")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "bare.pt")
    from_safetensors = load_checkpoint(tmp_path / "w.safetensors")
    bare = load_checkpoint(tmp_path / "bare.pt")
    assert from_safetensors.container == "safetensors"
    for key, tensor in state.items():
        assert torch.equal(from_safetensors.content[key], tensor)
        assert torch.equal(bare.content[key], tensor)
    file_bytes_match_spans(from_safetensors, {k: v for k, v in from_safetensors.content.items() if v.numel()})


def test_legacy_format_loads_without_mmap(tmp_path):
    torch.save({"model": {"w": torch.arange(6.0)}}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    checkpoint = load_checkpoint(tmp_path / "old.pt")
    assert checkpoint.container == "torch-legacy" and not checkpoint.mmapped
    assert torch.equal(checkpoint.content["model"]["w"], torch.arange(6.0))
    assert checkpoint.span_of(checkpoint.content["model"]["w"]) is None  # written from memory instead


def test_argparse_namespace_is_allowed(tmp_path):
    torch.save({"Args": argparse.Namespace(lr=0.1), "Downstream": {"w": torch.ones(2)}}, tmp_path / "s3prl.ckpt")
    checkpoint = load_checkpoint(tmp_path / "s3prl.ckpt")
    assert checkpoint.content["Args"].lr == 0.1
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
    assert "posix.system" in str(refused.value) and "--trust-pickle" in str(refused.value)
    assert not marker.exists()


def test_trust_pickle_loads_what_needs_other_globals(tmp_path):
    path = tmp_path / "custom.pt"
    torch.save({"model": {"w": torch.ones(1)}, "note": argparse.ArgumentParser}, path)
    with pytest.raises(UnsafePickle):
        load_checkpoint(path)
    checkpoint = load_checkpoint(path, trust_pickle=True)
    assert checkpoint.trusted and checkpoint.content["note"] is argparse.ArgumentParser


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
    with pytest.raises(BadInput, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(BadInput, match="is a folder"):
        load_checkpoint(tmp_path)
