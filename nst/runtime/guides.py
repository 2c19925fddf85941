"""Regions inside the network (Gatys et al. 2017): masks carried along the network's own path,
guided Gram matrices, and the region style term.

A region's mask is propagated layer by layer as the network itself goes (a 3x3 average at
each conv, a 2x2 average at each pool: soft edges; or, in `inside` mode, a minimum instead,
which keeps only the units whose receptive field lies inside the region). At each style layer
the features are weighted by the region's guide m and its Gram is an area average,
G = (F m)(F m)^T / (C sum m^2): with an all-ones guide this is `nst.contract.gram` exactly,
so a region is compared with its style's ordinary Grams (precomputed targets work). Each
region's loss is weighted by its area at that layer, so that constant masks b_i reproduce
the blended objective sum_i b_i style_loss(G, A_i), and every pixel of a small region is
pulled towards its style as strongly as in an unmasked run.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from nst.errors import ConfigError, NSTWarning
from nst.models.layers import STYLE_LAYERS, Layer
from nst.runtime.config import MaskMode
from nst.runtime.losses import style_loss
from nst.runtime.regions import resolve

if TYPE_CHECKING:
    from nst.runtime.config import StylizeConfig
    from nst.runtime.mirror import VGGMirror
    from nst.runtime.objective import Features, StyleGrams
    from nst.runtime.regions import RegionMasks, Regions

# A region smaller than this many units of a layer's map is left out at that layer: its
# Gram would be an average over less than one feature vector.
MIN_UNITS = 1.0


def propagate(
    mask: torch.Tensor, table: Sequence[Layer], layers: Iterable[str], *, mode: MaskMode
) -> dict[str, torch.Tensor]:
    """The guide of `mask` (1, 1, H, W) at each of `layers`: the network's own path, a 3x3
    neighbourhood at each conv and a 2x2 window at each pool (ceil mode, as the network pools),
    averaged (soft) or taking the minimum (inside: units whose receptive field lies inside the
    region). Padding counts as neither in nor out."""
    wanted = set(layers)
    guides: dict[str, torch.Tensor] = {}
    m = mask
    for layer in table:
        if not wanted:
            break
        if layer.kind == "conv":
            m = (
                F.avg_pool2d(m, 3, 1, 1, count_include_pad=False)
                if mode == "soft"
                else -F.max_pool2d(-m, 3, 1, 1)  # max pooling pads with -inf: neutral for the minimum
            )
        elif layer.kind == "pool":
            m = (
                F.avg_pool2d(m, 2, 2, ceil_mode=True, count_include_pad=False)
                if mode == "soft"
                else -F.max_pool2d(-m, 2, 2, ceil_mode=True)
            )
        if layer.name in wanted:
            guides[layer.name] = m
            wanted.discard(layer.name)
    return guides


@dataclass(frozen=True)
class Guide:
    """A region at one layer: its weights over the box of the layer's units it touches
    (`rows`, `cols`), the scale that makes `gram()` of the box an area average over the region
    (box units / sum m^2), and its area (sum m / all units)."""

    mask: torch.Tensor  # (1, 1, box height, box width)
    rows: slice
    cols: slice
    scale: float
    area: float

    @functools.cached_property
    def weights(self) -> torch.Tensor:
        """The guide over the box as a column (1, n, 1), to weight the features' rows."""
        return self.mask.reshape(1, -1, 1)

    @classmethod
    def of(cls, mask: torch.Tensor) -> Guide | None:
        """The guide of (1, 1, h, w) weights; None when the region covers less than MIN_UNITS units."""
        total = float(mask.sum())
        if total < MIN_UNITS:
            return None
        # Only the box around the region is weighted and multiplied: for regions that split the
        # image, the Grams of all regions cost about one plain Gram, not one each.
        ys, xs = torch.nonzero(mask[0, 0] > 0, as_tuple=True)
        rows, cols = slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1)
        box = mask[..., rows, cols].contiguous()
        units = mask.shape[-2] * mask.shape[-1]
        return cls(box, rows, cols, box.shape[-2] * box.shape[-1] / float(box.pow(2).sum()), total / units)


def guided_gram(features: torch.Tensor, guide: Guide) -> torch.Tensor:
    """(F m)(F m)^T / (C sum m^2), (1, C, C) float32: `gram()` of the weighted features in the
    region's box, rescaled from an average over the box to one over the region."""
    return guided_grams(features, [guide])[0]


def guided_grams(features: torch.Tensor, guides: Sequence[Guide]) -> tuple[torch.Tensor, ...]:
    """`guided_gram` of each guide over the same (1, C, h, w) features, in one autograd node:
    the backward writes one gradient of the features' size and layout, adding each region's
    part into its box (a slice per region would allocate, fill and add a whole-map gradient
    for each: measured a third of a two-region iteration's extra cost)."""
    return _GuidedGrams.apply(features, tuple(guides))


class _GuidedGrams(torch.autograd.Function):
    """G_r = P_r^T P_r * scale_r / (C n_r), P_r = F_r * m_r: the features in region r's box as
    rows (n_r, C), each row weighted by the region's guide there. The products run in float32
    (see `nst.runtime.losses.gram`).

    Backward: dF_r = P_r (dG_r + dG_r^T) * scale_r / (C n_r) * m_r (the guide only weights
    rows), one matrix product and one multiply per region from the P_r kept by the forward,
    added into one gradient of the features' size and layout."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, guides: tuple[Guide, ...]) -> tuple[torch.Tensor, ...]:
        boxes = [_weighted_rows(features, guide) for guide in guides]  # P_r, (1, n, C) each
        ctx.save_for_backward(*boxes)  # for backward instead of the features (about their size)
        ctx.guides, ctx.shape, ctx.dtype = guides, features.shape, features.dtype
        ctx.memory_format = (
            torch.channels_last
            if features.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        out = []
        for guide, box in zip(guides, boxes):
            rows = box.float()  # (1, n, C)
            out.append(torch.bmm(rows.transpose(1, 2), rows) * (guide.scale / rows[0].numel()))  # (1, C, C)
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor, None]:
        shape, c = ctx.shape, ctx.shape[1]
        result: torch.Tensor | None = None
        for guide, box, grad in zip(ctx.guides, ctx.saved_tensors, grads):
            if grad is None:
                continue
            rows = box.float()  # (1, n, C)
            sym = (grad + grad.transpose(1, 2)) * (guide.scale / rows[0].numel())  # (1, C, C)
            d_rows = torch.bmm(rows, sym).mul_(guide.weights)  # (1, n, C)
            box_h, box_w = guide.mask.shape[-2:]
            d_box = d_rows.reshape(1, box_h, box_w, c).permute(0, 3, 1, 2).to(ctx.dtype)  # (1, C, box_h, box_w)
            if result is None and d_box.shape == shape:
                result = d_box  # the whole map: no zeros to fill and add to
            else:
                if result is None:
                    result = torch.empty(shape, dtype=ctx.dtype, device=d_box.device, memory_format=ctx.memory_format)
                    result.zero_()
                result[..., guide.rows, guide.cols] += d_box
        if result is None:  # no region's Gram reached the loss
            result = torch.zeros(shape, dtype=ctx.dtype, device=ctx.saved_tensors[0].device)
        return result, None


def _weighted_rows(features: torch.Tensor, guide: Guide) -> torch.Tensor:
    """P = the features of a guide's box times its weights, as rows (1, n, C): the product is
    made in the features' layout, so in channels-last memory (the loop's) the rows are a view."""
    product = features[..., guide.rows, guide.cols] * guide.mask.to(features.dtype)  # (1, C, box_h, box_w)
    _, c, h, w = product.shape
    return product.permute(0, 2, 3, 1).reshape(1, h * w, c)


def region_guides(
    masks: Sequence[torch.Tensor], table: Sequence[Layer], layers: Sequence[str], *, mode: MaskMode
) -> list[dict[str, Guide]]:
    """Per region, its guide at each layer where it is not empty."""
    found = []
    for mask in masks:
        guides = propagate(mask, table, layers, mode=mode)
        found.append({layer: g for layer in layers if (g := Guide.of(guides[layer])) is not None})
    return found


def warn_empty(guides: Sequence[Mapping[str, Guide]], layers: Sequence[str], names: Sequence[str]) -> None:
    """A one-line warning per region left out at some layers; an error for a region left out
    at every layer."""
    for found, name in zip(guides, names):
        missing = [layer for layer in layers if layer not in found]
        if len(missing) == len(layers):
            raise ConfigError(
                f"the region of {name} is too small for every style layer (under {MIN_UNITS:g} unit of each map); "
                "make it larger, use --mask-mode soft, or a larger --size"
            )
        if missing:
            warnings.warn(
                f"the region of {name} is too small for {', '.join(missing)} (each unit there sees many pixels); "
                "that style is left out at those layers",
                NSTWarning,
                stacklevel=3,
            )


@dataclass(frozen=True)
class RegionStyleTerm:
    """style_weight * sum_l w_l * sum_r a_rl * n_rl * mean((G_rl - A_rl)^2): region r's guided
    Gram at layer l against its style's target, weighted by the region's area a_rl there.
    n_rl is 1 (the reference's scale) or 1 / mean(A_rl^2) (`norms`, the balanced scale).
    Gatys et al. weight regions by 1/R instead; the area keeps every pixel's pull equal."""

    targets: Sequence[StyleGrams]  # per region: its style's Grams
    guides: Sequence[Mapping[str, Guide]]  # per region, by layer (absent: empty there)
    layer_weights: Mapping[str, float]  # layer -> w_l, summing to 1
    weight: float
    norms: Sequence[Mapping[str, float]] | None = None  # per region, layer -> n_rl
    name: str = "style"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.layer_weights) if self.weight > 0 and self.targets else ()

    def __call__(self, image: torch.Tensor, features: Features) -> torch.Tensor:
        loss = image.new_zeros(())
        for layer in self.layers:
            present = [r for r, guides in enumerate(self.guides) if layer in guides]
            computed = guided_grams(features[layer], [self.guides[r][layer] for r in present])
            per_region = image.new_zeros(())
            for r, g in zip(present, computed):
                norm = self.norms[r][layer] if self.norms else 1.0
                per_region = per_region + self.guides[r][layer].area * norm * style_loss(g, self.targets[r][layer])
            loss = loss + self.layer_weights[layer] * per_region
        return self.weight * loss


def mask_tensor(mask: np.ndarray, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """A (H, W) mask as (1, 1, h, w) at `size` (bilinear, antialiased: linear, so masks that
    sum to at most 1 still do, and a constant mask stays constant)."""
    tensor = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None].to(device)
    if tuple(tensor.shape[-2:]) == size:
        return tensor
    return F.interpolate(tensor, size=size, mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)


def guided_style_grams(
    model: VGGMirror, image: torch.Tensor, mask: np.ndarray, layers: Sequence[str], *, mode: MaskMode
) -> dict[str, torch.Tensor]:
    """The Grams of only part of a style image (1, 3, H, W): `mask` over it, guided the same
    way as the content's regions. (1, C, C) per layer."""
    size = (int(image.shape[-2]), int(image.shape[-1]))
    guides = region_guides([mask_tensor(mask, size, image.device)], model.table, layers, mode=mode)[0]
    if len(guides) < len(layers):
        missing = [layer for layer in layers if layer not in guides]
        raise ConfigError(
            f"the style-side mask leaves too little of the style image for {', '.join(missing)}; "
            "give it more area or a larger style (--style-scales)"
        )
    with torch.no_grad():
        features = model(image, layers=tuple(layers))
    return {layer: guided_gram(features[layer].float(), guides[layer]) for layer in layers}


@dataclass(frozen=True)
class StageGuides:
    """A coarse-to-fine stage's regions: each style's guides by layer (None: every style over
    the whole image), and the content mask by content layer (None: everywhere)."""

    styles: Sequence[Mapping[str, Guide]] | None
    content: Mapping[str, torch.Tensor] | None


def stage_guides(
    masks: RegionMasks,
    size: tuple[int, int],
    model: VGGMirror,
    *,
    style_layers: Sequence[str],
    content_layers: Sequence[str],
) -> StageGuides:
    """The regions of `masks` for a stage of `size` (height, width): the style masks carried to
    the style layers in the masks' mode, the content mask (always soft) to the content layers."""
    device = model.mean_pixel.device
    styles = None
    if masks.styles is not None:
        tensors = [mask_tensor(m, size, device) for m in masks.styles]
        styles = region_guides(tensors, model.table, style_layers, mode=masks.mode)
    content = None
    if masks.content is not None and content_layers:
        content = propagate(mask_tensor(masks.content, size, device), model.table, content_layers, mode="soft")
    return StageGuides(styles, content)


def checked_regions(
    regions: Regions | None,
    model: VGGMirror,
    *,
    config: StylizeConfig,
    size: tuple[int, int],
    names: Sequence[str],
    targets: bool,
) -> RegionMasks | None:
    """`regions` read at the content's `size` and checked, with a warning for each region too
    small for some style layer (an error for one too small for all); None without regions."""
    if regions is None or not regions.active:
        return None
    resolved = resolve(regions, size=size, names=names, blended=config.style_blend_weights is not None, targets=targets)
    if resolved.styles is not None:
        guides = stage_guides(resolved, size, model, style_layers=STYLE_LAYERS, content_layers=())
        warn_empty(guides.styles or (), STYLE_LAYERS, names)
    return resolved
