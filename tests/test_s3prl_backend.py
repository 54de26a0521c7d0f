"""`--original-backend s3prl`: the S3PRL checkpoint run by S3PRL's own modules, where S3PRL is installed.

CI installs S3PRL 0.4.18's code (without its torchaudio dependency, which has no CPU wheel here);
elsewhere these tests are skipped. Every head, including the two transformers cannot express,
must reproduce the genuine S3PRL outputs of the fixtures and agree with the reference side.
"""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import torch

from speechport.core.errors import BadInput
from speechport.core.families import detect
from speechport.core.proof.audio import MODEL_RATE, Clip
from speechport.core.storage.checkpoint import load_checkpoint

from conftest import S3PRL

if importlib.util.find_spec("s3prl") is None:
    assert not os.environ.get("CI"), "CI installs S3PRL's code (.ci/setup): the s3prl backend must be tested there"
    pytest.skip("S3PRL is not installed", allow_module_level=True)

TOLERANCE = 1e-4
MANIFEST = json.loads((S3PRL / "MANIFEST.json").read_text())
TASKS = {task["name"]: task for task in MANIFEST["tasks"]}
CLIPS = [clip["name"] for clip in MANIFEST["clips"]]
BASE_MODEL = (S3PRL / MANIFEST["base_model"]["dir"]).absolute()
PRIMARY = {"cls": "s3prl_logits", "sd": "s3prl_frame_logits", "asv": "s3prl_linear1_preact"}


def _clip(name: str) -> Clip:
    entry = next(clip for clip in MANIFEST["clips"] if clip["name"] == name)
    waveform = np.load(S3PRL / entry["input_16k"]).astype(np.float32)
    return Clip(S3PRL / entry["input_16k"], waveform, MODEL_RATE, 1, "first")


def _sides(task_name: str):
    checkpoint = load_checkpoint(S3PRL / TASKS[task_name]["checkpoint"])
    recipe = detect(checkpoint).open(checkpoint, BASE_MODEL)
    make = lambda backend: recipe.original_side(backend=backend)  # noqa: E731
    return make("s3prl"), make("reference")


@pytest.mark.parametrize("task_name", list(TASKS))
def test_s3prl_modules_reproduce_the_genuine_outputs_and_the_reference(task_name):
    task = TASKS[task_name]
    s3prl_side, reference_side = _sides(task_name)
    assert s3prl_side.name == "s3prl"
    compared = 0
    for clip_name in CLIPS:
        relative = f"{task_name}/reference/{clip_name}.{PRIMARY[task['kind']]}.npy"
        if relative not in task["reference_files"]:
            continue
        clip = _clip(clip_name)
        ours = s3prl_side(clip)
        genuine = torch.from_numpy(np.load(S3PRL / relative))[0]
        primary = ours.primary
        if task["kind"] == "sd":
            frames = min(primary.shape[0], genuine.shape[0])
            primary, genuine = primary[:frames], genuine[:frames]
        assert primary.shape == genuine.shape
        assert float((primary - genuine).abs().max()) <= TOLERANCE, f"{task_name}/{clip_name}"
        reference = reference_side(clip)
        assert float((ours.primary - reference.primary).abs().max()) <= 1e-5  # two independent witnesses agree
        if task["kind"] == "asv":
            embedding = torch.from_numpy(np.load(S3PRL / f"{task_name}/reference/{clip_name}.s3prl_embedding.npy"))[0]
            assert float((ours.extras["s3prl_embedding"] - embedding).abs().max()) <= TOLERANCE
        compared += 1
    assert compared == len(CLIPS)


def test_compare_with_the_s3prl_backend_passes_a_good_conversion(run_cli):
    code, stdout, stderr = run_cli(
        "compare", S3PRL / TASKS["sid"]["checkpoint"], S3PRL / "sid" / "hf_converted", "--audio",
        S3PRL / "audio" / "fox_16k.wav", "--base-model", BASE_MODEL, "--original-backend", "s3prl", "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["verdict"] == "pass" and report["clips"][0]["max_abs_diff"] < 1e-4
    assert stderr == ""  # S3PRL's own set-up chatter stays out of the terminal


def test_without_s3prl_the_backend_is_refused_with_the_reason(monkeypatch):
    for name in [name for name in sys.modules if name == "s3prl" or name.startswith("s3prl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "s3prl", None)  # import s3prl now raises ImportError
    with pytest.raises(BadInput, match="--original-backend s3prl needs S3PRL"):
        _sides("sid")
