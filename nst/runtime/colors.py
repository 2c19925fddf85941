"""Colour preservation for stylize's output (--preserve-colors): keep the content's colours.

Two modes, both applied to the final (and checkpoint) image after optimisation:
  luminance  the stylized image's luma with the content's chroma, in full-range YCbCr
             (JFIF / Rec.601), as anishathalye/neural-style does;
  histogram  the stylized image's colours moved so that their mean and covariance equal
             the content's (the linear colour transfer of Gatys et al. 2016, "Preserving
             Color in Neural Artistic Style Transfer", sec. 2.1, applied to the output).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from nst.runtime.images import from_array

ColorMode = Literal["luminance", "histogram"]
COLOR_MODES: tuple[str, ...] = ("luminance", "histogram")

# JFIF full-range RGB -> YCbCr (what PIL's "YCbCr" mode uses); the offset is added to Cb, Cr.
_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float64
)
_CHROMA_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB 0-255 -> (..., 3) Y, Cb, Cr, full range."""
    return rgb.astype(np.float64) @ _RGB_TO_YCBCR.T + _CHROMA_OFFSET


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_ycbcr` (unclipped)."""
    return (ycc - _CHROMA_OFFSET) @ np.linalg.inv(_RGB_TO_YCBCR).T


def preserve_colors(stylized, content, mode: ColorMode):
    """Return `stylized` (PIL RGB) with the colours of `content` (PIL RGB, resized to match)."""
    return from_array(preserve_colors_array(np.asarray(stylized, dtype=np.float64), content, mode))


def preserve_colors_array(stylized: np.ndarray, content, mode: ColorMode) -> np.ndarray:
    """(H, W, 3) float `stylized` (0-255, unrounded) with the colours of `content` (PIL RGB,
    resized to match); unclipped floats."""
    from PIL import Image

    size = (stylized.shape[1], stylized.shape[0])
    if content.size != size:
        content = content.resize(size, Image.Resampling.LANCZOS)
    out = np.asarray(stylized, dtype=np.float64)  # (H, W, 3)
    ref = np.asarray(content, dtype=np.float64)  # (H, W, 3)
    if mode == "luminance":
        ycc = rgb_to_ycbcr(ref)
        ycc[..., 0] = rgb_to_ycbcr(out)[..., 0]  # stylized luma, content chroma
        result = ycbcr_to_rgb(ycc)
    elif mode == "histogram":
        result = match_color_statistics(out.reshape(-1, 3), ref.reshape(-1, 3)).reshape(out.shape)
    else:
        raise ValueError(f"unknown colour mode {mode!r}")
    return result


def match_color_statistics(pixels: np.ndarray, reference: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Affine map of (P, 3) `pixels` whose output has the mean and covariance of (Q, 3)
    `reference`: x' = C_r^1/2 C_p^-1/2 (x - mu_p) + mu_r, with symmetric matrix roots."""
    mu_p, mu_r = pixels.mean(0), reference.mean(0)
    cov_p = np.cov(pixels, rowvar=False) + eps * np.eye(3)
    cov_r = np.cov(reference, rowvar=False) + eps * np.eye(3)
    transform = _sqrtm(cov_r) @ np.linalg.inv(_sqrtm(cov_p))
    return (pixels - mu_p) @ transform.T + mu_r


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
