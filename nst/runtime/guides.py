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

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from nst.errors import ConfigError, NSTWarning
from nst.models.layers import Layer
from nst.runtime.config import MaskMode
from nst.runtime.losses import gram, style_loss

if TYPE_CHECKING:
    from nst.runtime.mirror import VGGMirror
    from nst.runtime.objective import Features, StyleGrams
    from nst.runtime.regions import RegionMasks

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
    """A region at one layer: its weights over the layer's units (1, 1, h, w), the scale that
    makes `gram(F m)` an area average (h w / sum m^2), and its area (mean m)."""

    mask: torch.Tensor
    scale: float
    area: float

    @classmethod
    def of(cls, mask: torch.Tensor) -> Guide | None:
        """None when the region covers less than MIN_UNITS units here."""
        total = float(mask.sum())
        if total < MIN_UNITS:
            return None
        units = mask.shape[-2] * mask.shape[-1]
        return cls(mask, units / float(mask.pow(2).sum()), total / units)


def guided_gram(features: torch.Tensor, guide: Guide) -> torch.Tensor:
    """(F m)(F m)^T / (C sum m^2), (1, C, C) float32: `gram()` of the weighted features,
    rescaled from an average over all units to one over the region."""
    return gram(features * guide.mask.to(features.dtype)) * guide.scale


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
            per_region = image.new_zeros(())
            for r, (grams, guides) in enumerate(zip(self.targets, self.guides)):
                guide = guides.get(layer)
                if guide is None:
                    continue
                norm = self.norms[r][layer] if self.norms else 1.0
                per_region = per_region + guide.area * norm * style_loss(
                    guided_gram(features[layer], guide), grams[layer]
                )
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
