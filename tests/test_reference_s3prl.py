"""The S3PRL reference (core/reference/s3prl.py) against genuine S3PRL 0.4.18 outputs.

Fixtures: tests/fixtures/s3prl (see its MANIFEST.json). Every task checkpoint is run on each clip
alone and on the task's padded batch, and every stored S3PRL output is compared.
"""

import json
from functools import cache

import numpy as np
import pytest
import torch

from speechport.core.families.s3prl_heads.reference import (
    S3prlFeaturizer,
    build_s3prl_original,
    load_s3prl_checkpoint,
    s3prl_feature_lengths,
    upstream_hidden_states,
)

from conftest import S3PRL

TOLERANCE = 1e-4
MANIFEST = json.loads((S3PRL / "MANIFEST.json").read_text())
TASKS = {task["name"]: task for task in MANIFEST["tasks"]}
CLIPS = {clip["name"]: clip for clip in MANIFEST["clips"]}
BASE_MODEL = S3PRL / MANIFEST["base_model"]["dir"]

# Reference file kind -> how to read the same quantity from the model output, per task kind.
OUTPUT_KINDS = {
    "cls": {"s3prl_logits": lambda out: out},
    "sd": {"s3prl_frame_logits": lambda out: out},
    "asv": {
        "s3prl_linear1_preact": lambda out: out.linear1_pre,
        "s3prl_embedding": lambda out: out.embedding,
        "s3prl_pooled_stats": lambda out: out.pooled_stats,
        "s3prl_xvector_train": lambda out: out.train_vector,
        "s3prl_amsoftmax_cos_logits": lambda out: out.amsoftmax_cos_logits,
    },
}
# The output every case must have a reference for, so no case passes by comparing nothing.
REQUIRED_KIND = {"cls": "s3prl_logits", "sd": "s3prl_frame_logits", "asv": "s3prl_linear1_preact"}


def _stem(clip_names: tuple[str, ...], is_batch: bool) -> str:
    return "batch__" + "+".join(clip_names) if is_batch else clip_names[0]


def _cases():
    for task in TASKS.values():
        for clip in CLIPS:
            yield pytest.param(task["name"], (clip,), False, id=f"{task['name']}-{clip}")
        batch = tuple(task["batch"])
        yield pytest.param(task["name"], batch, True, id=f"{task['name']}-{_stem(batch, True)}")


@cache
def _waveform(clip: str) -> np.ndarray:
    return np.load(S3PRL / CLIPS[clip]["input_16k"])


@cache
def _upstream(clip_names: tuple[str, ...]):
    return upstream_hidden_states(BASE_MODEL, [_waveform(c) for c in clip_names])


@cache
def _original(task_name: str):
    checkpoint = load_s3prl_checkpoint(S3PRL / TASKS[task_name]["checkpoint"])
    return checkpoint, build_s3prl_original(checkpoint, TASKS[task_name]["kind"])


def _reference(task_name: str, stem: str, kind: str) -> torch.Tensor | None:
    relative = f"{task_name}/reference/{stem}.{kind}.npy"
    if relative not in TASKS[task_name]["reference_files"]:
        return None
    return torch.from_numpy(np.load(S3PRL / relative))


def _max_abs_diff(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.float() - reference.float()).abs().max())


@pytest.mark.parametrize("task_name, clip_names, is_batch", list(_cases()))
def test_matches_genuine_s3prl(task_name, clip_names, is_batch):
    task = TASKS[task_name]
    stem = _stem(clip_names, is_batch)
    _, original = _original(task_name)
    hidden_states, lengths = _upstream(clip_names)
    assert len(hidden_states) == MANIFEST["base_model"]["config"]["num_hidden_layers"] + 1

    reference_lengths = _reference(task_name, stem, "feature_lengths")
    if reference_lengths is not None:
        assert lengths.tolist() == reference_lengths.tolist(), f"{stem}: S3PRL feature lengths"

    features = original.featurizer(hidden_states)
    reference_features = _reference(task_name, stem, "s3prl_featurizer_out")
    if reference_features is not None:
        ours = features[0, : lengths[0]]
        assert ours.shape == reference_features.shape, f"{stem}: featurizer output shape"
        diff = _max_abs_diff(ours, reference_features)
        assert diff <= TOLERANCE, f"{task_name}/{stem} featurizer: max|diff| {diff:.3g}"

    output = original.head(features, lengths)
    kinds = OUTPUT_KINDS[task["kind"]]
    compared = []
    for kind, read in kinds.items():
        reference = _reference(task_name, stem, kind)
        if reference is None:
            continue
        ours = read(output)
        if kind == "s3prl_frame_logits":
            assert ours.shape == reference.shape, f"{task_name}/{stem}: frame logits shape {ours.shape}"
            frames = min(ours.shape[1], reference.shape[1])
            ours, reference = ours[:, :frames], reference[:, :frames]
        assert ours.shape == reference.shape, f"{task_name}/{stem} {kind}: shape {ours.shape}"
        diff = _max_abs_diff(ours, reference)
        assert diff <= TOLERANCE, f"{task_name}/{stem} {kind}: max|diff| {diff:.3g} > {TOLERANCE}"
        compared.append(kind)
    required = REQUIRED_KIND[task["kind"]]
    assert required in compared, f"{task_name}/{stem}: no reference for {required}"


@pytest.mark.parametrize("task_name", list(TASKS))
def test_checkpoint_reading(task_name):
    task = TASKS[task_name]
    checkpoint, original = _original(task_name)
    assert build_s3prl_original(checkpoint).task_kind == task["kind"]  # from Args.downstream
    args = checkpoint["Args"]
    assert original.featurizer.normalize == task["args"]["upstream_feature_normalize"]
    assert original.featurizer.layer_selection == task["args"]["upstream_layer_selection"]
    if task["kind"] == "sd":
        assert original.head.uses_lstm == (task["config"]["downstream_expert"]["modelrc"]["rnn_layers"] > 0)
    assert args.downstream == task["downstream"]


def test_feature_lengths_use_python_rounding_and_cap():
    # 8160/320 = 25.5 and 8480/320 = 26.5 both round to 26 (half to even); 9600/320 = 30 is capped
    # at the 27 frames the upstream produced.
    assert s3prl_feature_lengths([8160, 8480, 9600], 27) == [26, 26, 27]
    with pytest.raises(ValueError):
        s3prl_feature_lengths([9600], 20)


def test_layer_selection_ignores_normalize_flag():
    hidden_states = [torch.randn(1, 4, 8) * (k + 1) + k for k in range(3)]
    args = type("Args", (), {"upstream_layer_selection": -1, "upstream_feature_normalize": True})()
    selected = S3prlFeaturizer({}, args)(hidden_states)
    assert torch.equal(selected, hidden_states[-1])
    with pytest.raises(ValueError):
        S3prlFeaturizer({"weights": torch.zeros(3)}, args)
