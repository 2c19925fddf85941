"""The style-transfer losses, each a few lines, with the reference's normalizations."""

from __future__ import annotations

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of (N, C, H, W) features as `nst.contract.gram` defines them,
    G = F F^T / (C*H*W) (N, C, C), always in float32, computed for the optimisation loop:

    - features in channels-last memory are read as (N, HW, C), a free view, so that the
      gradient flowing back has the features' own layout (adding gradients of two layouts
      was the costliest step of a bf16 iteration on the CPU);
    - the backward is one matrix product, dF = (dG + dG^T) F / (C*H*W), where autograd's
      would be two and a sum. It runs in float32 and only its result takes the features'
      dtype: with the product in bf16, L-BFGS from noise at 256 px needed several times the
      iterations to a given loss (benchmarks/README.md), while float32 costs no measurable time.
    """
    n, c, h, w = features.shape
    if c > 1 and h * w > 1 and features.is_contiguous(memory_format=torch.channels_last):
        rows = features.permute(0, 2, 3, 1).reshape(n, h * w, c)  # (N, HW, C), a view
        return _Gram.apply(rows, True, c * h * w)
    return _Gram.apply(features.reshape(n, c, h * w), False, c * h * w)  # (N, C, HW)


class _Gram(torch.autograd.Function):
    """G = X X^T / size for X (N, C, HW), or X^T X / size for X (N, HW, C) (`rows`)."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, rows: bool, size: int) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.rows, ctx.size = rows, size
        x = flat.float()
        product = torch.bmm(x.transpose(1, 2), x) if rows else torch.bmm(x, x.transpose(1, 2))
        return product / size  # (N, C, C), float32

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (flat,) = ctx.saved_tensors
        sym = (grad + grad.transpose(1, 2)) / ctx.size  # (N, C, C), float32
        x = flat.float()
        return (torch.bmm(x, sym) if ctx.rows else torch.bmm(sym, x)).to(flat.dtype), None, None


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
