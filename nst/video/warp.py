"""Warping an earlier frame's output into the current frame along the optical flow."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nst.video.consistency import EDGE


def warp(image: torch.Tensor, flow: np.ndarray | torch.Tensor, *, fill: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """`image` (1, 3, H, W) of another frame, resampled into this frame: out(p) = image(p + flow(p)),
    bilinear, where `flow` (H, W, 2) maps this frame into that one (the backward flow, to bring the
    previous output forward). A pixel whose source lies outside `image` gets `fill`, the model's mean
    pixel ((3,) or (1, 3, 1, 1)), as Ruder et al. fill theirs: the network sees it as zero. Up to half a
    pixel past the outer pixel centres still counts as inside and takes the edge pixel's value.
    """
    _, _, h, w = image.shape
    flow = torch.as_tensor(flow, device=image.device, dtype=torch.float64)
    if flow.shape != (h, w, 2):
        raise ValueError(f"the flow is {tuple(flow.shape)}, the image (1, 3, {h}, {w}); they need one size")
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=torch.float64),
        torch.arange(w, device=image.device, dtype=torch.float64),
        indexing="ij",
    )
    x, y = xs + flow[..., 0], ys + flow[..., 1]  # (H, W): where each pixel comes from
    inside = (x >= -EDGE) & (x <= w - 1 + EDGE) & (y >= -EDGE) & (y <= h - 1 + EDGE)  # consistency.lands_inside
    sampled = _bilinear(image[0].double(), x.clamp(0, w - 1), y.clamp(0, h - 1))  # (3, H, W)
    mean = torch.as_tensor(fill, device=image.device, dtype=torch.float64).reshape(3, 1, 1)
    return torch.where(inside, sampled, mean)[None].to(image.dtype)


def _bilinear(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(C, H, W) sampled at (x, y) (H', W'), both within the image. Written out rather than through
    grid_sample, whose normalised coordinates miss the pixel centres by rounding: a zero flow gives
    the image back exactly."""
    _, h, w = image.shape
    x0 = x.floor().long().clamp(max=max(w - 2, 0))
    y0 = y.floor().long().clamp(max=max(h - 2, 0))
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    ax, ay = x - x0, y - y0  # (H', W') in [0, 1]
    top = image[:, y0, x0] * (1 - ax) + image[:, y0, x1] * ax  # (C, H', W')
    bottom = image[:, y1, x0] * (1 - ax) + image[:, y1, x1] * ax
    return top * (1 - ay) + bottom * ay
