"""conformer_shaw run by fairseq2 + seamless_communication themselves, where they are installed.

fairseq2 0.2 / seamless_communication do not install beside a modern torch, so the default original
side is Speechport's reference implementation; this is an extra witness (`--original-backend fairseq2`).
"""

from __future__ import annotations

import time

import torch

from ...errors import BadInput
from ...proof.audio import MODEL_RATE, Clip
from ...proof.comparison import SideOutput


class Fairseq2ConformerShawSide:
    """conformer_shaw through fairseq2 + seamless_communication, the way transformers' script runs it."""

    name = "fairseq2"

    def __init__(self, state: dict[str, torch.Tensor]):
        try:
            from fairseq2.data import Collater
            from fairseq2.data.audio import WaveformToFbankConverter
            from fairseq2.nn.padding import get_seqs_and_padding_mask
            from seamless_communication.models.conformer_shaw.builder import (
                conformer_shaw_archs,
                create_conformer_shaw_model,
            )
        except ImportError as exc:
            raise BadInput(
                f"--original-backend fairseq2 needs fairseq2 0.2 and seamless_communication ({exc}); "
                "the default reference backend needs neither"
            ) from None
        from .reference import dims_from_state_dict

        dims = dims_from_state_dict(state)
        config = conformer_shaw_archs.get_config("conformer_shaw_600m")
        encoder = config.encoder_config
        encoder.model_dim = dims.model_dim
        encoder.num_encoder_layers = dims.num_layers
        encoder.num_encoder_attn_heads = dims.num_heads
        encoder.ffn_inner_dim = dims.ffn_dim
        encoder.depthwise_conv_kernel_size = dims.kernel_size
        encoder.shaw_rel_pos_sdpa_config.max_left_rel_pos = dims.max_left_rel_pos
        encoder.shaw_rel_pos_sdpa_config.max_right_rel_pos = dims.max_right_rel_pos
        if "final_proj.weight" in state:  # size the pretraining heads as saved, so everything loads
            config.final_dim = state["final_proj.weight"].shape[0]
        if "quantizer.entries" in state:
            config.quantized_dim = state["final_target_proj.weight"].shape[1]
            config.num_codebook_entries = state["quantizer.entries"].shape[1] // config.num_codebooks
        model = create_conformer_shaw_model(config, device=torch.device("cpu"), dtype=torch.float32)
        missing, _ = model.load_state_dict(dict(state), strict=False)
        missing = [key for key in missing if key.startswith(("encoder", "encoder_frontend"))]
        if missing:
            raise BadInput(f"the fairseq2 model has weights the checkpoint lacks: {', '.join(missing[:5])}")
        self.model = model.eval()
        self._fbank = WaveformToFbankConverter(
            num_mel_bins=80, waveform_scale=2**15, channel_last=True, standardize=True, dtype=torch.float32
        )
        self._collater = Collater(pad_value=1)
        self._seqs_and_mask = get_seqs_and_padding_mask

    def __call__(self, clip: Clip) -> SideOutput:
        started = time.perf_counter()
        waveform = torch.from_numpy(clip.waveform)[:, None]  # (time, channel), channel_last
        source = self._collater(self._fbank({"waveform": waveform, "sample_rate": MODEL_RATE, "format": -1}))["fbank"]
        seqs, padding_mask = self._seqs_and_mask(source)
        layers: list[torch.Tensor] = []
        hooks = [layer.register_forward_hook(lambda _m, _i, out: layers.append(out[0])) for layer in self.model.encoder.layers]
        try:
            with torch.inference_mode():
                seqs, padding_mask = self.model.encoder_frontend(seqs, padding_mask)
                frontend = seqs
                output, padding_mask = self.model.encoder(seqs, padding_mask)
        finally:
            for hook in hooks:
                hook.remove()
        valid = output.shape[1]
        stages = [("feature_projection", frontend[0, :valid])]
        stages += [(f"encoder.layers.{i}", layer[0, :valid]) for i, layer in enumerate(layers)]
        return SideOutput(output[0, :valid], stages, time.perf_counter() - started)
