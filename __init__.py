"""Speechport: port speech-model checkpoints into Hugging Face transformers folders and prove
on real audio that the ported model behaves like the original."""

__version__ = "0.1.0"
