"""The genuine fairseq2 0.2.1 (and seamless_communication, when installed) running conformer_shaw, in
the witness's own interpreter.

Speechport starts this file with the witness environment's Python (`-I`: nothing of Speechport's is
importable from here, and none of it is imported) and talks to it over two pipes: requests arrive as
JSON lines on stdin; each answer is one JSON line on the file descriptor given as the first argument,
so whatever the libraries print on stdout or stderr is never taken for an answer. Tensors travel as
safetensors files in a private folder Speechport gives.

The pipeline is the one transformers' conversion script uses to prove its port:
WaveformToFbankConverter(num_mel_bins=80, waveform_scale=2**15, channel_last=True, standardize=True),
Collater(pad_value=1), the model's encoder_frontend then encoder, in inference mode, in float32.

Requests: {"op": "hello"}; {"op": "load", "checkpoint": PATH, "builder": "auto"|"seamless"|"fairseq2"};
{"op": "run", "waveforms": PATH, "count": N, "out": PATH}; {"op": "bye"}.
Answers: {"ok": true, ...} or {"ok": false, "kind": "refused"|"error", "message": "..."}.
"""

import json
import os
import platform
import sys
import traceback

# Seamless's conformer_shaw: Shaw relative positions clipped at 64 on the left and 8 on the right, no
# relative values (seamless_communication models/conformer_shaw/builder.py, arch "600m").
MAX_LEFT_REL_POS = 64
MAX_RIGHT_REL_POS = 8
NUM_FBANK_CHANNELS = 80
PRETRAINING_PREFIXES = ("masker.", "quantizer.", "final_proj.", "final_target_proj.")


class Refused(Exception):
    """The witness cannot run this checkpoint: said to the user as it is."""


class Broken(Exception):
    """The witness's environment lacks what it needs: installing it afresh is the way out."""


def versions():
    import fairseq2
    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__.split("+")[0],
             "fairseq2": fairseq2.__version__}
    try:
        from importlib.metadata import version

        found["fairseq2n"] = version("fairseq2n")
    except Exception:  # noqa: BLE001 - only a version to report
        pass
    try:
        from importlib.metadata import version

        import seamless_communication  # noqa: F401

        found["seamless_communication"] = version("seamless_communication")
    except Exception:  # noqa: BLE001 - seamless is optional
        pass
    return found


def has_seamless():
    try:
        from seamless_communication.models.conformer_shaw.builder import create_conformer_shaw_model  # noqa: F401
    except Exception:  # noqa: BLE001 - seamless is optional; any failure to import it means "not there"
        return False
    return True


def dims(state):
    """The encoder's sizes, read off the checkpoint's own tensors (fairseq2 names)."""
    try:
        proj = state["encoder_frontend.model_dim_proj.weight"]
        rel_k = state["encoder.layers.0.self_attn.sdpa.rel_k_embed.weight"]
        ffn = state["encoder.layers.0.ffn1.inner_proj.weight"]
        depthwise = state["encoder.layers.0.conv.depthwise_conv.weight"]
    except KeyError as missing:
        raise Refused(f"the checkpoint has no {missing}: not a conformer_shaw model in fairseq2's names") from None
    layers = set()
    for key in state:
        parts = key.split(".")
        if len(parts) > 2 and parts[0] == "encoder" and parts[1] == "layers" and parts[2].isdigit():
            layers.add(int(parts[2]))
    model_dim, feature_dim = proj.shape
    head_dim = rel_k.shape[1]
    if rel_k.shape[0] != MAX_LEFT_REL_POS + MAX_RIGHT_REL_POS + 1:
        raise Refused(f"its Shaw relative-position table has {rel_k.shape[0]} rows; conformer_shaw's has "
                      f"{MAX_LEFT_REL_POS + MAX_RIGHT_REL_POS + 1} (positions -{MAX_LEFT_REL_POS}..{MAX_RIGHT_REL_POS})")
    if model_dim % head_dim or feature_dim % NUM_FBANK_CHANNELS:
        raise Refused(f"its sizes do not fit conformer_shaw (model {model_dim}, head {head_dim}, features {feature_dim})")
    return {"model_dim": int(model_dim), "feature_dim": int(feature_dim), "num_layers": len(layers),
            "num_heads": int(model_dim // head_dim), "ffn_inner_dim": int(ffn.shape[0]),
            "kernel_size": int(depthwise.shape[-1]), "fbank_stride": int(feature_dim // NUM_FBANK_CHANNELS)}


def encoder_config(sizes, config_class, **extra):
    from fairseq2.nn.transformer import TransformerNormOrder

    return config_class(
        model_dim=sizes["model_dim"], max_seq_len=4096, feature_dim=sizes["feature_dim"], use_fbank=True,
        first_pass_dropout_p=0.0, layer_norm_features=False, feature_extractor_layer_descs=[],
        feature_extractor_bias=False, feature_extractor_layer_norm_convs=False, feature_grad_scale=0.0,
        num_fbank_channels=NUM_FBANK_CHANNELS, fbank_stride=sizes["fbank_stride"], sample_fbank_every_k=1,
        pos_encoder_type="shaw_relative", pos_encoder_depth=0, pos_conv_kernel_size=0, num_pos_conv_groups=0,
        use_conformer=True, num_encoder_layers=sizes["num_layers"], num_encoder_attn_heads=sizes["num_heads"],
        ffn_inner_dim=sizes["ffn_inner_dim"], dropout_p=0.0, attn_dropout_p=0.0, layer_drop_p=0.0,
        norm_order=TransformerNormOrder.POST, depthwise_conv_kernel_size=sizes["kernel_size"], **extra)


def model_config(state, encoder):
    """The wav2vec 2.0 model around the encoder, sized as the checkpoint's pretraining modules are."""
    from fairseq2.models.wav2vec2 import Wav2Vec2Config

    final_dim = state["final_proj.weight"].shape[0] if "final_proj.weight" in state else 768
    quantized_dim = state["final_target_proj.weight"].shape[1] if "final_target_proj.weight" in state else 768
    num_codebooks, entries = 2, 320
    if "quantizer.entries" in state:
        codebook_dim = state["quantizer.entries"].shape[-1]
        num_codebooks = max(1, quantized_dim // codebook_dim)
        entries = state["quantizer.entries"].shape[1] // num_codebooks
    return Wav2Vec2Config(
        encoder, final_dim=int(final_dim), final_proj_bias=True, temporal_mask_span_len=10,
        max_temporal_mask_prob=0.65, spatial_mask_span_len=10, max_spatial_mask_prob=0.0,
        quantized_dim=int(quantized_dim), num_codebooks=int(num_codebooks), num_codebook_entries=int(entries),
        codebook_sampling_temperature=(2.0, 0.1, 0.999995), num_distractors=100, logit_temp=0.1,
        diversity_loss_weight=0.2)


def build_with_fairseq2(state):
    """conformer_shaw composed from fairseq2 0.2.1's own building blocks, configured as seamless
    configures it: Shaw relative-position attention, causal depthwise convolutions with a LayerNorm."""
    import torch
    from fairseq2.models.conformer import ConformerConvolution
    from fairseq2.models.wav2vec2 import Wav2Vec2Builder, Wav2Vec2EncoderBuilder, Wav2Vec2EncoderConfig
    from fairseq2.nn.transformer import ShawRelativePositionSDPA, create_default_sdpa

    class ConformerShawEncoderBuilder(Wav2Vec2EncoderBuilder):
        def build_sdpa(self):
            return ShawRelativePositionSDPA(
                self.config.model_dim, self.config.num_encoder_attn_heads, MAX_LEFT_REL_POS,
                max_right_rel_pos=MAX_RIGHT_REL_POS, use_rel_pos_values=False,
                inner_sdpa=create_default_sdpa(attn_dropout_p=self.config.attn_dropout_p),
                device=self.device, dtype=self.dtype)

        def build_conformer_conv(self):
            return ConformerConvolution(self.config.model_dim, self.config.depthwise_conv_kernel_size,
                                        causal_depthwise_conv=True, norm_type="layer_norm",
                                        device=self.device, dtype=self.dtype)

    device, dtype = torch.device("cpu"), torch.float32
    encoder = encoder_config(dims(state), Wav2Vec2EncoderConfig)
    builder = ConformerShawEncoderBuilder(encoder, device=device, dtype=dtype)
    return Wav2Vec2Builder(model_config(state, encoder), builder, device=device, dtype=dtype).build_model()


def build_with_seamless(state):
    import torch
    from seamless_communication.models.conformer_shaw.builder import (
        ConformerShawEncoderConfig,
        ShawRelativePositionSDPAConfig,
        create_conformer_shaw_model,
    )

    encoder = encoder_config(dims(state), ConformerShawEncoderConfig, shaw_rel_pos_sdpa_config=ShawRelativePositionSDPAConfig(
        max_left_rel_pos=MAX_LEFT_REL_POS, max_right_rel_pos=MAX_RIGHT_REL_POS, use_rel_pos_values=False))
    return create_conformer_shaw_model(model_config(state, encoder), device=torch.device("cpu"), dtype=torch.float32)


class Witness:
    def __init__(self):
        self.model = None

    def hello(self, request):
        try:
            found = versions()
        except ImportError as exc:  # a library of the witness is gone: the environment is broken
            raise Broken(f"{type(exc).__name__}: {exc}") from None
        return {"versions": found, "seamless": has_seamless()}

    def load(self, request):
        import torch

        builder = request.get("builder", "auto")
        seamless = has_seamless()
        if builder == "seamless" and not seamless:
            raise Refused("seamless_communication is not installed in the witness (speechport witness install "
                          "fairseq2 --with-seamless SPEC)")
        use_seamless = seamless and builder in ("auto", "seamless")
        try:
            checkpoint = torch.load(request["checkpoint"], map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch's own refusal, said as it is
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise Refused(f"torch {torch.__version__.split('+')[0]} cannot load it weights-only ({reason})") from None
        if not (isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict)):
            raise Refused("not in the layout seamless publishes ({\"model\": state dict}); the witness reads no other")
        if "final_target_proj.weight" not in checkpoint["model"]:
            # seamless's loader tells the two layouts apart by this key (conformer_shaw/loader.py).
            if not use_seamless:
                raise Refused("its keys are fairseq1's names, which only seamless_communication's own key converter "
                              "reads (speechport witness install fairseq2 --with-seamless SPEC); the witness never "
                              "uses Speechport's renaming rules, which it is there to check")
            from seamless_communication.models.conformer_shaw.loader import convert_conformer_shaw_checkpoint

            checkpoint = convert_conformer_shaw_checkpoint(checkpoint, None)
        state = {key: value.float() if value.is_floating_point() else value
                 for key, value in checkpoint["model"].items()}
        model = build_with_seamless(state) if use_seamless else build_with_fairseq2(state)
        result = model.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
        if missing or unexpected:
            parts = (["missing " + ", ".join(missing[:5])] if missing else []) + \
                (["unexpected " + ", ".join(unexpected[:5])] if unexpected else [])
            raise Refused("the checkpoint does not fit conformer_shaw: " + "; ".join(parts))
        self.model = model.eval()
        return {"builder": "seamless_communication" if use_seamless else "fairseq2 building blocks",
                "sizes": dims(state), "keys": len(state)}

    def run(self, request):
        import torch
        from fairseq2.data import Collater
        from fairseq2.data.audio import WaveformToFbankConverter
        from fairseq2.nn.padding import get_seqs_and_padding_mask
        from safetensors.torch import load_file, save_file

        if self.model is None:
            raise Refused("no checkpoint loaded")
        waveforms = load_file(request["waveforms"])
        converter = WaveformToFbankConverter(num_mel_bins=NUM_FBANK_CHANNELS, waveform_scale=2 ** 15,
                                             channel_last=True, standardize=True, dtype=torch.float32)
        collater = Collater(pad_value=1)
        fbanks = [converter({"waveform": waveforms[f"clip_{i}"][:, None], "sample_rate": 16000, "format": -1})
                  for i in range(int(request["count"]))]
        batch = collater(fbanks)["fbank"]
        seqs, padding_mask = get_seqs_and_padding_mask(batch)
        captured = {}
        modules = [("input_features", self.model.encoder_frontend.feature_extractor)]
        modules += [(f"encoder.layers.{i}", layer) for i, layer in enumerate(self.model.encoder.layers)]
        hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out[0]))
                 for name, module in modules]
        try:
            with torch.inference_mode():
                seqs, padding_mask = self.model.encoder_frontend(seqs, padding_mask)
                frontend = seqs
                output, padding_mask = self.model.encoder(seqs, padding_mask)
        finally:
            for hook in hooks:
                hook.remove()
        tensors = {"fbank": batch["seqs"].contiguous(), "input_features": captured["input_features"].contiguous(),
                   "feature_projection": frontend.contiguous(), "output": output.contiguous()}
        for i in range(len(self.model.encoder.layers)):
            tensors[f"encoder.layers.{i}"] = captured[f"encoder.layers.{i}"].contiguous()
        fbank_seq_lens = batch["seq_lens"].tolist() if batch.get("is_ragged") else [batch["seqs"].shape[1]] * len(fbanks)
        lens = padding_mask.seq_lens.tolist() if padding_mask is not None else [output.shape[1]] * len(fbanks)
        save_file({key: value.float().cpu().clone() for key, value in tensors.items()}, request["out"])
        return {"stages": ["input_features", "feature_projection"]
                + [f"encoder.layers.{i}" for i in range(len(self.model.encoder.layers))] + ["output"],
                "fbank_seq_lens": [int(n) for n in fbank_seq_lens], "seq_lens": [int(n) for n in lens]}


def serve(answers):
    witness = Witness()
    handlers = {"hello": witness.hello, "load": witness.load, "run": witness.run}
    for line in sys.stdin:
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "bye":
                return
            if op not in handlers:
                raise Refused(f"unknown request {op!r}")
            answer = dict(handlers[op](request), ok=True)
        except Refused as exc:
            answer = {"ok": False, "kind": "refused", "message": str(exc)}
        except Broken as exc:
            answer = {"ok": False, "kind": "broken", "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to Speechport as an answer
            answer = {"ok": False, "kind": "error", "message": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()[-4000:]}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main():
    answers = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    try:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("SPEECHPORT_WITNESS_THREADS", "0")) or torch.get_num_threads()))
    except Exception as exc:  # noqa: BLE001 - a broken witness says why, then ends
        answers.write(json.dumps({"ok": False, "kind": "broken", "message": f"{type(exc).__name__}: {exc}"}) + "\n")
        answers.flush()
        return 3
    serve(answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
