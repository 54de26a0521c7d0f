"""The target model, known without importing torch or transformers once it has been built once.

A plan needs the target model's parameters (names, shapes, dtypes) and a conversion writes its
config.json and preprocessor_config.json. All of it follows from the config a recipe settles on
(a `ConfigSpec`: plain data), from what else the recipe says its target depends on, and from the
transformers version. The first time a combination is seen it is built with transformers, the
model on the meta device; the result is kept as one small JSON file in the user cache
(`$XDG_CACHE_HOME/speechport/targets/<key>.json`, written atomically) and read from there
afterwards, so a conversion of a known architecture imports neither torch nor transformers.

An entry is trusted only when it is exactly what its key says: it is signed with the user's own
key (`core.cache_store`), its recorded inputs equal the key's and every field has the expected
type. Anything else — a corrupt, truncated, edited, copied or stale file, a FIFO, a file too large
to be an entry — is rebuilt and replaced, never used.

Recipes see the config as a `TargetConfig`: a read-only view of the config's values, the same
object whether it came from the cache or was just built, so both paths write identical bytes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadInput
from ..library_guard import need_libraries
from ..storage import cache_store
from ..storage.cache_store import NO_CACHE_ENV, SWITCH, TARGETS, cache_root  # noqa: F401 (NO_CACHE_ENV: re-exported)
from .plan import TargetTensor

if TYPE_CHECKING:
    from .recipe import Recipe

CACHE_FORMAT = 2  # bump when an entry's layout or meaning changes: older entries are then never read
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
# Config properties that are not in `to_dict()` but that recipes read.
PROPERTIES = ("num_labels", "name_or_path")


def targets_folder() -> Path:
    return cache_root() / TARGETS


@dataclass(frozen=True)
class ConfigSpec:
    """How to build a transformers config, as plain data.

    `build`: "init" calls `config_class(**values)` (an inferred config); "from_dict" calls
    `config_class.from_dict(values)` (a config file's content); "from_pretrained" calls
    `AutoConfig.from_pretrained(folder)` where `values` is that folder's config.json content and
    `folder` its path. `then` are attributes set afterwards (architectures, dtype, labels).
    """

    config_class: str
    values: Mapping[str, Any]
    build: str = "init"
    then: Mapping[str, Any] = field(default_factory=dict)
    folder: str | None = None
    with_model: bool = True  # False: only the config (a base model's, read to derive another from)
    source: str | None = None  # the file the values were read from, to name it in a message (not part of the key)

    def to_data(self) -> dict:
        return {"config_class": self.config_class, "values": _plain(self.values), "build": self.build,
                "then": _plain(self.then), "folder": self.folder, "with_model": self.with_model}


class TargetConfig:
    """A built config's values, read like the transformers config they come from (`config.hidden_size`).

    Read-only: a recipe that wants another config makes another `ConfigSpec`.
    """

    def __init__(self, entry: dict):
        object.__setattr__(self, "_entry", entry)

    # -- what a PretrainedConfig offers that recipes and reports use ------------------------------
    def __getattr__(self, name: str) -> Any:
        entry = object.__getattribute__(self, "_entry")
        if name == "id2label" and name in entry["config"]:  # JSON keeps keys as text; transformers' are ints
            return {int(index): label for index, label in entry["config"][name].items()}
        if name in entry["config"]:
            return _copy(entry["config"][name])
        if name in entry["properties"]:
            return _copy(entry["properties"][name])
        raise AttributeError(f"{entry['config_class']} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a target config is read-only: build another ConfigSpec")

    def __repr__(self) -> str:
        return f"TargetConfig({self.config_class}, {self.to_diff_dict()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TargetConfig) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @property
    def config_class(self) -> str:
        return self._entry["config_class"]

    @property
    def target_class(self) -> str:
        """The transformers model class the checkpoint converts to."""
        return self._entry["target_class"]

    def to_dict(self) -> dict:
        return _copy(self._entry["config"])

    def to_diff_dict(self) -> dict:
        return _copy(self._entry["diff"])

    def files(self) -> dict[str, str]:
        """What transformers' `save_pretrained` writes for this config: file name -> text."""
        return dict(self._entry["files"])

    def preprocessor(self) -> dict:
        """The content of preprocessor_config.json."""
        return _copy(self._entry["preprocessor"])

    def targets(self) -> dict[str, TargetTensor]:
        """The target model's parameters, as built on the meta device."""
        return {name: TargetTensor(tuple(shape), dtype) for name, (shape, dtype) in self._entry["targets"].items()}


@dataclass
class TargetCache:
    """Where built targets are kept, and whether they are (`enabled`)."""

    folder: Path | None = None  # None: the user cache, as the environment says at the time
    builds: int = 0  # targets built with transformers by this process (a miss, a stale or a bad entry)
    import_seconds: float = 0.0  # of which importing torch and transformers

    def where(self) -> Path:
        return self.folder or targets_folder()

    def disabled(self):
        """Nothing read from or written to the user cache until the block ends (`--no-cache`)."""
        return SWITCH.disabled()

    def is_enabled(self) -> bool:
        return SWITCH.is_enabled()

    def config(self, recipe: Recipe, spec: ConfigSpec) -> TargetConfig:
        """The target of `spec` for `recipe`: from the cache when a valid entry exists, else built
        with transformers (and kept, when the cache is enabled)."""
        inputs = key_inputs(recipe, spec)
        key = _digest(inputs)
        path = self.where() / f"{key}.json"
        if self.is_enabled():
            entry = read_entry(path, inputs)
            if entry is not None:
                return TargetConfig(entry)
        entry = self._build(recipe, spec, inputs)
        if self.is_enabled():
            write_entry(path, entry)
        return TargetConfig(entry)

    def _build(self, recipe: Recipe, spec: ConfigSpec, inputs: dict) -> dict:
        need_libraries(f"building the {spec.config_class} target model")
        started = time.perf_counter()
        recipe.load_libraries()
        self.import_seconds += time.perf_counter() - started
        self.builds += 1
        return build_entry(recipe, spec, inputs)


CACHE = TargetCache()


def key_inputs(recipe: Recipe, spec: ConfigSpec) -> dict:
    """Everything an entry depends on: the spec, what else the recipe's target depends on, the
    versions of transformers and of the code that builds it."""
    return {
        "format": CACHE_FORMAT,
        "transformers": _version("transformers"),
        "speechport": _version("speechport"),
        "code": _code_digest(type(recipe)),
        "recipe": recipe.name,
        "spec": spec.to_data(),
        "extras": _plain(recipe.target_extras()),
    }


def build_entry(recipe: Recipe, spec: ConfigSpec, inputs: dict) -> dict:
    """Build the target with transformers: the config as `spec` says, the model on the meta device."""
    config = _build_config(spec)
    model_class = recipe.target_class(config) if spec.with_model else None
    payload = {
        "config_class": type(config).__name__,
        "target_class": model_class.__name__ if model_class is not None else "",
        "config": _plain(config.to_dict()),
        "diff": _plain(config.to_diff_dict()),
        "properties": {name: _plain(getattr(config, name)) for name in PROPERTIES if hasattr(config, name)},
        "files": {**_saved_files(config), **(recipe.saved_files(config) if model_class is not None else {})},
        "preprocessor": _plain(recipe.preprocessor_config(config)) if model_class is not None else {},
        "targets": _meta_targets(model_class, config, spec) if model_class is not None else {},
    }
    return {"inputs": inputs, **payload}


def read_entry(path: Path, inputs: dict) -> dict | None:
    """The entry at `path` if it is valid for `inputs`; None for a missing, corrupt, unsigned or
    stale one (`core.cache_store.read_signed` says what is read at all)."""
    entry = cache_store.read_signed(path)
    if entry is None or entry.get("inputs") != inputs or not _well_formed(entry):
        return None
    return entry


def write_entry(path: Path, entry: dict) -> None:
    """Signed and atomic (`core.cache_store.write_signed`); a cache that cannot be written only
    costs speed next time."""
    cache_store.write_signed(path, entry)


# -- building ------------------------------------------------------------------------------------

_PAYLOAD = ("config_class", "target_class", "config", "diff", "properties", "files", "preprocessor", "targets")


def _build_config(spec: ConfigSpec):
    import transformers

    try:
        if spec.build == "from_pretrained":
            config = transformers.AutoConfig.from_pretrained(spec.folder)
        else:
            config_class = getattr(transformers, spec.config_class)
            values = _copy(dict(spec.values))
            config = config_class.from_dict(values) if spec.build == "from_dict" else config_class(**values)
        for name, value in spec.then.items():
            setattr(config, name, _copy(value))
    except (TypeError, ValueError, KeyError, OSError) as exc:
        where = spec.source or spec.folder or "the inferred config"
        raise BadInput(f"{where}: not a usable {spec.config_class} ({exc})") from None
    return config


def _saved_files(config) -> dict[str, str]:
    """Exactly what `save_pretrained` writes for the config, read back."""
    with tempfile.TemporaryDirectory(prefix="speechport-config-") as folder:
        config.save_pretrained(folder)
        return {item.name: item.read_text(encoding="utf-8") for item in sorted(Path(folder).iterdir())}


def _meta_targets(model_class, config, spec: ConfigSpec) -> dict[str, list]:
    """Names, shapes and dtypes of the model's parameters and buffers, from the real class built on
    the meta device (no storage, no initialisation: milliseconds even for 600M parameters)."""
    import torch

    try:
        with torch.device("meta"), _no_init_weights():
            model = model_class(config)
    except (ValueError, TypeError, AttributeError, RuntimeError) as exc:
        where = spec.source or spec.folder or "the inferred config"
        raise BadInput(f"{where}: transformers cannot build the model from this config ({exc})") from None
    return {key: [list(value.shape), str(value.dtype).removeprefix("torch.")] for key, value in model.state_dict().items()}


def _no_init_weights():
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: initialising meta tensors is only slower
        import contextlib

        return contextlib.nullcontext()
    return no_init_weights()


# -- checking ------------------------------------------------------------------------------------


def _well_formed(entry: dict) -> bool:
    if not all(name in entry for name in _PAYLOAD):
        return False
    if not (isinstance(entry["config_class"], str) and isinstance(entry["target_class"], str)):
        return False
    if not all(isinstance(entry[name], dict) for name in _PAYLOAD[2:]):
        return False
    files, targets = entry["files"], entry["targets"]
    return (CONFIG_FILE in files and all(isinstance(text, str) for text in files.values())
            and all(_target_record(record) for record in targets.values()))


def _target_record(record) -> bool:
    return (isinstance(record, list) and len(record) == 2 and isinstance(record[0], list)
            and all(type(d) is int and d >= 0 for d in record[0]) and isinstance(record[1], str))


# -- plain data ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON's own types, as the entry stores them (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, default=_unplain, sort_keys=True))


def _unplain(value: Any):
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not plain data")


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list)) else value


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


_CODE_DIGESTS: dict[type, str] = {}


def _code_digest(recipe_class: type) -> str:
    """The source of the recipe (its class and every Speechport class it inherits from) and of this
    module: an entry built by other code is stale even at the same version."""
    if recipe_class not in _CODE_DIGESTS:
        digest = hashlib.sha256()
        files = {inspect.getsourcefile(cls) for cls in recipe_class.__mro__ if cls.__module__.startswith("speechport.")}
        files.add(__file__)
        for name in sorted(str(f) for f in files if f):
            digest.update(Path(name).read_bytes())
        _CODE_DIGESTS[recipe_class] = digest.hexdigest()
    return _CODE_DIGESTS[recipe_class]
