"""conformer_shaw run by the genuine fairseq2 0.2.1 (and seamless_communication when installed) in the
witness's own interpreter, for `--original-backend fairseq2`.

fairseq2 0.2 needs torch 2.2 and cannot be imported beside Speechport's torch: the witness
(`speechport witness install fairseq2`) runs it, reading the checkpoint file itself with torch.load,
so neither Speechport's reader nor its renaming rules stand between the file and the original model.
It returns every stage the reference gives, so the first divergent layer is found the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ...proof.audio import Clip
from ...proof.comparison import SideOutput
from ...witnesses import environments
from ...witnesses.channel import LOAD_TIMEOUT_S, RUN_TIMEOUT_S, WitnessProcess


class Fairseq2WitnessSide:
    """The original conformer_shaw, as transformers' conversion script proves its port: the genuine
    WaveformToFbankConverter, Collater(pad_value=1), encoder_frontend and encoder, in the witness."""

    cancellable = True  # run_side hands it the progress handle: Cancel stops the witness at once

    def __init__(self, checkpoint: str | Path, *, builder: str = "auto", progress=None):
        witness = environments.required("fairseq2")
        self.process = WitnessProcess(witness, progress=progress)
        try:
            self.loaded = self.process.ask({"op": "load", "checkpoint": str(Path(checkpoint).absolute()),
                                            "builder": builder}, LOAD_TIMEOUT_S)
        except BaseException:
            self.process.kill()
            raise
        versions = self.process.hello.get("versions") or {}
        built = "seamless_communication" if self.loaded.get("builder") == "seamless_communication" else \
            "fairseq2 building blocks"
        self.name = f"fairseq2 {versions.get('fairseq2', '?')} (torch {versions.get('torch', '?')}, built with {built})"
        self.steps = 1

    def run_batch(self, waveforms: list[torch.Tensor], progress=None) -> tuple[dict[str, torch.Tensor], dict]:
        """The witness's tensors for clips collated into one padded batch (as the fixtures' batch cases
        were made), with their valid lengths."""
        from safetensors.torch import load_file, save_file

        folder = self.process.folder
        inputs, outputs = folder / "waveforms.safetensors", folder / "stages.safetensors"
        save_file({f"clip_{i}": w.to(torch.float32).contiguous() for i, w in enumerate(waveforms)}, str(inputs))
        self.process.progress = progress if progress is not None else self.process.progress
        answer = self.process.ask({"op": "run", "waveforms": str(inputs), "count": len(waveforms), "out": str(outputs)},
                                  RUN_TIMEOUT_S)
        tensors = load_file(str(outputs))
        inputs.unlink(missing_ok=True)
        outputs.unlink(missing_ok=True)
        return tensors, answer

    def __call__(self, clip: Clip, progress=None) -> SideOutput:
        started = time.perf_counter()
        tensors, answer = self.run_batch([torch.from_numpy(clip.waveform)], progress)
        valid = int(answer["seq_lens"][0])
        stages = [(name, tensors[name][0, :valid]) for name in answer["stages"] if name != "output"]
        if progress is not None:
            progress.advance(items=1)
        return SideOutput(tensors["output"][0, :valid], stages, time.perf_counter() - started,
                          extras={"builder": self.loaded.get("builder")})

    def close(self) -> None:
        self.process.close()

    def __del__(self):
        process = getattr(self, "process", None)
        if process is not None:
            process.kill()

