"""The class names of S3PRL's emotion and speech-commands heads come from S3PRL's own class lists
when the checkpoint's task says which it is and the head's class count matches; otherwise LABEL_n,
and every place that shows them says where they came from or why they are numbered."""

from __future__ import annotations

import json

import pytest
import torch

from speechport.core.families.s3prl_heads.task_labels import TASK_CLASSES
from speechport.core.proof.report import REPORT_NAME

from conftest import S3PRL

BASE_MODEL = S3PRL / "base_model"
CLIP = S3PRL / "audio" / "fox_16k.wav"
# The class names S3PRL 0.4.18's own code gave these heads, as the fixtures' generator recorded them.
MANIFEST = {task["name"]: task for task in json.loads((S3PRL / "MANIFEST.json").read_text())["tasks"]}
HEADS = {"er": "emotion", "ks": "speech_commands"}


def converted_config(folder) -> dict:
    return json.loads((folder / "config.json").read_text())


def names_of(config: dict) -> list[str]:
    return [config["id2label"][str(i)] for i in range(len(config["id2label"]))]


@pytest.mark.parametrize("task", sorted(HEADS))
def test_emotion_and_speech_commands_heads_are_named_by_s3prl(task, tmp_path, run_cli):
    checkpoint = S3PRL / task / "dev-best.ckpt"
    expected = MANIFEST[task]["labels"]
    assert MANIFEST[task]["downstream"] == HEADS[task] and list(TASK_CLASSES[HEADS[task]][0]) == expected

    code, stdout, _ = run_cli("inspect", checkpoint, "--base-model", BASE_MODEL)
    assert code == 0
    shown = ", ".join(expected[:8]) + ("..." if len(expected) > 8 else "")
    assert f"labels = {shown}: S3PRL's {HEADS[task]} task classes (" in stdout

    folder = tmp_path / task
    code, _, _ = run_cli("convert", checkpoint, "--base-model", BASE_MODEL, "--out", folder, "--verify", CLIP)
    assert code == 0
    config = converted_config(folder)
    assert names_of(config) == expected and config["label2id"] == {name: i for i, name in enumerate(expected)}
    labels = json.loads((folder / REPORT_NAME).read_text())["labels"]
    assert labels["names"] == expected and labels["origin"].startswith(f"S3PRL's {HEADS[task]} task classes")
    top5 = json.loads((folder / REPORT_NAME).read_text())["verification"]["clips"][0]["details"]["top5"]
    assert {entry["label"] for entry in top5} <= set(expected)  # the bars read the names


def head_with_classes(tmp_path, task: str, classes: int):
    """The task's fixture head, its classifier grown or cut to `classes` outputs."""
    content = torch.load(S3PRL / task / "dev-best.ckpt", weights_only=False)
    head = content["Downstream"]
    generator = torch.Generator().manual_seed(classes)
    width = head["model.post_net.linear.weight"].shape[1]
    head["model.post_net.linear.weight"] = torch.randn(classes, width, generator=generator)
    head["model.post_net.linear.bias"] = torch.randn(classes, generator=generator)
    path = tmp_path / f"{task}-{classes}.ckpt"
    torch.save(content, path)
    return path


def test_a_head_whose_class_count_differs_keeps_numbered_labels_and_says_why(tmp_path, run_cli):
    checkpoint = head_with_classes(tmp_path, "er", 5)
    why = ("the head has 5 classes, but S3PRL's emotion task has 4 (neu, hap, ang, sad), so it was trained on "
           "other classes; give a labels file to name them")
    code, stdout, _ = run_cli("inspect", checkpoint, "--base-model", BASE_MODEL)
    assert code == 0
    assert f"labels = LABEL_0, LABEL_1, LABEL_2, LABEL_3, LABEL_4: {why}" in stdout
    assert f"note:    labels: LABEL_0 to LABEL_4: {why}" in stdout

    folder = tmp_path / "out"
    code, _, _ = run_cli("convert", checkpoint, "--base-model", BASE_MODEL, "--out", folder)
    assert code == 0
    assert names_of(converted_config(folder)) == [f"LABEL_{i}" for i in range(5)]
    assert json.loads((folder / REPORT_NAME).read_text())["labels"]["origin"] == f"LABEL_n: {why}"


def test_a_task_without_a_fixed_list_keeps_numbered_labels_and_says_why(tmp_path, run_cli):
    folder = tmp_path / "sid"
    code, _, _ = run_cli("convert", S3PRL / "sid" / "dev-best.ckpt", "--base-model", BASE_MODEL, "--out", folder)
    assert code == 0
    assert names_of(converted_config(folder)) == [f"LABEL_{i}" for i in range(7)]
    assert json.loads((folder / REPORT_NAME).read_text())["labels"]["origin"] == (
        "LABEL_n: S3PRL's voxceleb1 task numbers the speakers of its training data; give a labels file to name them")


def test_a_labels_file_names_the_classes_over_s3prl_s(tmp_path, run_cli):
    labels = tmp_path / "moods.txt"
    labels.write_text("calm\njoy\nrage\ngrief\n")
    folder = tmp_path / "er"
    code, _, _ = run_cli("convert", S3PRL / "er" / "dev-best.ckpt", "--base-model", BASE_MODEL, "--out", folder,
                         "--labels", labels)
    assert code == 0
    assert names_of(converted_config(folder)) == ["calm", "joy", "rage", "grief"]
    assert json.loads((folder / REPORT_NAME).read_text())["labels"] == {
        "names": ["calm", "joy", "rage", "grief"], "origin": f"the labels file {labels}"}


def test_a_config_file_keeps_its_own_names(tmp_path, run_cli):
    config = converted_config(S3PRL / "er")
    config["id2label"] = {str(i): f"mood{i}" for i in range(4)}
    config["label2id"] = {f"mood{i}": i for i in range(4)}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    folder = tmp_path / "er"
    code, _, _ = run_cli("convert", S3PRL / "er" / "dev-best.ckpt", "--base-model", BASE_MODEL, "--out", folder,
                         "--config", path)
    assert code == 0
    assert names_of(converted_config(folder)) == [f"mood{i}" for i in range(4)]
    assert json.loads((folder / REPORT_NAME).read_text())["labels"]["origin"] == f"the config file {path}"
