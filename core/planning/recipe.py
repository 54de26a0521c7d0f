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
import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import QUOTED_LIMIT, BadInput, quoted
from ..storage import strict_json
from ..storage.checkpoint import Checkpoint, StoredTensor
from ..storage.files import regular_file
from .plan import ConfigConflict
from .rules import RuleSet, Stage
from .target_cache import ConfigSpec, TargetConfig

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from ..proof.audio import Clip
    from ..proof.comparison import IllConditionedInput, SideOutput


# Config fields that count modules the model builds one after another, each holding weights (a list
# field counts its entries): no checkpoint fills more of them than it has tensors.
LAYER_COUNT_FIELDS = ("num_hidden_layers", "num_feat_extract_layers", "conv_dim", "num_adapter_layers")
# Config fields that size or count something, and the least whole number each may be.
WHOLE_NUMBER_FIELDS = {
    "hidden_size": 1, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 1,
    "num_feat_extract_layers": 1, "num_conv_pos_embeddings": 1, "num_conv_pos_embedding_groups": 1,
    "conv_pos_kernel_size": 1, "conv_depthwise_kernel_size": 1, "feature_projection_input_dim": 1,
    "left_max_position_embeddings": 0, "right_max_position_embeddings": 0, "num_buckets": 1,
    "max_bucket_distance": 1, "num_adapter_layers": 1, "adapter_kernel_size": 1, "adapter_stride": 1,
    "output_hidden_size": 1,
}
WHOLE_NUMBER_LIST_FIELDS = ("conv_dim", "conv_kernel", "conv_stride")
# Config fields naming an activation function (transformers' ACT2FN).
ACTIVATION_FIELDS = ("hidden_act", "feat_extract_activation")


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
    # Config fields counting modules the target model builds one after another, each with weights.
    layer_count_fields: ClassVar[tuple[str, ...]] = LAYER_COUNT_FIELDS

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

    def use_dictionary(self, path: Path) -> None:
        """Take the symbols the model writes from the dictionary file at `path` (`--dictionary`):
        only for models that write symbols (speech recognition heads)."""
        raise BadInput(f"{path}: a dictionary names the symbols a speech recognition (CTC) model writes; a "
                       f"{self.name} checkpoint writes none")

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

    def build_config(self, spec: ConfigSpec, *, tensors: int | None = None) -> TargetConfig:
        """The config `spec` describes, with the target model it makes: from the target cache, or
        built with transformers the first time (`core.target_cache`).

        Nothing is built from values that could not describe a model (`check_config_values`):
        `tensors`, how many tensors the checkpoint holds, bounds every count of layers, since a
        layer without weights cannot exist (and a billion of them would never finish building,
        even on the meta device). What transformers itself refuses is said as bad input too."""
        from .target_cache import CACHE

        where = spec.source or spec.folder or str(self.checkpoint.path)
        check_config_values({**spec.values, **spec.then}, where, tensors, self.layer_count_fields)
        try:
            return CACHE.config(self, spec)
        except Exception as exc:  # noqa: BLE001 - what is not a refusal of the config is raised as it is
            refusal = _refused_by_transformers(exc, {**spec.values, **spec.then}, where)
            if refusal is None:
                raise
            raise refusal from None

    # -- writing ----------------------------------------------------------------------------
    def saved_files(self, config: PretrainedConfig) -> dict[str, str]:
        """Files besides config.json and preprocessor_config.json that the converted folder holds,
        name -> text, as transformers' own save_pretrained writes them (a tokenizer's). Asked once per
        target built, with the real transformers config; `target_extras` must name what they depend on."""
        return {}

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

    def clip_answers(self, original: SideOutput, converted: SideOutput) -> dict:
        """What a test set's summary reads of one clip beyond the comparison's numbers, JSON-ready
        (`core.proof.testset_summary`): each model's best class (`top1`), their verification
        embeddings (`embeddings`), how many frames their speaker decisions differ on
        (`speaker_frame_disagreement`). A family may add keys of its own, and sum them up over the
        set in `testset_aggregates`."""
        return {}

    @classmethod
    def testset_aggregates(cls, clips: list[dict]) -> dict:
        """Numbers over a whole test set that only this family forms, from the records of the
        clips both models ran on (results.jsonl lines, `clip_answers` included): added to
        summary.json beside the shared ones; none by default."""
        return {}

    def base_summary(self) -> dict | None:
        """What the base model is, when the recipe converts one in the same run (for the report)."""
        return None

    def check_backend(self, backend: str) -> None:
        if backend not in self.original_backends:
            raise BadInput(
                f"the {self.name} original model can run as: {', '.join(self.original_backends)} (not {backend!r})"
            )


# -- a config's values, checked before anything is built from them ---------------------------------

def shown(value: object) -> str:
    """A value from a user's file as a one-line message quotes it: text quoted and cut
    (`errors.quoted`), anything else as Python writes it, long lists and deep nesting cut short."""
    return quoted(value) if isinstance(value, str) else reprlib.repr(value)


def check_whole_number(value: object, name: str, least: int = 1) -> int:
    """`value`, or BadInput naming `name` when it is not a whole number of at least `least`
    (a float is refused, never truncated: 2.7 layers are no number of layers)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        bound = {1: "above 0", 0: "of 0 or more"}.get(least, f"of at least {least}")
        raise BadInput(f"{name} is {shown(value)}; it must be a whole number {bound}")
    return value


def check_flag(value: object, name: str) -> bool:
    """`value` as a bool, or BadInput naming `name` when it is no flag (the text "false" is true to Python)."""
    if not (isinstance(value, bool) or (type(value) is int and value in (0, 1))):
        raise BadInput(f"{name} is {shown(value)}; it must be true or false")
    return bool(value)


def check_layer_count(count: int, name: str, tensors: int, *, listed: bool = False) -> int:
    """`count`, or BadInput when it is more layers than the checkpoint has tensors: a layer without
    weights cannot exist, and building a billion of them would never finish."""
    if count > tensors:
        said = f"lists {count} layers" if listed else f"is {count}"
        raise BadInput(f"{name} {said}, but the checkpoint holds only {tensors} tensors: a layer without weights "
                       "cannot exist")
    return count


def check_config_values(values: Mapping[str, Any], where: str, tensors: int | None = None,
                        layer_fields: tuple[str, ...] = LAYER_COUNT_FIELDS) -> None:
    """Refuse (BadInput, one line naming the field and its value) a config no model can be built
    from, before anything is built: a size or count that is not a whole number above 0 (or a list
    of them), a number that is NaN or infinite, a hidden size the attention heads do not divide,
    or (given the checkpoint's number of `tensors`) more layers than it has tensors. Types
    transformers declares for its fields are checked by transformers when the config is built."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{where}: {name} is {value}; a config holds finite numbers only")
        if name in WHOLE_NUMBER_FIELDS:
            check_whole_number(value, f"{where}: {name}", WHOLE_NUMBER_FIELDS[name])
        elif name in WHOLE_NUMBER_LIST_FIELDS:
            if not isinstance(value, (list, tuple)) or not value:
                raise BadInput(f"{where}: {name} is {shown(value)}; it must be a list of whole numbers above 0")
            for item in value:
                check_whole_number(item, f"{where}: {name} holds a value that", 1)
    hidden, heads = values.get("hidden_size"), values.get("num_attention_heads")
    if hidden is not None and heads is not None and hidden % heads:
        raise BadInput(f"{where}: hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    if tensors is None:
        return
    for name in layer_fields:
        if name not in values or (name == "num_adapter_layers" and not values.get("add_adapter")):
            continue  # adapter layers are built only with an adapter
        value = values[name]
        listed = isinstance(value, (list, tuple))
        check_layer_count(len(value) if listed else value, f"{where}: {name}", tensors, listed=listed)


def _refused_by_transformers(exc: Exception, values: Mapping[str, Any], where: str) -> BadInput | None:
    """The refusal of a config that transformers could not build, in one line, or None when the
    failure is not the config's (a bug, raised as it is): a value of a type the config class does
    not declare for it, or an activation transformers does not know."""
    from huggingface_hub.errors import StrictDataclassError

    if isinstance(exc, StrictDataclassError):
        cause = exc.__cause__ or exc  # "Field 'hidden_size' expected int, got str (value: '48')"
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        cut = text if len(text) <= QUOTED_LIMIT else text[: QUOTED_LIMIT - 1] + "…"
        return BadInput(f"{where}: {cut}")
    if isinstance(exc, KeyError):
        from transformers.activations import ACT2FN

        for name in ACTIVATION_FIELDS:
            if name in values and not (isinstance(values[name], str) and values[name] in ACT2FN):
                return BadInput(f"{where}: {name} is {shown(values[name])}, no activation transformers knows "
                                f"({', '.join(sorted(ACT2FN))})")
    return None


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
