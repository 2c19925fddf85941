"""Hard cuts: where a clip jumps to another view, so that it splits into shots stylized independently.

A cut is a frame whose colours break with the previous frame's: the total-variation distance of their
joint RGB histograms (8 levels a channel) is over `CUT_DISTANCE`. Camera motion, moving objects and
lighting that changes over several frames move little of the histogram (a 3 px pan: about 0.02); a cut
to another scene moves most of it. Dissolves and fades change it gradually, so they are no cuts: their
frames stay in one shot, as the temporal term needs.
"""

from __future__ import annotations

import numpy as np

CUT_DISTANCE = 0.6  # most pixels changed colour bins (a sudden +30 levels of brightness moves 0.52)
_LEVELS = 8  # histogram bins a channel


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """The joint RGB histogram of an (H, W, 3) uint8 frame, (512,) float summing to 1."""
    bins = (frame.astype(np.int32) * _LEVELS) // 256  # (H, W, 3) in 0..7
    index = (bins[..., 0] * _LEVELS + bins[..., 1]) * _LEVELS + bins[..., 2]
    counts = np.bincount(index.ravel(), minlength=_LEVELS**3).astype(np.float64)
    return counts / counts.sum()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance of two histograms: 0 for the same colours, 1 for none shared."""
    return 0.5 * float(np.abs(a - b).sum())


class CutFinder:
    """Fed a clip's frames in order, keeps where its shots start (frame indices, 0-based)."""

    def __init__(self) -> None:
        self.starts: list[int] = [0]
        self._previous: np.ndarray | None = None
        self._count = 0

    def add(self, frame: np.ndarray) -> None:
        histogram = colour_histogram(frame)
        if self._previous is not None and distance(self._previous, histogram) > CUT_DISTANCE:
            self.starts.append(self._count)
        self._previous, self._count = histogram, self._count + 1

    def shots(self) -> list[tuple[int, int]]:
        """[start, stop) of each shot."""
        return list(zip(self.starts, [*self.starts[1:], self._count]))
