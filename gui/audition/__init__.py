"""The Audition page: choosing and playing a clip, its waveform and the part to compare, the compare bar,
and what a comparison found (verdict, plain words, plots over time, one-answer views, export)."""
