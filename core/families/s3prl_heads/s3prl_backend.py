"""S3PRL heads run by S3PRL's own modules, where S3PRL is installed (`--original-backend s3prl`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import torch

from ...errors import BadInput
from ...proof.audio import Clip
from ...proof.comparison import SideOutput


class S3prlHeadSide:
    """An S3PRL downstream checkpoint run by S3PRL's own modules: `Featurizer` and the task's model
    classes, fed by the base model's hidden states and glued together as each task's expert.py
    does at inference. Only the modules are used: the experts themselves need their datasets."""

    name = "s3prl"

    def __init__(self, content: dict, layout: str, upstream_states):
        try:
            from s3prl.downstream import model as downstream_models
            from s3prl.downstream.diarization.model import Model as DiarizationModel
            from s3prl.downstream.sv_voxceleb1.model import Model as SpeakerModel
            from s3prl.upstream.interfaces import Featurizer
        except ImportError as exc:
            raise BadInput(
                f"--original-backend s3prl needs S3PRL ({exc}); the default reference backend does not"
            ) from None
        from torch import nn

        from .layout import read_modelrc
        from .reference import DOWNSAMPLE_RATE

        args = vars(content.get("Args") or argparse.Namespace())
        modelrc = read_modelrc(content)
        state = {k: v for k, v in content["Downstream"].items()
                 if k != "best_score" and not k.startswith("objective.")}  # training state, not the model
        upstream = _HiddenStatesUpstream(upstream_states, DOWNSAMPLE_RATE)
        with contextlib.redirect_stderr(io.StringIO()):  # S3PRL narrates its set-up on stderr
            self.featurizer = Featurizer(
                upstream, feature_selection=args.get("upstream_feature_selection") or "hidden_states",
                upstream_device="cpu", layer_selection=args.get("upstream_layer_selection"),
                normalize=bool(args.get("upstream_feature_normalize")),
            )
        weights = (content.get("Featurizer") or {}).get("weights")
        if weights is not None:
            self.featurizer.load_state_dict({"weights": weights})
        self.upstream = upstream
        self.layout = layout
        upstream_dim = self.featurizer.output_dim
        head = nn.Module()
        try:
            if layout == "cls":
                select = modelrc["select"]
                head.projector = nn.Linear(upstream_dim, modelrc["projector_dim"])
                head.model = getattr(downstream_models, select)(
                    input_dim=modelrc["projector_dim"], output_dim=state["model.post_net.linear.weight"].shape[0],
                    **modelrc.get(select, {}),
                )
            elif layout == "sd":
                num_speakers = next(v for k, v in state.items() if k.endswith("linear.weight")).shape[0]
                head.model = DiarizationModel(input_dim=upstream_dim, output_class_num=num_speakers, **modelrc)
            elif layout == "asv":
                module = modelrc["module"]
                hparams = modelrc["module_config"][module]
                head.connector = nn.Linear(upstream_dim, modelrc["input_dim"])
                head.model = SpeakerModel(
                    input_dim=modelrc["input_dim"], agg_dim=hparams.get("agg_dim", modelrc["input_dim"]),
                    agg_module_name=modelrc["agg_module"], module_name=module, hparams=hparams,
                    utterance_module_name=modelrc["utter_module"],
                )
                self.tdnn_shrink = 14 if module == "XVector" else 0  # as sv_voxceleb1/expert.py masks
            else:
                raise KeyError(f"task {layout!r}")
            head.load_state_dict(state)
        except (KeyError, AttributeError, TypeError, RuntimeError, StopIteration) as exc:
            raise BadInput(f"S3PRL cannot build this head from the checkpoint: {str(exc).splitlines()[0][:200]}") from None
        self.head = head.eval()
        self.featurizer.eval()

    def __call__(self, clip: Clip) -> SideOutput:
        from torch.nn.utils.rnn import pad_sequence

        started = time.perf_counter()
        wavs = [torch.from_numpy(clip.waveform)]
        extras: dict = {}
        with torch.inference_mode():
            features = self.featurizer(wavs, self.upstream(wavs))
            frames = len(features[0])
            padded = pad_sequence(features, batch_first=True)
            if self.layout == "cls":
                lengths = torch.IntTensor([len(f) for f in features])
                primary = self.head.model(self.head.projector(padded), lengths)[0][0]
            elif self.layout == "sd":
                primary = self.head.model(padded)[0, :frames]
            else:
                mask = pad_sequence([torch.ones(len(f) - self.tdnn_shrink) for f in features], batch_first=True)
                mask = (1.0 - mask) * -100000.0
                captured = []
                linear1 = self.head.model.utterancelevel_feature_extractor.linear1
                hook = linear1.register_forward_hook(lambda _m, _i, out: captured.append(out))
                try:
                    embedding = self.head.model.inference(self.head.connector(padded), mask)
                finally:
                    hook.remove()
                primary = captured[0][0]
                extras["s3prl_embedding"] = torch.nn.functional.normalize(embedding, dim=-1)[0]
        stages = [("featurizer (weighted hidden states)", features[0][:frames]), ("head", primary)]
        return SideOutput(primary, stages, time.perf_counter() - started, extras)


class _HiddenStatesUpstream(torch.nn.Module):
    """The base model as S3PRL's Featurizer expects an upstream: wavs in, every hidden state out."""

    def __init__(self, upstream_states, downsample_rate: int):
        super().__init__()
        self.upstream_states = upstream_states  # waveforms -> (hidden states, frame counts)
        self.downsample_rate = downsample_rate

    def get_downsample_rates(self, key: str) -> int:
        return self.downsample_rate

    def forward(self, wavs):
        hidden, _ = self.upstream_states(wavs)
        return {"hidden_states": hidden}
