"""Ruder et al.'s multi-pass scheme: passes alternate direction, and from the second pass on each frame
starts from its last result blended with its neighbours' results warped into it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def blend_init(
    own: torch.Tensor, neighbours: Sequence[tuple[torch.Tensor, np.ndarray | torch.Tensor, float]]
) -> torch.Tensor:
    """A multi-pass start image (Ruder et al.'s artistic_video_multiPass.lua): the frame's own result of
    the last pass averaged with its neighbours' results warped into it, each neighbour weighted per
    pixel by its consistency mask times a blend weight:
    (own + sum_n b_n c_n warped_n) / (1 + sum_n b_n c_n). `neighbours` are (warped (1, 3, H, W),
    mask (H, W), b); the reference gives b = 1 to the neighbour the pass comes from, 0 to the other."""
    total = own.double()
    norm = torch.ones_like(own[:, :1], dtype=torch.float64)  # (1, 1, H, W)
    for warped, mask, weight in neighbours:
        c = torch.as_tensor(mask, device=own.device, dtype=torch.float64)[None, None] * weight
        total = total + c * warped.double()
        norm = norm + c
    return (total / norm).to(own.dtype)


def pass_order(frames: int, index: int) -> range:
    """The frame order of multi-pass pass `index` (1-based): odd passes run forward, even ones backward."""
    return range(frames) if index % 2 else range(frames - 1, -1, -1)
