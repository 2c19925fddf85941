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


# The terms of the stylize objective. Each follows anishathalye/neural-style (stylize.py),
# whose `2 * tf.nn.l2_loss(x) / x.size` is a mean of squares; keeping its normalizations
# keeps its tuned defaults (content 5, style 500, TV 100) meaningful.
#
#   total = content_weight * sum_l content_blend_l * content_loss(F_l, P_l)
#         + style_weight * sum_i style_blend_i * sum_l layer_weight_l * style_loss(G_l, A_il)
#         + tv_weight * tv_loss(image)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((F - P)^2) over every element. The paper (eq. 1) uses 1/2 * sum instead."""
    return (features - target).pow(2).mean()


def style_loss(gram_matrix: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((G - A)^2) over the C x C entries. The paper (eq. 4) weights the sum by
    1/(4 N^2 M^2); here the 1/(C*H*W) sits inside `gram()` and the mean supplies 1/C^2."""
    return (gram_matrix - target).pow(2).mean()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation of (N, 3, H, W): mean of squared vertical differences plus mean of
    squared horizontal differences (the reference's denoiser; not in the paper)."""
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]  # (N, 3, H-1, W)
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]  # (N, 3, H, W-1)
    return dy.pow(2).mean() + dx.pow(2).mean()


def style_layer_weights(layers: tuple[str, ...], exponent: float) -> dict[str, float]:
    """w_l proportional to exponent**l (l = 0 for the shallowest layer), normalized to sum to 1."""
    raw = [exponent**i for i in range(len(layers))]
    total = sum(raw)
    return {name: w / total for name, w in zip(layers, raw)}


def normalized(weights: tuple[float, ...]) -> tuple[float, ...]:
    """Blend weights scaled to sum to 1 (the reference's --style-blend-weights rule)."""
    total = sum(weights)
    return tuple(w / total for w in weights)
