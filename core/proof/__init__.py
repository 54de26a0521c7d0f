"""Proving a conversion: clips and filterbanks, running the original and the converted model side by
side, the numbers that compare them, and the report and model card that carry the result."""
