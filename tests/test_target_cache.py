"""The target cache: a known architecture converts without importing torch or transformers, into
the same bytes as without the cache; what the cache holds is what transformers builds, and an
entry that is not exactly that is rebuilt, never used."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

from speechport.core.conversion import prepare
from speechport.core.library_guard import NeedsLibraries
from speechport.core.planning.target_cache import CACHE, targets_folder
from speechport.core.storage import cache_store, digest_cache
from speechport.core.storage.hashing import BackgroundHash

from conftest import FIXTURES, S3PRL
from support import checkpoint_path, config_path

UPSTREAMS = FIXTURES / "s3prl_upstreams"
WAVLM_FILE = UPSTREAMS / "upstreams" / "wavlm_base_plus" / "wavlm_base_plus.pt"
LABELS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]
# (what, convert arguments): one of each way a config is settled, for each kind of recipe.
CASES = {
    "conformer_shaw inferred": [checkpoint_path("cs_s64")],
    "conformer_shaw from a config file": [checkpoint_path("cs_s48"), "--config", config_path("cs_s48")],
    "wavlm upstream file": [WAVLM_FILE],
    "head on a base model folder, with labels": [S3PRL / "sid" / "dev-best.ckpt", "--base-model", S3PRL / "base_model",
                                                 "--labels", "LABELS"],
    "head on an upstream file": [UPSTREAMS / "downstream" / "wavlm_sid" / "dev-best.ckpt", "--base-model", WAVLM_FILE],
}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """An empty user cache of the test's own."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def without_run_details(report: bytes) -> dict:
    """The report without what differs between any two runs (when, how long, which reads were cached)."""
    data = json.loads(report)
    for key in ("created", "seconds", "timings"):
        data.pop(key, None)
    return data


def arguments(case: str, tmp_path: Path) -> list[str]:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    return [str(labels) if a == "LABELS" else str(a) for a in CASES[case]]


@pytest.mark.parametrize("case", list(CASES))
def test_converted_folders_are_byte_identical_with_and_without_the_cache(case, cache_home, tmp_path, run_cli):
    args = arguments(case, tmp_path)
    outputs = {}
    for run, extra in (("no cache", ["--no-cache"]), ("cold", []), ("warm", [])):
        builds = CACHE.builds
        code, _, stderr = run_cli("convert", *args, "--out", tmp_path / run, "--quiet", *extra)
        assert code == 0, stderr
        outputs[run] = tree(tmp_path / run)
        if run == "warm":
            assert CACHE.builds == builds, "the warm run built a target although the cache holds it"
        else:
            assert CACHE.builds > builds
        if run == "no cache":
            assert not (cache_home / "speechport").exists(), "--no-cache wrote to the cache"
    for run in ("cold", "warm"):
        assert outputs[run].keys() == outputs["no cache"].keys()
        for name, content in outputs["no cache"].items():
            if name == "speechport_report.json":
                assert without_run_details(outputs[run][name]) == without_run_details(content)
            else:
                assert outputs[run][name] == content, f"{name} differs between the {run} run and --no-cache"


@pytest.mark.parametrize("case", ["conformer_shaw inferred", "wavlm upstream file", "head on a base model folder, with labels"])
def test_a_cached_schema_equals_the_meta_model_of_the_converted_config(case, cache_home, tmp_path, run_cli):
    code, _, stderr = run_cli("convert", *arguments(case, tmp_path), "--out", tmp_path / "out", "--quiet")
    assert code == 0, stderr
    folder = tmp_path / "out"
    config = transformers.AutoConfig.from_pretrained(folder)
    model_class = getattr(transformers, config.architectures[0])
    with torch.device("meta"):
        model = model_class(config)
    expected = {key: [list(value.shape), str(value.dtype).removeprefix("torch.")] for key, value in model.state_dict().items()}
    entries = [json.loads(path.read_text()) for path in targets_folder().glob("*.json")]
    matching = [entry for entry in entries if entry["target_class"] == model_class.__name__]
    assert len(matching) == 1
    assert matching[0]["targets"] == expected
    assert matching[0]["files"]["config.json"] == (folder / "config.json").read_text()


def _entry_path(cache_home: Path) -> Path:
    [path] = list((cache_home / "speechport" / "targets").glob("*.json"))
    return path


def _edit_entry(path: Path, change) -> None:
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))


def _consistent(entry: dict) -> None:
    """An edit signed again with the user's own key (as only someone who can read the user's data
    folder could): caught by what the signature does not vouch for (the key's inputs, the entry's
    shape). Edits without the key are `test_cache_integrity.py`'s."""
    entry.pop(cache_store.SIGNATURE)
    entry[cache_store.SIGNATURE] = cache_store.sign(cache_store.signing_key(), entry)


TAMPERING = {
    "a target shape changed": lambda e: e["targets"]["encoder.layers.0.ffn1.intermediate_dense.weight"][0].__setitem__(0, 7),
    "built by another transformers": lambda e: e["inputs"].__setitem__("transformers", "0.0.1"),
    "another entry's inputs": lambda e: e["inputs"]["spec"]["values"].__setitem__("num_hidden_layers", 99),
    "config.json edited": lambda e: e["files"].__setitem__("config.json", "{}"),
    "the signature edited": lambda e: e.__setitem__(cache_store.SIGNATURE, "0" * 64),
    "another entry's inputs, checksum fixed": lambda e: (
        e["inputs"]["spec"]["values"].__setitem__("num_hidden_layers", 99), _consistent(e)),
    "no config.json, checksum fixed": lambda e: (e["files"].pop("config.json"), _consistent(e)),
    "a field of the wrong type": lambda e: (e.__setitem__("targets", {"x": [[-1], "float32"]}), _consistent(e)),
    "a field missing": lambda e: (e.pop("preprocessor"), None),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_a_tampered_entry_is_rebuilt_never_used(tampering, cache_home, tmp_path):
    source = checkpoint_path("cs_s64")
    first = prepare(source)
    first.hasher.cancel()
    path = _entry_path(cache_home)
    good = path.read_bytes()
    _edit_entry(path, TAMPERING[tampering])
    builds = CACHE.builds
    again = prepare(source)
    again.hasher.cancel()
    assert CACHE.builds == builds + 1, "the tampered entry was used"
    assert again.targets == first.targets and again.config.config.files() == first.config.config.files()
    assert again.plan.ok
    assert json.loads(path.read_bytes()) == json.loads(good), "the rebuilt entry did not replace the tampered one"


@pytest.mark.parametrize("damage", ["truncated", "not JSON", "empty", "a folder"])
def test_a_corrupt_entry_is_rebuilt(damage, cache_home):
    source = checkpoint_path("cs_s64")
    prepare(source).hasher.cancel()
    path = _entry_path(cache_home)
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "not JSON":
        path.write_bytes(b"\x00\xff" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path.mkdir()
    builds = CACHE.builds
    prepared = prepare(source)
    prepared.hasher.cancel()
    assert CACHE.builds == builds + 1 and prepared.plan.ok
    if damage != "a folder":  # a folder in its place cannot be replaced: the cache is only skipped
        assert path.read_bytes() == good


def test_an_unwritable_cache_costs_speed_not_the_conversion(tmp_path, monkeypatch, run_cli):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "out", "--quiet")
    assert code == 0, stderr
    assert (tmp_path / "out" / "config.json").is_file()


def test_opening_without_the_libraries_needs_them_only_for_an_unknown_target(cache_home):
    source = checkpoint_path("cs_s64")
    with pytest.raises(NeedsLibraries, match="Wav2Vec2BertConfig"):
        prepare(source, libraries=False)
    prepare(source).hasher.cancel()  # builds and keeps it
    prepared = prepare(source, libraries=False)
    prepared.hasher.cancel()
    assert prepared.plan.ok and prepared.timings["import"] == 0.0 and prepared.targets_built == 0


def test_a_legacy_pickle_needs_the_libraries(cache_home, tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": torch.load(checkpoint_path("cs_s64"), weights_only=True)["model"]}, legacy,
               _use_new_zipfile_serialization=False)
    with pytest.raises(NeedsLibraries, match="torch.load"):
        prepare(legacy, libraries=False)


IMPORTS_SCRIPT = """
import json, sys
from speechport.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "imported": [m for m in ("torch", "transformers") if m in sys.modules]}))
"""


def _run_isolated(args: list, cache_home: Path) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    done = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["conformer_shaw inferred", "wavlm upstream file", "head on an upstream file"])
def test_inspect_and_convert_of_a_cached_architecture_import_neither_torch_nor_transformers(case, tmp_path):
    cache_home = tmp_path / "cache-home"
    args = arguments(case, tmp_path)
    cold = _run_isolated(["inspect", *args, "--json"], cache_home)
    assert cold["code"] == 0 and set(cold["imported"]) == {"torch", "transformers"}  # the first time builds it
    warm = _run_isolated(["inspect", *args, "--json"], cache_home)
    assert warm == {"code": 0, "imported": []}
    converted = _run_isolated(["convert", *args, "--out", tmp_path / "out", "--json", "--quiet"], cache_home)
    assert converted == {"code": 0, "imported": []}
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_cache_info_and_clear(cache_home, tmp_path, run_cli):
    assert run_cli("convert", checkpoint_path("cs_s64"), "--out", tmp_path / "out", "--quiet")[0] == 0
    code, stdout, _ = run_cli("cache", "info", "--json")
    info = json.loads(stdout)
    assert code == 0 and info["targets"] == 1 and info["digests"] == 1 and info["target_bytes"] > 0
    assert info["folder"] == str(cache_home / "speechport")
    code, stdout, _ = run_cli("cache", "clear")
    assert code == 0 and stdout.startswith("removed 2 cached files (")
    assert not list((cache_home / "speechport" / "targets").iterdir())
    assert not list((cache_home / "speechport" / "digests").iterdir())
    code, stdout, _ = run_cli("cache")
    assert code == 0 and "0 target models (0 B), 0 source digests" in stdout


# -- the source digest ------------------------------------------------------------------------


def test_an_unchanged_file_is_not_hashed_twice_and_a_changed_one_is(cache_home, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(1 << 20))
    first = BackgroundHash(path)
    assert first.result() == hashlib.sha256(path.read_bytes()).hexdigest() and not first.from_cache
    second = BackgroundHash(path)
    assert second.result() == first.result() and second.from_cache
    # The same size and the same modification time, other bytes: the change time gives it away.
    stat = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"\x00" * 16)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    third = BackgroundHash(path)
    assert third.result() == hashlib.sha256(path.read_bytes()).hexdigest() != first.result() and not third.from_cache


def test_a_forged_digest_entry_is_not_trusted(cache_home, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"the real bytes")
    BackgroundHash(path).result()
    [entry] = list(digest_cache.digests_folder().glob("*.json"))
    forged = json.loads(entry.read_text())
    forged["sha256"] = "not a digest"
    entry.write_text(json.dumps(forged))
    again = BackgroundHash(path)
    assert again.result() == hashlib.sha256(b"the real bytes").hexdigest() and not again.from_cache


def test_no_cache_hashes_again(cache_home, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"bytes")
    BackgroundHash(path).result()
    again = BackgroundHash(path, use_cache=False)
    assert again.result() == hashlib.sha256(b"bytes").hexdigest() and not again.from_cache


def test_the_list_of_missing_head_classes_is_what_transformers_has():
    from speechport.core.families.s3prl_heads.recipe import BASE_FAMILIES, HEAD_CLASS_SUFFIX, MISSING_HEAD_CLASSES

    missing = {prefix + suffix for prefix, _ in BASE_FAMILIES.values() for suffix in HEAD_CLASS_SUFFIX.values()
               if not hasattr(transformers, prefix + suffix)}
    assert missing == MISSING_HEAD_CLASSES
