"""Witnesses: genuine upstream libraries (fairseq2 0.2.1) installed in interpreters of their own, and
the channel through which Speechport asks them to run the original model on a clip."""
