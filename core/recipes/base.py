"""What every recipe provides. A recipe is stateless: everything it decides is derived from the
checkpoint, the user's config (if any) and, for some families, a base model folder."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..checkpoint import Checkpoint, StoredTensor
from ..errors import BadInput
from ..files import regular_file
from ..plan import ConfigConflict, TargetTensor
from ..rules import RuleSet, Stage

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from ..audio import Clip
    from ..comparison import IllConditionedInput, SideOutput


@dataclass(frozen=True)
class Detection:
    recipe: Recipe
    layout: str  # the naming scheme found, e.g. "fairseq2" or "fairseq1"
    score: float  # how many fingerprint checks passed; the best-scoring recipe wins
    evidence: str  # one sentence for the user: why this recipe


@dataclass(frozen=True)
class SourceTensor:
    """A tensor to convert and the checkpoint it comes from."""

    tensor: StoredTensor
    checkpoint: Checkpoint


@dataclass
class ConfigChoice:
    config: PretrainedConfig
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


class Recipe:
    name: str = ""
    title: str = ""
    needs_base_model: bool = False
    # Ways to run the original model for a comparison: Speechport's own implementation first,
    # then the upstream library where it happens to be installed.
    original_backends: tuple[str, ...] = ("reference",)
    # Seconds between output frames, to align per-frame results with the waveform. Both families
    # here emit one frame per 20 ms (fbank 10 ms stacked by 2; wav2vec2's 320-sample CNN stride).
    frame_seconds: float = 0.02

    def detect(self, checkpoint: Checkpoint) -> Detection | None:
        raise NotImplementedError

    def source_tensors(self, checkpoint: Checkpoint, layout: str, base_model: Path | None = None) -> dict[str, SourceTensor]:
        """Every tensor to plan, named as the user knows it (the names in the file)."""
        raise NotImplementedError

    def check_checkpoint(self, checkpoint: Checkpoint, layout: str) -> None:
        """Refuse (BadInput) a checkpoint of this family that lacks what every conversion needs."""

    def other_entries(self, checkpoint: Checkpoint, layout: str) -> dict[str, str]:
        """Non-tensor entries (training state, arguments...) and why they are left out."""
        return {}

    def inexpressible(self, checkpoint: Checkpoint, layout: str, config: PretrainedConfig | None = None) -> dict[str, str]:
        """Settings of the original (not tensors) the target class cannot reproduce, with why."""
        return {}

    def rules(self, layout: str, config: PretrainedConfig | None = None) -> RuleSet:
        raise NotImplementedError

    def choose_config(
        self,
        checkpoint: Checkpoint,
        layout: str,
        names: dict[str, StoredTensor],
        *,
        config_path: Path | None = None,
        base_model: Path | None = None,
        labels: list[str] | None = None,
    ) -> ConfigChoice:
        """The target config, inferred or read and checked. `names` are the tensors under the
        original's own names, the user's fixes included (`core.original_weights`), so that a key
        saved under another name still says what shape the model has once it is fixed."""
        raise NotImplementedError

    def load_libraries(self) -> None:
        """Import the transformers classes this recipe uses (seconds of imports, timed apart)."""

    def target_class(self, config: PretrainedConfig) -> type:
        raise NotImplementedError

    def target_tensors(self, config: PretrainedConfig) -> dict[str, TargetTensor]:
        """The target model's parameters, from the real class built on the meta device.

        Meta tensors have shapes and dtypes but no storage, and weight initialisation is skipped:
        only the names and shapes are wanted, so even a 600M model costs a few milliseconds.
        """
        model_class = self.target_class(config)
        with torch.device("meta"), _no_init_weights():
            model = model_class(config)
        return {
            key: TargetTensor(tuple(value.shape), str(value.dtype).removeprefix("torch."))
            for key, value in model.state_dict().items()
        }

    def preprocessor_config(self, config: PretrainedConfig, base_model: Path | None = None) -> dict[str, Any]:
        """The content of preprocessor_config.json."""
        raise NotImplementedError

    def card_details(self, config: PretrainedConfig, checkpoint: Checkpoint, base_model: Path | None) -> CardDetails:
        raise NotImplementedError

    # -- verification ---------------------------------------------------------------------
    def converted_architectures(self) -> tuple[str, ...]:
        """The transformers classes a folder converted by this recipe may hold."""
        raise NotImplementedError

    def original_names(self, checkpoint: Checkpoint, layout: str, base_model: Path | None = None) -> dict[str, StoredTensor]:
        """The tensors the original model reads, under the original's own names, as far as the
        recipe can name them itself (independently of any plan or fix)."""
        raise NotImplementedError

    def original_stage(self, layout: str, config: PretrainedConfig | None = None) -> Stage:
        """The rules turning the original's own names into target names; their derived inverse
        finds the original name of a parameter that a user's fix filled."""
        raise NotImplementedError

    def original_side(self, checkpoint: Checkpoint, layout: str, *, base_model: Path | None = None,
                      backend: str = "reference", weights: dict[str, StoredTensor] | None = None):
        """A callable `clip -> SideOutput` running the original model on `weights` (the original's
        own names; default `original_names`)."""
        raise NotImplementedError

    def converted_side(self, folder: Path, *, base_model: Path | None = None):
        """A callable `clip -> SideOutput` running the converted folder as users will load it."""
        raise NotImplementedError

    def check_clip(self, clip: Clip, config: PretrainedConfig | None = None) -> IllConditionedInput | None:
        """Before any model runs: refuse (BadInput, naming the clip) a clip this model cannot be
        compared on, such as one too short for it; say which parts of its input are
        ill-conditioned, if any. `config` is the converted model's (or the target's) config."""
        return None

    def explain(self, original: SideOutput, converted: SideOutput) -> tuple[list[str], dict]:
        """Notes and details for people, beyond the numbers (labels, semantics that differ)."""
        return [], {}

    def check_backend(self, backend: str) -> None:
        if backend not in self.original_backends:
            raise BadInput(
                f"the {self.name} original model can run as: {', '.join(self.original_backends)} (not {backend!r})"
            )


def _no_init_weights():
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: initialising meta tensors is only slower
        import contextlib

        return contextlib.nullcontext()
    return no_init_weights()


def read_config_json(path: Path, expected_model_types: tuple[str, ...]) -> dict[str, Any]:
    """A config.json (or a folder holding one) as a dict, refusing configs of another model type."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    regular_file(path, "config file")  # never open a FIFO or a device: the read would block
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the config ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: the config is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: the config must be a JSON object")
    model_type = data.get("model_type")
    if model_type not in expected_model_types:
        wanted = " or ".join(repr(t) for t in expected_model_types)
        raise BadInput(f"{path}: a config of model_type {model_type!r}; this conversion needs {wanted}")
    return data
