"""A converted folder is read as untrusted input: whatever its config.json or report says, `compare`
refuses a folder that is not this checkpoint's conversion in one line (exit 2), never with a crash."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import CONFORMER_SHAW, FIXTURES
from support import checkpoint_path

UPSTREAM = FIXTURES / "s3prl_upstreams" / "upstreams" / "wavlm_base_plus" / "wavlm_base_plus.pt"
CLIP = FIXTURES / "s3prl_upstreams" / "audio" / "speechlike_0p6s.wav"
SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from speechport.cli import main

    root = tmp_path_factory.mktemp("converted")
    folders = {"upstream": root / "wavlm", "conformer_shaw": root / "cs_s64"}
    assert main(["convert", str(UPSTREAM), "--out", str(folders["upstream"]), "--quiet"]) == 0
    assert main(["convert", str(checkpoint_path("cs_s64")), "--out", str(folders["conformer_shaw"]), "--quiet"]) == 0
    return folders


def tampered(folder, tmp_path, edit):
    copy = tmp_path / "tampered"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(edit(config)))
    return copy


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda c: {**c, "architectures": ["Foo", "WavLMModel"]}, "its config names 'Foo' as its model class, which no wavlm conversion makes (one of WavLMModel)"),
    (lambda c: {**c, "architectures": [["WavLMModel"]]}, "its architectures are not a list of class names"),
    (lambda c: {**c, "architectures": "WavLMModel"}, "its architectures are not a list of class names"),
    (lambda c: [c], "not a transformers config (a JSON object)"),
], ids=["a foreign class first", "a list inside the list", "a name, not a list", "a list, not an object"])
def test_a_folder_whose_config_names_no_class_of_this_conversion_is_refused(converted, tmp_path, run_cli, edit,
                                                                            expected):
    folder = tampered(converted["upstream"], tmp_path, edit)
    code, stdout, stderr = run_cli("compare", UPSTREAM, folder, "--audio", CLIP, "--json")
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and expected in stderr and "Traceback" not in stderr
    assert json.loads(stdout)["error"]["kind"] == "bad_input"


def test_a_report_nested_past_any_need_is_ignored_not_a_crash(converted, tmp_path, run_cli):
    from speechport.core.proof.report import REPORT_NAME

    folder = tmp_path / "deep-report"
    shutil.copytree(converted["conformer_shaw"], folder)
    (folder / REPORT_NAME).write_text('{"overrides": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, stdout, stderr = run_cli("compare", checkpoint_path("cs_s64"), folder, "--audio", SPEECH, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["fixes_used"] == []
