"""Colour preservation: luminance transfer and colour-statistics matching."""

from __future__ import annotations

import numpy as np
from PIL import Image

from nst.runtime.colors import match_color_statistics, preserve_colors, rgb_to_ycbcr


def _mid_tone(seed: int, size=(24, 16)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(70, 190, (size[1], size[0], 3), dtype=np.uint8))


def test_luminance_keeps_content_chroma_and_stylized_luma():
    content, stylized = _mid_tone(0), _mid_tone(1)
    out = preserve_colors(stylized, content, "luminance")
    got, want = rgb_to_ycbcr(np.asarray(out, float)), rgb_to_ycbcr(np.asarray(content, float))
    assert np.abs(got[..., 1:] - want[..., 1:]).max() < 1.5  # 8-bit rounding only
    assert np.abs(got[..., 0] - rgb_to_ycbcr(np.asarray(stylized, float))[..., 0]).max() < 1.5


def test_histogram_matches_mean_and_covariance():
    rng = np.random.default_rng(0)
    pixels = rng.normal(0, 1, (5000, 3)) @ np.array([[30, 5, 0], [0, 20, 3], [2, 0, 10]]) + 40
    reference = rng.normal(0, 1, (4000, 3)) @ np.array([[10, 0, 4], [3, 25, 0], [0, 6, 15]]) + 120
    out = match_color_statistics(pixels, reference)
    assert np.allclose(out.mean(0), reference.mean(0), atol=1e-6)
    assert np.allclose(np.cov(out, rowvar=False), np.cov(reference, rowvar=False), rtol=1e-3, atol=1e-2)
    image = preserve_colors(_mid_tone(1), _mid_tone(0), "histogram")
    assert image.size == (24, 16) and image.mode == "RGB"
