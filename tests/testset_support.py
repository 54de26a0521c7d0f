"""Test sets built from the fixtures' clips, for the test-set tests (CLI, Ray, window)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import soundfile

from speechport.core.proof.testset_clip import TIMING_FIELDS

from conftest import CONFORMER_SHAW, S3PRL

FIXTURE_CLIPS = {
    "speech.wav": CONFORMER_SHAW / "audio/s_speech_16k_mono.wav",
    "noise_8k.wav": CONFORMER_SHAW / "audio/s_noise_8k_mono.wav",
    "short_0p3s.flac": CONFORMER_SHAW / "audio/s_short_0p3s_16k.flac",
    "s3prl/fox_16k.wav": S3PRL / "audio/fox_16k.wav",
    "s3prl/go_short_16k.wav": S3PRL / "audio/go_short_16k.wav",
    "s3prl/commands_44k_stereo.wav": S3PRL / "audio/commands_44k_stereo.wav",
}
UNREADABLE = {  # made by the tests: what each one is refused for, as `compare --audio` says it
    "bad/corrupt.wav": "not an audio file soundfile can read",
    "bad/silent.wav": "the clip is digital silence",
    "bad/too_short.wav": "the clip is too short",
}


def build_clip_set(root: Path) -> Path:
    """A folder of clips of varied lengths, rates and channels (a stereo one made here at 22.05 kHz),
    and three that cannot be compared: a corrupt file, a silent one and one too short."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in FIXTURE_CLIPS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / name)
    fox, rate = soundfile.read(S3PRL / "audio/fox_16k.wav", dtype="float32")
    noise = np.random.default_rng(5).normal(0, 0.05, len(fox)).astype("float32")
    (root / "made").mkdir(exist_ok=True)
    soundfile.write(root / "made/stereo_22k.wav", np.stack([fox[: 2 * rate], noise[: 2 * rate]], axis=1), 22050)
    (root / "bad").mkdir(exist_ok=True)
    (root / "bad/corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really" + bytes(range(200)))
    soundfile.write(root / "bad/silent.wav", np.zeros(16000, dtype="float32"), 16000)
    soundfile.write(root / "bad/too_short.wav", np.full(100, 0.1, dtype="float32"), 16000)
    return root


def results(folder: Path) -> dict[str, dict]:
    """results.jsonl by clip key (a clip found twice would be a fault: asserted here)."""
    lines = [json.loads(line) for line in (Path(folder) / "results.jsonl").read_text().splitlines()]
    by_key = {line["key"]: line for line in lines}
    assert len(by_key) == len(lines), "a clip has two lines"
    return by_key


def without_timing(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in TIMING_FIELDS}


def assert_same(ours, theirs, where: str = "") -> None:
    """Equal JSON values, floats to within 1e-6 relative (two runs may use other thread counts)."""
    if isinstance(ours, float) or isinstance(theirs, float):
        assert isinstance(ours, (int, float)) and isinstance(theirs, (int, float)), where
        assert math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {ours} != {theirs}"
    elif isinstance(ours, dict):
        assert isinstance(theirs, dict) and set(ours) == set(theirs), f"{where}: {sorted(ours)} != {sorted(theirs)}"
        for key in ours:
            assert_same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, list):
        assert isinstance(theirs, list) and len(ours) == len(theirs), where
        for index, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{where}[{index}]")
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def nearest_rank(values, percent):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def eer_by_bisection(scores, targets) -> float:
    """The EER where the ROC curve, drawn straight between the points of each threshold, meets
    false acceptance = false rejection: found by bisection along the curve, the rates counted with
    numpy at each threshold (another route to the number than Speechport's)."""
    scores, targets = np.asarray(scores, dtype=float), np.asarray(targets, dtype=bool)
    points = [(0.0, 0.0)] + [(float((scores >= t)[~targets].mean()), float((scores >= t)[targets].mean()))
                             for t in np.unique(scores)[::-1]]

    def at(position):
        index = min(int(position), len(points) - 2)
        share = position - index
        (f0, t0), (f1, t1) = points[index], points[index + 1]
        return f0 + share * (f1 - f0), t0 + share * (t1 - t0)

    low, high = 0.0, float(len(points) - 1)
    for _ in range(200):
        middle = (low + high) / 2
        fpr, tpr = at(middle)
        if 1 - fpr - tpr > 0:
            low = middle
        else:
            high = middle
    return at((low + high) / 2)[0]


def kill_process_on(clip_name: str, marker: Path, open_sides, *args, **kwargs):
    """`open_sides`, with an original model that kills its own worker process the first time it is
    run on the clip `clip_name` (`marker` says it has; with `marker` None it kills it every time)."""
    sides = open_sides(*args, **kwargs)
    sides.original = _Killing(sides.original, clip_name, marker)
    return sides


class _Killing:
    def __init__(self, side, clip_name, marker):
        self._side, self._clip_name, self._marker = side, clip_name, marker

    def __getattr__(self, name):
        return getattr(self._side, name)

    def __call__(self, clip, *args, **kwargs):
        if clip.path.name == self._clip_name and (self._marker is None or not self._marker.exists()):
            if self._marker is not None:
                self._marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self._side(clip, *args, **kwargs)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
