"""A style per region (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style
Transfer", section 4): guided Gram matrices over masks that are carried through the network.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Union

import numpy as np
import torch
import torch.nn.functional as F

from nst.errors import ConfigError, ImageError, NSTWarning
from nst.models.layers import Layer
from nst.runtime.losses import gram, style_loss

if TYPE_CHECKING:
    from PIL.Image import Image

    from nst.runtime.mirror import VGGMirror
    from nst.runtime.objective import Features, StyleGrams

MaskMode = Literal["soft", "inside"]  # soft: averaged guides; inside: eroded to units seeing only the region
# A mask: an image file (white: 1), a PIL image, or an (H, W) array of weights in [0, 1].
MaskLike = Union[str, Path, "Image", np.ndarray]

# A region smaller than this many units of a layer's map is left out at that layer: its
# Gram would be an average over less than one feature vector.
MIN_UNITS = 1.0
# Masks may sum to a little over 1 where resizing or a JPEG's noise rounds up.
OVERLAP_TOLERANCE = 1.02
# Colours of a label map closer than this (the largest channel difference, of 255) are one
# region: JPEG noise and antialiased edges make in-between colours.
LABEL_TOLERANCE = 24
# A colour must cover this share of a label map to seed a region; rarer colours snap to the
# nearest seed.
LABEL_MIN_SHARE = 0.002
# A greyscale label map whose values are all below this is an index map (0, 1, 2, ...).
INDEX_LIMIT = 32


@dataclass(frozen=True)
class Regions:
    """Where each style applies, and the content: what --style-mask, --labels, --content-mask
    and --style-region give, for `Stylizer.stylize(..., regions=...)`.

    `style_masks`: one mask per style (their sum at most 1 everywhere; where it is below 1
    the rest is left unstyled). `labels`: instead, a label map whose distinct colours are the
    regions, taking the styles in ascending order of colour. `content_mask`: where the
    content term applies (default everywhere). `style_regions`: style index (0-based) -> a mask
    over that style image, so only that part of it makes the region's target Grams.
    """

    style_masks: Sequence[MaskLike] = ()
    labels: MaskLike | None = None
    content_mask: MaskLike | None = None
    style_regions: Mapping[int, MaskLike] = field(default_factory=dict)
    mode: MaskMode = "soft"

    def __post_init__(self) -> None:
        if self.style_masks and self.labels is not None:
            raise ConfigError("give --style-mask per style or --labels, not both")

    @property
    def styled(self) -> bool:
        """True when the styles are restricted to regions of the content."""
        return bool(self.style_masks) or self.labels is not None

    @property
    def active(self) -> bool:
        return self.styled or self.content_mask is not None or bool(self.style_regions)


@dataclass(frozen=True)
class RegionMasks:
    """Regions resolved for one content image: float32 (H, W) masks at the content's size."""

    styles: tuple[np.ndarray, ...] | None  # one per style, or None: every style everywhere
    content: np.ndarray | None
    mode: MaskMode
    names: tuple[str, ...] = ()  # how messages name each style's region


def read_mask(source: MaskLike, size: tuple[int, int], *, what: str) -> np.ndarray:
    """A mask as float32 (height, width) weights in [0, 1] at `size`: a greyscale reading of an
    image (white 1, black 0; 16-bit and float images by their range), resized bilinearly."""
    from PIL import Image as PILImage

    if isinstance(source, np.ndarray):
        array = np.asarray(source, dtype=np.float32)
        if array.ndim != 2 or not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ConfigError(f"{what} must be a 2-D array of weights between 0 and 1")
        image = PILImage.fromarray(array, "F")
    else:
        image = _open_mask(source, what)
    if (image.height, image.width) != size:
        image = image.resize((size[1], size[0]), PILImage.Resampling.BILINEAR)
    return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)


def _open_mask(source: str | Path | Image, what: str) -> Image:
    """An image as mode F in [0, 1]."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{what} not found: {path}")
        try:
            with PILImage.open(path) as opened:
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"{what} {path} is not a readable image ({exc}); give a greyscale PNG") from None
    else:
        image = source
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float32) / 65535.0
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        array = array / 255.0 if array.max(initial=0) > 1 else array
    else:
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = PILImage.alpha_composite(
                PILImage.new("RGBA", image.size, (0, 0, 0, 255)), image.convert("RGBA")
            )  # transparent: outside the region
        array = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return PILImage.fromarray(np.ascontiguousarray(array, dtype=np.float32), "F")


def label_masks(
    source: MaskLike, size: tuple[int, int], *, what: str = "label map"
) -> tuple[list[np.ndarray], list[str]]:
    """The regions of a label map as masks at `size`, in ascending order of colour (or index),
    and each region's colour as #rrggbb. In a colour map, colours within LABEL_TOLERANCE of a
    region's colour, mixes of two regions' colours, and colours too rare to be a region snap to
    the nearest region's colour; in an index map (palette, or greyscale under INDEX_LIMIT)
    every value is a region."""
    from PIL import Image as PILImage

    if isinstance(source, np.ndarray):
        labels = np.asarray(source)
        if labels.ndim != 2:
            raise ConfigError(f"{what} must be a 2-D array of region indices")
        pixels, exact = np.repeat(labels.astype(np.int64)[..., None], 3, axis=2), True
    else:
        image = source if not isinstance(source, (str, Path)) else _open_labels(Path(source), what)
        # Palette images and greyscale ones with values under INDEX_LIMIT are index maps: every
        # value is a region, however close to another.
        exact = image.mode == "P" or (image.mode == "L" and int(np.asarray(image).max(initial=0)) < INDEX_LIMIT)
        pixels = (
            np.repeat(np.asarray(image, dtype=np.int64)[..., None], 3, axis=2)
            if exact and image.mode == "P"
            else (np.asarray(image.convert("RGB"), dtype=np.int64))
        )
    flat = pixels.reshape(-1, 3)
    colours, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    seeds = colours if exact else _seed_colours(colours, counts, flat.shape[0])
    distance = np.abs(colours[:, None, :] - seeds[None, :, :]).max(axis=2)  # (colours, seeds)
    nearest = distance.argmin(axis=1)[inverse.reshape(-1)].reshape(pixels.shape[:2])
    masks = []
    for index in range(len(seeds)):
        region = PILImage.fromarray((nearest == index).astype(np.float32), "F")
        if (region.height, region.width) != size:
            region = region.resize((size[1], size[0]), PILImage.Resampling.BILINEAR)
        masks.append(np.clip(np.asarray(region, dtype=np.float32), 0.0, 1.0))
    return masks, [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in seeds.tolist()]


def _open_labels(path: Path, what: str) -> Image:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if not path.is_file():
        raise ImageError(f"{what} not found: {path}")
    try:
        with PILImage.open(path) as opened:
            opened.load()
            return opened.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(
            f"{what} {path} is not a readable image ({exc}); give a PNG with a colour per region"
        ) from None


def _seed_colours(colours: np.ndarray, counts: np.ndarray, total: int) -> np.ndarray:
    """The regions' colours, in ascending order: common colours, most common first, that are
    neither within LABEL_TOLERANCE of a region's colour nor a mix of two (an antialiased or
    JPEG edge between regions lies on the segment between their colours)."""
    order = np.argsort(-counts, kind="stable")
    seeds: list[np.ndarray] = []
    for i in order:
        if seeds and counts[i] < LABEL_MIN_SHARE * total:
            break
        colour = colours[i].astype(np.float64)
        near = any(np.abs(colour - s).max() <= LABEL_TOLERANCE for s in seeds)
        mixed = any(
            _segment_distance(colour, a, b) <= LABEL_TOLERANCE for k, a in enumerate(seeds) for b in seeds[k + 1 :]
        )
        if not near and not mixed:
            seeds.append(colour)
    return np.array(sorted(seeds, key=lambda c: tuple(c.tolist())), dtype=np.int64)


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The largest channel difference between `point` and the nearest point of segment a-b."""
    direction = b - a
    t = float(np.clip(np.dot(point - a, direction) / max(float(np.dot(direction, direction)), 1e-12), 0.0, 1.0))
    return float(np.abs(point - (a + t * direction)).max())


def check_partition(masks: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Style masks must sum to at most 1: each pixel's styles share it."""
    total = np.sum(masks, axis=0)
    worst = float(total.max(initial=0.0))
    if worst > OVERLAP_TOLERANCE:
        y, x = np.unravel_index(int(total.argmax()), total.shape)
        raise ConfigError(
            f"the style masks overlap: they sum to {worst:.2f} at x={x}, y={y} of the resized content "
            f"({', '.join(names)}); make them sum to at most 1 (soft values share a pixel)"
        )
    for mask, name in zip(masks, names):
        if float(mask.sum()) <= 0:
            raise ConfigError(f"the region of {name} is empty (its mask is black everywhere); give it some area")


# --- carrying masks through the network -----------------------------------------------------


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
