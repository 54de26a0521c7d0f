"""What converting one checkpoint of one source family takes: the `Recipe` interface.

A `Recipe` subclass is a family (conformer_shaw, an S3PRL head, a wav2vec 2.0 upstream...); an
instance is that family's conversion of one opened checkpoint. `detect` looks at a checkpoint and
says whether (and how well) the family recognises it, with two separate findings: the checkpoint's
*naming* (the scheme its keys follow, e.g. fairseq2 or fairseq1 names) and its *task* (what it
computes, e.g. an encoder, an utterance classifier, a frame classifier, a speaker embedder).
Everything after that is asked of the instance, which holds the checkpoint and the base model.

Each family lives in one folder of `core/families/`: its recipe (rules as data), its reference
implementation of the original model and its upstream backend.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from . import strict_json
from .checkpoint import Checkpoint, StoredTensor
from .errors import BadInput
from .files import regular_file
from .plan import ConfigConflict
from .rules import RuleSet, Stage
from .target_cache import ConfigSpec, TargetConfig

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from .audio import Clip
    from .comparison import IllConditionedInput, SideOutput


@dataclass(frozen=True)
class Detection:
    """A family's verdict on a checkpoint: it is theirs, named this way, computing this."""

    recipe: type[Recipe]
    naming: str  # the scheme the checkpoint's keys follow, e.g. "fairseq2", "fairseq1", "s3prl"
    task: str  # what the checkpoint computes, e.g. "encoder", "cls", "sd", "asv"
    score: float  # how many fingerprint checks passed; the best-scoring family wins
    evidence: str  # one sentence for the user: why this family

    @property
    def layout(self) -> str:
        """The one word reports have always shown: the naming, or the task where the naming is
        the family's only one (S3PRL heads are always S3PRL-named; their task tells them apart)."""
        return self.recipe.layout_of(self)

    def open(self, checkpoint: Checkpoint, base_model: Path | None = None) -> Recipe:
        return self.recipe(checkpoint, self, base_model)


@dataclass(frozen=True)
class Alternative:
    """Another recipe the user may choose when the detected one cannot convert a checkpoint whole."""

    recipe: str  # the recipe's name
    action: str  # what choosing it does, as a button says it
    why: str  # why the detected recipe cannot convert the checkpoint whole, in plain words


@dataclass(frozen=True)
class SourceTensor:
    """A tensor to convert and the checkpoint it comes from."""

    tensor: StoredTensor
    checkpoint: Checkpoint


@dataclass
class ConfigChoice:
    config: TargetConfig
    origin: str  # "file" or "inferred"
    path: str | None = None
    inferred: dict[str, str] = field(default_factory=dict)  # field -> "value: evidence"
    conflicts: list[ConfigConflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CardDetails:
    pipeline_tag: str
    base_model: str | None  # a Hub model id, or None: the card's metadata never names a local file
    tags: tuple[str, ...]
    description: str


class Recipe(abc.ABC):
    """One family's conversion of one checkpoint (see the module docstring)."""

    name: ClassVar[str]
    title: ClassVar[str]
    needs_base_model: ClassVar[bool] = False
    # Ways to run the original model for a comparison: Speechport's own implementation first,
    # then the upstream library where it happens to be installed.
    original_backends: ClassVar[tuple[str, ...]] = ("reference",)
    # Seconds between output frames, to align per-frame results with the waveform. Every family
    # here emits one frame per 20 ms (fbank 10 ms stacked by 2; wav2vec2's 320-sample CNN stride).
    frame_seconds: ClassVar[float] = 0.02
    # A conversion the user may choose explicitly when this recipe cannot convert the checkpoint
    # whole (the window offers it as a button; the CLI names it with --recipe).
    alternative: ClassVar[Alternative | None] = None

    def __init__(self, checkpoint: Checkpoint, detection: Detection, base_model: Path | None = None):
        self.checkpoint = checkpoint
        self.detection = detection
        self.naming = detection.naming
        self.task = detection.task
        self.base_model = base_model

    @property
    def layout(self) -> str:
        return self.detection.layout

    @classmethod
    def layout_of(cls, detection: Detection) -> str:
        return detection.naming

    # -- recognising and reading ---------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def detect(cls, checkpoint: Checkpoint) -> Detection | None:
        """Whether this family recognises the checkpoint (None if not)."""

    @classmethod
    def load_libraries(cls) -> None:
        """Import the transformers classes the family uses (seconds of imports, timed apart)."""
        return None  # a family whose classes come with `import transformers` has nothing more to do

    def check_checkpoint(self) -> None:
        """Refuse (BadInput) a checkpoint of this family that lacks what every conversion needs."""
        return None  # most families find nothing missing that the plan would not show

    @abc.abstractmethod
    def source_tensors(self) -> dict[str, SourceTensor]:
        """Every tensor to plan, named as the user knows it (the names in the file)."""

    def other_entries(self) -> dict[str, str]:
        """Non-tensor entries (training state, arguments...) and why they are left out."""
        return {}

    def inexpressible(self, config: TargetConfig | None = None) -> dict[str, str]:
        """Settings of the original (not tensors) the target class cannot reproduce, with why."""
        return {}

    # -- planning ---------------------------------------------------------------------------
    @abc.abstractmethod
    def rules(self, config: TargetConfig | None = None) -> RuleSet:
        """The renames from the file's names to the target's, as data."""

    @abc.abstractmethod
    def choose_config(self, names: dict[str, StoredTensor], *, config_path: Path | None = None,
                      labels: list[str] | None = None) -> ConfigChoice:
        """The target config, inferred or read and checked. `names` are the tensors under the
        original's own names, the user's fixes included (`core.original_weights`), so that a key
        saved under another name still says what shape the model has once it is fixed."""

    @abc.abstractmethod
    def target_class(self, config: PretrainedConfig) -> type:
        """The transformers class the checkpoint converts to (asked once per target built; afterwards
        `TargetConfig.target_class` has its name)."""

    def target_extras(self) -> dict[str, Any]:
        """What the target (its class, preprocessor config) depends on besides the config, as plain
        data: part of the target cache's key (`core.target_cache`)."""
        return {}

    def build_config(self, spec: ConfigSpec) -> TargetConfig:
        """The config `spec` describes, with the target model it makes: from the target cache, or
        built with transformers the first time (`core.target_cache`)."""
        from .target_cache import CACHE

        return CACHE.config(self, spec)

    # -- writing ----------------------------------------------------------------------------
    @abc.abstractmethod
    def preprocessor_config(self, config: PretrainedConfig) -> dict[str, Any]:
        """The content of preprocessor_config.json (asked once per target built, with the real
        transformers config; `target_extras` must name whatever else it depends on)."""

    @abc.abstractmethod
    def card_details(self, config: TargetConfig) -> CardDetails:
        """What the model card says the converted model is."""

    # -- proving ----------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def converted_architectures(cls) -> tuple[str, ...]:
        """The transformers classes a folder converted by this family may hold."""

    @abc.abstractmethod
    def original_names(self) -> dict[str, StoredTensor]:
        """The tensors the original model reads, under the original's own names, as far as the
        recipe can name them itself (independently of any plan or fix)."""

    @abc.abstractmethod
    def original_stage(self, config: TargetConfig | None = None) -> Stage:
        """The rules turning the original's own names into target names; their derived inverse
        finds the original name of a parameter that a user's fix filled."""

    @abc.abstractmethod
    def original_side(self, *, weights: dict[str, StoredTensor] | None = None, backend: str = "reference"):
        """A callable `clip -> SideOutput` running the original model on `weights` (the original's
        own names; default `original_names()`)."""

    @abc.abstractmethod
    def converted_side(self, folder: Path):
        """A callable `clip -> SideOutput` running the converted folder as users will load it."""

    def check_clip(self, clip: Clip, config: TargetConfig | None = None) -> IllConditionedInput | None:
        """Before any model runs: refuse (BadInput, naming the clip) a clip this model cannot be
        compared on, such as one too short for it; say which parts of its input are
        ill-conditioned, if any. `config` is the converted model's (or the target's) config."""
        return None

    def explain(self, original: SideOutput, converted: SideOutput) -> tuple[list[str], dict]:
        """Notes and details for people, beyond the numbers (labels, semantics that differ)."""
        return [], {}

    def base_summary(self) -> dict | None:
        """What the base model is, when the recipe converts one in the same run (for the report)."""
        return None

    def check_backend(self, backend: str) -> None:
        if backend not in self.original_backends:
            raise BadInput(
                f"the {self.name} original model can run as: {', '.join(self.original_backends)} (not {backend!r})"
            )


def hub_model_id(name: str) -> str | None:
    """`name` if it is a Hub model id ("owner/model"), else None (a local file or folder name)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name) or Path(name).expanduser().exists():
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def read_config_json(path: Path, expected_model_types: tuple[str, ...]) -> dict[str, Any]:
    """A config.json (or a folder holding one) as a dict, refusing configs of another model type."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    regular_file(path, "config file")  # never open a FIFO or a device: the read would block
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the config ({exc})") from None
    data = strict_json.loads(text, str(path), "the config")
    if not isinstance(data, dict):
        raise BadInput(f"{path}: the config must be a JSON object")
    model_type = data.get("model_type")
    if model_type not in expected_model_types:
        wanted = " or ".join(repr(t) for t in expected_model_types)
        raise BadInput(f"{path}: a config of model_type {model_type!r}; this conversion needs {wanted}")
    return data
