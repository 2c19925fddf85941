"""Where a warped frame can be trusted: Ruder et al.'s forward-backward consistency check with its
smoothing, and their disjoint ("closest first") weights for long-term temporal terms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The thresholds of manuelruder/artistic-videos' consistencyChecker.cpp (Ruder et al. 2016, eq. 6-7).
ROUND_TRIP_SCALE, ROUND_TRIP_OFFSET = 0.01, 0.5  # |w + w_rev(p + w)|^2 >= 0.01 (|w|^2 + |w_rev|^2) + 0.5
BOUNDARY_SCALE, BOUNDARY_OFFSET = 0.01, 0.002  # |grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002
SMOOTH_SIGMA = 0.8  # the Gaussian that softens the mask, truncated at 2 sigma as theirs
EDGE = 0.5  # px: how far past the outer pixel centres a position still lands on the frame


def reliability(flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """The consistency mask (H, W) float32 in [0, 1] of the frame `flow` starts from.

    `flow` maps this frame into the other one (this(p) ~ other(p + flow(p))) and `reverse` maps back.
    A pixel is unreliable (0) when p + flow(p) leaves the frame (`lands_inside`), when the round trip
    p -> p + flow(p) -> + reverse does not come back near p (an occlusion), or when it sits on a motion
    boundary (the flow's gradient is large). As Ruder et al.'s checker does, failed round trips are set
    to -1 (their -255) and motion boundaries to 0 before a sigma 0.8 Gaussian smoothing, so that the
    smoothing grows the occluded zone outward before the result is clipped to [0, 1]. Out-of-frame
    pixels are set to -1 too (theirs are 0): their warped value is only the fill colour, and at 0 the
    smoothing would give them weight from their neighbours (their stricter frame test hides this).
    """
    flow = np.asarray(flow, dtype=np.float64)
    reverse = np.asarray(reverse, dtype=np.float64)
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)  # (H, W) each
    bx, by = xs + flow[..., 0], ys + flow[..., 1]  # where each pixel lands in the other frame
    inside = lands_inside(bx, by, h, w)
    back = _bilinear(reverse, bx, by, inside)  # (H, W, 2)
    error = (bx + back[..., 0] - xs) ** 2 + (by + back[..., 1] - ys) ** 2
    speed = (flow**2).sum(axis=-1) + (back**2).sum(axis=-1)
    occluded = inside & (error >= ROUND_TRIP_SCALE * speed + ROUND_TRIP_OFFSET)
    boundary = inside & ~occluded & (_motion_edges(flow) > BOUNDARY_SCALE * (flow**2).sum(axis=-1) + BOUNDARY_OFFSET)
    mask = np.where(boundary, 0.0, 1.0)
    mask[occluded | ~inside] = -1.0
    return np.clip(_smooth(mask), 0.0, 1.0).astype(np.float32)


def lands_inside(x: np.ndarray, y: np.ndarray, h: int, w: int) -> np.ndarray:
    """Whether positions (x, y) fall on an h x w frame: within half a pixel of its pixel centres, on
    the pixels' own area. Ruder et al.'s checker asks for both bilinear neighbours inside instead, which
    marks a static clip's last row and column unreliable; here, as in `warp.warp`, a position up to half
    a pixel past the outer centres takes the edge pixel's value."""
    return (x >= -EDGE) & (x <= w - 1 + EDGE) & (y >= -EDGE) & (y <= h - 1 + EDGE)


def long_term_weights(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Ruder et al.'s "closest first" weights for temporal terms against several earlier frames.

    `masks` are the consistency masks of the earlier frames warped into this one, closest first
    (offsets 1, 2, 4, ...). Each farther frame keeps only what the closer ones leave uncovered:
    c'_j = max(c_j - sum_{k<j} c'_k, 0), subtracting the closer frames' weights as already made
    disjoint (as artistic_video.lua's processFlowWeights does; the paper's formula subtracts the raw
    masks). So the weights at a pixel add up to the largest of the masks there, never more.
    """
    weights: list[np.ndarray] = []
    covered: np.ndarray | None = None
    for mask in masks:
        mask = np.asarray(mask, dtype=np.float32)
        weight = mask.copy() if covered is None else np.maximum(mask - covered, 0.0)
        covered = weight.copy() if covered is None else covered + weight
        weights.append(weight)
    return weights


def _bilinear(field: np.ndarray, x: np.ndarray, y: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """`field` (H, W, C) sampled at (x, y) where `inside`, else 0."""
    h, w = field.shape[:2]
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)  # the edge's value up to half a pixel past it
    x0 = np.clip(np.floor(x), 0, w - 2).astype(np.intp)
    y0 = np.clip(np.floor(y), 0, h - 2).astype(np.intp)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]  # (H, W, 1)
    top = (1 - ax) * field[y0, x0] + ax * field[y0, x0 + 1]
    bottom = (1 - ax) * field[y0 + 1, x0] + ax * field[y0 + 1, x0 + 1]
    return np.where(inside[..., None], (1 - ay) * top + ay * bottom, 0.0)


def _motion_edges(flow: np.ndarray) -> np.ndarray:
    """|du/dx|^2 + |dv/dx|^2 + |du/dy|^2 + |dv/dy|^2 with central differences, the borders mirrored."""
    from scipy.ndimage import correlate1d

    central = np.array([-0.5, 0.0, 0.5])
    dx = correlate1d(flow, central, axis=1, mode="reflect")  # (H, W, 2)
    dy = correlate1d(flow, central, axis=0, mode="reflect")
    return (dx**2).sum(axis=-1) + (dy**2).sum(axis=-1)


def _smooth(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    # truncate=2: a 5-tap kernel at sigma 0.8, the checker's CSmooth(0.8, 2.0); mirrored borders as its filters.
    return gaussian_filter(mask, sigma=SMOOTH_SIGMA, truncate=2.0, mode="reflect")
