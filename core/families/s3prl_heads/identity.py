"""Which upstream an S3PRL head was trained on, and whether the base model given is that upstream.

A run_downstream.py checkpoint records its upstream: `Args.upstream` is the name S3PRL's hub gave
it (`wavlm_local`, `hf_wav2vec2_custom`, `hubert_large_ll60k`, ...), `Args.upstream_ckpt` the file
it loaded, and the Featurizer weighs exactly as many hidden states as that upstream gave. A head put
on another upstream computes something it was never trained for, and a comparison cannot notice:
both models run on the same base. So a base model of another family, or with another number of
hidden states, is refused naming both, unless the user accepts it (`mismatch_accepted`, which the
CLI's --base-model-mismatch-ok sets); a conversion or comparison made so says it in its report,
its model card and its notes.

Only what is known counts: an upstream name the table below does not know is no refusal by itself,
and the hidden states are compared when both sides tell them (the head does not, when S3PRL fed it
one selected layer).
"""

from __future__ import annotations

import contextlib
import re
from contextvars import ContextVar
from dataclasses import dataclass

from ...errors import quoted

# S3PRL's upstream names -> the family of the model they load (the families of
# core/families/_upstream.py's UpstreamFile). The hub's names take a few shapes: the family itself,
# `<family>_local` / `_url` / `_custom` (a checkpoint given with -k), `<family>_<size or corpus>` (a
# published checkpoint), `hf_<family>_custom` (a transformers folder). Upstreams of other
# architectures keep no entry: wav2vec 1.0 (`wav2vec`, `vq_wav2vec`), the conformer wav2vec 2.0
# (`wav2vec2_conformer_*`), LightHuBERT, multi-resolution HuBERT, ESPnet's HuBERT, spectrogram models.
UPSTREAM_NAME_FAMILIES = (
    (r"(?:hf_)?wav2vec2(?!_conformer)(?:_\w+)?", "wav2vec2"),  # wav2vec2_local, wav2vec2_large_ll60k, hf_wav2vec2_custom
    (r"xlsr_\w+|xls_r_\w+", "wav2vec2"),  # xlsr_53, xls_r_300m
    (r"(?:hf_|m)?hubert(?:_\w+)?", "hubert"),  # hubert_local, hubert_large_ll60k, mhubert_base_vp_en_es_fr_it3
    (r"distilhubert(?:_\w+)?|distiller_\w+", "distiller"),  # distilhubert, distilhubert_base, distiller_local
    (r"wavlm(?:_\w+)?", "wavlm"),  # wavlm_local, wavlm_base_plus, wavlm_large
    (r"unispeech_sat(?:_\w+)?", "unispeech_sat"),  # unispeech_sat_local, unispeech_sat_base_plus
    (r"data2vec(?:_\w+)?", "data2vec"),  # data2vec_local, data2vec_base_960 (data2vec-audio)
)
# A transformers base folder's model_type -> the families whose upstreams convert to it (a
# DistilHuBERT converts to a HubertModel, so a hubert folder may stand for either).
FOLDER_FAMILIES = {"wav2vec2": ("wav2vec2",), "hubert": ("hubert", "distiller"), "wavlm": ("wavlm",),
                   "unispeech-sat": ("unispeech_sat",), "data2vec-audio": ("data2vec",)}

# The user's consent to a base model other than the one the head records, for what runs in this
# context (a CLI command): read once, when a head's recipe is opened.
_MISMATCH_ACCEPTED: ContextVar[bool] = ContextVar("speechport_base_model_mismatch_ok", default=False)


@contextlib.contextmanager
def mismatch_accepted(accepted: bool = True):
    """Within this block, heads are opened accepting a base model other than the one they record."""
    token = _MISMATCH_ACCEPTED.set(accepted)
    try:
        yield
    finally:
        _MISMATCH_ACCEPTED.reset(token)


def is_mismatch_accepted() -> bool:
    return _MISMATCH_ACCEPTED.get()


def upstream_family(name) -> str | None:
    """The family of S3PRL's upstream `name`, or None for a name the table does not know."""
    if not isinstance(name, str):
        return None
    return next((family for pattern, family in UPSTREAM_NAME_FAMILIES if re.fullmatch(pattern, name)), None)


@dataclass(frozen=True)
class Upstream:
    """What is known of an upstream: its family, the hidden states it gives, and where that is said."""

    families: tuple[str, ...]  # the families it may be (one, except for a transformers hubert folder); () unknown
    hidden_states: int | None
    shown_as: str  # what it is called in a sentence: "a wavlm upstream", "a hubert model"
    name: str | None = None  # Args.upstream, for the head's side
    checkpoint: str | None = None  # Args.upstream_ckpt, for the head's side

    def phrase(self) -> str:
        named = f" ({quoted(self.name)})" if self.name else ""
        states = f" with {self.hidden_states} hidden states" if self.hidden_states is not None else ""
        return f"{self.shown_as}{named}{states}"

    def to_dict(self) -> dict:
        return {"family": self.families[0] if len(self.families) == 1 else list(self.families) or None,
                "hidden_states": self.hidden_states, "upstream": self.name, "upstream_ckpt": self.checkpoint}


def trained_on(content: dict) -> Upstream:
    """The upstream a head records: its family from Args.upstream, its hidden states from the Featurizer."""
    args = content.get("Args")
    name = getattr(args, "upstream", None)
    checkpoint = getattr(args, "upstream_ckpt", None)
    family = upstream_family(name)
    weights = (content.get("Featurizer") or {}).get("weights") if isinstance(content.get("Featurizer"), dict) else None
    states = int(weights.numel()) if hasattr(weights, "numel") else None
    shown = f"a {family} upstream" if family else "an upstream"
    return Upstream((family,) if family else (), states, shown, name if isinstance(name, str) else None,
                    checkpoint if isinstance(checkpoint, str) else None)


def base_folder(model_type: str, num_hidden_layers: int) -> Upstream:
    """A transformers base folder: its hidden_states are the embeddings' output and every layer's."""
    return Upstream(FOLDER_FAMILIES.get(model_type, ()), num_hidden_layers + 1, f"a {model_type} model")


def base_file(family: str, hidden_states: int | None) -> Upstream:
    """An original upstream checkpoint, as S3PRL's expert for it gives hidden states."""
    return Upstream((family,), hidden_states, f"a {family} upstream file")


def differ(head: Upstream, base: Upstream) -> bool:
    """Whether they are known to be different upstreams: another family, or another count of hidden states."""
    family_differs = bool(head.families and base.families and not set(head.families) & set(base.families))
    count_differs = head.hidden_states is not None and base.hidden_states is not None and (
        head.hidden_states != base.hidden_states)
    return family_differs or count_differs


def mismatch_sentence(head: Upstream, base: Upstream) -> str:
    return f"the head was trained on {head.phrase()}, but the base model is {base.phrase()}"


def accepted_note(sentence: str) -> str:
    """What a conversion or comparison made on such a base model says of itself."""
    return (f"{sentence}: used anyway, as asked (base model mismatch accepted); both models run on this base "
            "model, so a comparison shows that the head was converted faithfully onto it, not that the head works "
            "on it as it did on the upstream it was trained on")
