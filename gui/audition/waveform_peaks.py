"""A clip's waveform prepared for drawing at any zoom: its lowest and highest sample per block, at
block sizes growing by POWERS, worked out once (on a worker) so that drawing any stretch of a clip
of any length handles a few points per pixel.

Drawn as a line through each block's low then high value, a level looks the same as every sample
drawn would at that zoom, at a fraction of the cost: a ten-minute clip has 9.6 million samples,
and handing them all to the plot on each zoom would stall the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

POWERS = 4  # each level's blocks are this many times the previous level's
SMALLEST_LEVEL_POINTS = 2_000  # no coarser level than one with about this many blocks


@dataclass(frozen=True)
class Peaks:
    samples: np.ndarray  # the clip itself, float32
    rate: int
    # (samples per block, lows, highs), finest first; the clip itself is the level with blocks of 1.
    levels: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)

    @classmethod
    def of(cls, samples: np.ndarray, rate: int) -> Peaks:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        levels = []
        lows = highs = samples
        block = 1
        while len(lows) // POWERS >= SMALLEST_LEVEL_POINTS:
            usable = len(lows) // POWERS * POWERS
            rest = len(lows) - usable
            # Element-wise over strided views: much faster than reducing rows of POWERS values.
            lows_next, highs_next = lows[0:usable:POWERS].copy(), highs[0:usable:POWERS].copy()
            for offset in range(1, POWERS):
                np.minimum(lows_next, lows[offset:usable:POWERS], out=lows_next)
                np.maximum(highs_next, highs[offset:usable:POWERS], out=highs_next)
            if rest:  # the clip's last samples make a block of their own
                lows_next = np.append(lows_next, lows[usable:].min())
                highs_next = np.append(highs_next, highs[usable:].max())
            block *= POWERS
            lows, highs = lows_next, highs_next
            levels.append((block, lows, highs))
        return cls(samples, rate, levels)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def peak(self) -> float:
        """The largest |sample|."""
        if not len(self.samples):
            return 0.0
        if self.levels:
            _, lows, highs = self.levels[-1]
            return float(max(-lows.min(), highs.max()))
        return float(np.abs(self.samples).max())

    def view(self, start: float, end: float, pixels: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) to draw `start`..`end` seconds `pixels` wide: every sample when there are
        few enough, else the lows and highs of the coarsest level with at least a block per pixel."""
        count = len(self.samples)
        if not count:
            return np.zeros(0), np.zeros(0, dtype=np.float32)
        first = max(0, int(np.floor(start * self.rate)) - 1)
        last = min(count, int(np.ceil(end * self.rate)) + 2)
        visible = max(1, last - first)
        block, lows, highs = 1, self.samples, self.samples
        for level in self.levels:
            if visible // level[0] < max(1, pixels):
                break
            block, lows, highs = level
        if block == 1:
            return np.arange(first, last, dtype=np.float64) / self.rate, self.samples[first:last]
        low_index, high_index = first // block, min(len(lows), -(-last // block))
        centres = (np.arange(low_index, high_index, dtype=np.float64) + 0.5) * block / self.rate
        values = np.empty(2 * (high_index - low_index), dtype=np.float32)
        values[0::2] = lows[low_index:high_index]
        values[1::2] = highs[low_index:high_index]
        return np.repeat(centres, 2), values
