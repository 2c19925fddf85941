"""Ruder et al.'s consistency check: held against a per-pixel port of their checker's loop, on exact
flows (pans, occlusions, motion boundaries, a static clip) and on DIS flow of a pan; and their
disjoint long-term weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nst.video.consistency import long_term_weights, reliability


def _loop_reliability(flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """The check pixel by pixel, as consistencyChecker.cpp reads (with this module's two documented
    departures: half a pixel of edge, and out-of-frame pixels at -1), then its 5-tap Gaussian."""
    h, w = flow.shape[:2]

    def at(field, x, y):  # bilinear, clamped to the edge
        x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
        x0, y0 = min(math.floor(x), w - 2), min(math.floor(y), h - 2)
        ax, ay = x - x0, y - y0
        top = (1 - ax) * field[y0, x0] + ax * field[y0, x0 + 1]
        return (1 - ay) * top + ay * ((1 - ax) * field[y0 + 1, x0] + ax * field[y0 + 1, x0 + 1])

    def derivative(y, x, axis):  # central difference, borders mirrored (index -1 reads 0)
        def get(i, j):
            i = -1 - i if i < 0 else (2 * h - 1 - i if i >= h else i)
            j = -1 - j if j < 0 else (2 * w - 1 - j if j >= w else j)
            return flow[i, j]

        return 0.5 * (get(y, x + 1) - get(y, x - 1)) if axis == 1 else 0.5 * (get(y + 1, x) - get(y - 1, x))

    raw = np.ones((h, w))
    for y in range(h):
        for x in range(w):
            u, v = flow[y, x]
            bx, by = x + u, y + v
            if not (-0.5 <= bx <= w - 0.5 and -0.5 <= by <= h - 0.5):
                raw[y, x] = -1
                continue
            ru, rv = at(reverse, bx, by)
            if (bx + ru - x) ** 2 + (by + rv - y) ** 2 >= 0.01 * (u * u + v * v + ru * ru + rv * rv) + 0.5:
                raw[y, x] = -1
                continue
            edge = (derivative(y, x, 1) ** 2).sum() + (derivative(y, x, 0) ** 2).sum()
            if edge > 0.01 * (u * u + v * v) + 0.002:
                raw[y, x] = 0
    taps = np.exp(-(np.arange(-2, 3) ** 2) / (2 * 0.8**2))
    taps /= taps.sum()
    padded = np.pad(raw, 2, mode="symmetric")
    rows = sum(taps[k] * padded[:, k : k + w] for k in range(5))  # (H + 4, W)
    smooth = sum(taps[k] * rows[k : k + h] for k in range(5))
    return np.clip(smooth, 0, 1)


def _constant(shape: tuple[int, int], dx: float, dy: float) -> np.ndarray:
    flow = np.zeros((*shape, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def test_the_check_matches_a_per_pixel_port_of_the_checker():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    h, w = 14, 18
    # A slow zoom with a pan (some pixels leave the frame), a sharp step (a motion boundary), a patch
    # where the flows disagree (an occlusion), and noise.
    ys, xs = np.mgrid[0:h, 0:w]
    flow = np.stack([0.02 * (xs - 9) + 1.5, 0.02 * (ys - 7) - 0.4], axis=-1)
    flow[:, 12:, 0] -= 3
    flow += gaussian_filter(rng.normal(0, 0.1, flow.shape), (1, 1, 0))
    reverse = -flow + rng.normal(0, 0.05, flow.shape)
    reverse[4:8, 2:6] += 2.5
    got = reliability(flow.astype(np.float32), reverse.astype(np.float32))
    want = _loop_reliability(flow.astype(np.float32).astype(np.float64), reverse.astype(np.float32).astype(np.float64))
    assert got.dtype == np.float32 and got.shape == (h, w)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert 0 < (got == 0).mean() < 0.9 and (got > 0.99).any()  # the case exercised every branch


def test_a_static_clip_is_reliable_everywhere():
    zero = _constant((96, 128), 0, 0)
    assert np.array_equal(reliability(zero, zero), np.ones((96, 128), np.float32))


@pytest.mark.parametrize("shift", [3, 5])
def test_a_pan_is_unreliable_only_in_the_strip_it_brings_in(shift):
    # The later frame's pixels come from p + shift in the earlier one: the last `shift` columns have no source.
    mask = reliability(_constant((96, 128), shift, 0), _constant((96, 128), -shift, 0))
    assert mask[:, 128 - shift :].max() == 0
    assert mask[:, : 128 - shift - 2].min() == 1  # the smoothing reaches 2 px into the frame
    assert 0 < mask[:, 128 - shift - 1].max() < 1  # and grows the zero zone there


def test_an_occlusion_is_zero_and_its_zone_grows():
    flow = _constant((40, 40), 2, 0)
    reverse = -flow
    reverse[10:20, 10:20] = 6.0  # the round trip fails over this patch
    mask = reliability(flow, reverse)
    occluded = mask[10:20, 8:18]  # the later pixels whose sources p + 2 sit in the patch
    assert occluded.max() == 0
    assert mask[15, 7] < 0.6 and mask[15, 18] < 0.6  # the neighbours lose weight: the zone grew
    assert mask[30:, :30].min() == 1


def test_a_motion_boundary_is_zero_but_not_grown():
    flow = _constant((40, 40), 0, 0)
    flow[:, 20:, 0] = 1.0  # the right half moves one pixel
    reverse = -flow  # a consistent round trip everywhere but where the halves meet
    mask = reliability(flow, reverse)
    assert mask[:, 19:21].max() < 0.6  # the central differences flag both sides of the step
    assert mask[:, :16].min() == 1 and mask[:, 24:36].min() == 1  # the last 3 columns: leaving the frame


def test_a_dis_pan_is_about_zero_only_in_the_disoccluded_strip():
    pytest.importorskip("cv2")
    from nst.video.flow import frame_pair

    from video_clips import pan

    for shift in (3, 6):
        earlier, later = pan(2, (shift, 0))
        mask = frame_pair(earlier, later).reliable_later
        assert mask[:, 128 - shift :].mean() < 0.02
        rest = mask[:, : 128 - shift - 2]
        assert (rest > 0.5).mean() > 0.97 and rest.mean() > 0.95


def test_long_term_weights_are_disjoint_closest_first():
    rng = np.random.default_rng(1)
    masks = [rng.uniform(0, 1, (6, 7)).astype(np.float32) for _ in range(3)]
    masks[0][0, 0], masks[1][0, 0], masks[2][0, 0] = 1.0, 1.0, 1.0
    masks[0][1, 1], masks[1][1, 1], masks[2][1, 1] = 0.0, 0.0, 0.7
    weights = long_term_weights(masks)
    assert np.array_equal(weights[0], masks[0])  # the closest frame keeps its mask
    np.testing.assert_allclose(weights[1], np.maximum(masks[1] - masks[0], 0), atol=1e-7)
    np.testing.assert_allclose(weights[2], np.maximum(masks[2] - weights[0] - weights[1], 0), atol=1e-7)
    # At every pixel the weights add up to the largest mask: never more weight than one frame.
    np.testing.assert_allclose(sum(weights), np.maximum.reduce(masks), atol=1e-6)
    assert all(w.min() >= 0 for w in weights)
    assert weights[1][0, 0] == weights[2][0, 0] == 0  # covered by the closest frame
    assert weights[2][1, 1] == pytest.approx(0.7)  # only the farthest frame sees this pixel
