"""Independent implementations of the original models, used as the "original side" of a comparison.

They are written from the semantics of the original code bases (fairseq2 / seamless_communication,
S3PRL), not from transformers, so that agreement with the converted model is real evidence.
"""
