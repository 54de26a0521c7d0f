"""How long each side of `speechport compare` takes on a 10 s clip with a full-size model.

The original side is Speechport's reference implementation of conformer_shaw (fairseq2 semantics)
running on the memory-mapped checkpoint; the converted side is transformers' Wav2Vec2BertModel
loaded from the converted folder with its own feature extractor. Target: the reference within
1.3x the transformers side. Uses the synthetic 600M checkpoint of bench_convert.py (built if
missing) and converts it once.

With the fairseq2 witness installed (`speechport witness install fairseq2`), the genuine fairseq2 runs
the same clip in its own interpreter too: its start-up (the interpreter, torch 2.2 and fairseq2
imported), the checkpoint loaded into the model it builds, and each clip, the transfer of the
waveform and of every stage's outputs included, are reported apart and together.

    python benchmarks/bench_convert.py          # builds benchmarks/.data/conformer_shaw_600m_fs2.pt
    python benchmarks/bench_compare.py [--runs 5] [--threads 2] [--no-witness]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
CHECKPOINT = DATA / "conformer_shaw_600m_fs2.pt"
CONVERTED = DATA / "conformer_shaw_600m_hf"
SPEECH = HERE.parent / "resources/demo/speech_16k.wav"
TARGET_RATIO = 1.3


def ensure_inputs() -> None:
    if not CHECKPOINT.exists():
        print("building the synthetic checkpoint with bench_convert.py's builder ...")
        subprocess.run([sys.executable, str(HERE / "bench_convert.py"), "--build-only"], check=True)
    if not (CONVERTED / "model.safetensors").exists():
        subprocess.run([sys.executable, "-m", "speechport", "convert", str(CHECKPOINT), "--out", str(CONVERTED),
                        "--force", "--quiet"], check=True)


def ten_second_clip(folder: Path) -> Path:
    """Speech repeated to 10.0 s (16 kHz), with a little noise so no two seconds are identical."""
    speech, rate = soundfile.read(SPEECH, dtype="float32")
    samples = np.resize(speech, 10 * rate) + np.random.default_rng(0).normal(0, 0.01, 10 * rate).astype("float32")
    path = folder / "ten_seconds.wav"
    soundfile.write(path, samples, rate)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-witness", action="store_true", help="skip the genuine fairseq2 witness")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ensure_inputs()

    from speechport.core.conversion import open_sides
    from speechport.core.proof.audio import load_clip
    from speechport.core.proof.comparison import compare_outputs

    with tempfile.TemporaryDirectory() as scratch:
        clip = load_clip(ten_second_clip(Path(scratch)))
        started = time.perf_counter()
        sides = open_sides(CHECKPOINT, CONVERTED)
        print(f"loaded both sides in {time.perf_counter() - started:.1f} s; clip {clip.seconds:.1f} s; "
              f"{args.threads} threads; {args.runs} runs after one warm-up, alternating")
        sides.original(clip), sides.converted(clip)  # warm-up: first calls pay one-off setup
        original_times, converted_times = [], []
        for _ in range(args.runs):
            original = sides.original(clip)
            converted = sides.converted(clip)
            original_times.append(original.seconds)
            converted_times.append(converted.seconds)
        result = compare_outputs(str(clip.path), original, converted)

    ours, theirs = statistics.median(original_times), statistics.median(converted_times)
    ratio = ours / theirs
    print(f"{'side':<34}{'median s':>10}{'min s':>10}")
    print(f"{'original (Speechport reference)':<34}{ours:>10.2f}{min(original_times):>10.2f}")
    print(f"{'converted (transformers)':<34}{theirs:>10.2f}{min(converted_times):>10.2f}")
    print(f"reference / transformers: {ratio:.2f}x (target <= {TARGET_RATIO}x)  {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}")
    print(f"agreement on {result.frames} frames: max |diff| {result.max_abs_diff:.2e}, verdict {result.verdict}")
    if not args.no_witness:
        bench_witness(args, original_times, converted_times)


def bench_witness(args, original_times, converted_times) -> None:
    from speechport.core.proof.audio import load_clip
    from speechport.core.witnesses import environments
    from speechport.core.witnesses.channel import LOAD_TIMEOUT_S, WitnessProcess

    witness = environments.find("fairseq2")
    if witness is None:
        print("the fairseq2 witness is not installed: speechport witness install fairseq2 (skipped)")
        return
    from speechport.core.families.conformer_shaw.fairseq2_backend import Fairseq2WitnessSide

    started = time.perf_counter()
    process = WitnessProcess(witness, threads=args.threads)
    start_up = time.perf_counter() - started
    started = time.perf_counter()
    process.ask({"op": "load", "checkpoint": str(CHECKPOINT)}, LOAD_TIMEOUT_S)
    load = time.perf_counter() - started
    process.close()
    side = Fairseq2WitnessSide(CHECKPOINT)
    with tempfile.TemporaryDirectory() as scratch:
        clip = load_clip(ten_second_clip(Path(scratch)))
        side(clip)  # warm-up
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            side(clip)
            times.append(time.perf_counter() - started)
    side.close()
    witness_clip = statistics.median(times)
    print(f"{'genuine fairseq2 (witness)':<34}{witness_clip:>10.2f}{min(times):>10.2f}   per clip, transfers included")
    print(f"  witness start-up (interpreter, torch 2.2, fairseq2): {start_up:.2f} s; checkpoint loaded into its "
          f"model: {load:.2f} s; once per comparison, not per clip")
    print(f"  first clip of a comparison through the witness: {start_up + load + witness_clip:.2f} s, against "
          f"{statistics.median(original_times):.2f} s for the reference")


if __name__ == "__main__":
    main()
