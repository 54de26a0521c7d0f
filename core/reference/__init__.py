"""Building blocks shared by the families' own implementations of the original models (the
"original side" of a comparison; each family's model is in `core/families/<family>/reference.py`).

They are written from the semantics of the original code bases (fairseq, fairseq2 /
seamless_communication, unilm, S3PRL), not from transformers, so that agreement with the converted
model is real evidence.
"""
