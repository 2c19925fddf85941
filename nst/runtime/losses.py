"""The style-transfer losses, each a few lines, with the reference's normalizations."""

from __future__ import annotations

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of (N, C, H, W) features: G = F F^T / (C*H*W), shape (N, C, C).

    This is the one definition of the normalization; the ONNX graph's `gram_*` outputs
    compute the same (nst.export.onnx_graph.GRAM_NORMALIZATION). It follows
    anishathalye/neural-style, which divides by the feature map's size C*H*W; the paper
    (Gatys et al. 2015, eq. 3-5) uses the raw F F^T and folds 1/(4 N^2 M^2) into the loss.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)  # (N, C, HW)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)  # (N, C, C)
