"""A style per region (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style
Transfer", section 4), as users draw it: a greyscale mask per style, or a label map with a
colour per region; a content mask; masks over the style images. This module reads them and
checks them; `nst.runtime.guides` carries them through the network.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from nst.errors import ConfigError, ImageError, NSTNote
from nst.runtime.config import MaskMode, StylizeConfig

if TYPE_CHECKING:
    from PIL.Image import Image

# A mask: an image file (white: 1), a PIL image, or an (H, W) array of weights in [0, 1].
MaskLike = Union[str, Path, "Image", np.ndarray]

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
    and --style-region give, for `Stylizer.stylize(..., masks=...)`.

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


def regions_of(config: StylizeConfig, styles: Sequence[str]) -> Regions | None:
    """The regions a config's options name (--style-mask, --labels, --content-mask,
    --style-region), None when it names none. `styles`: the style images as given, which
    --style-region's STYLE part may name."""
    if not (config.style_masks or config.labels or config.content_mask or config.style_regions):
        return None
    return Regions(
        style_masks=config.style_masks,
        labels=config.labels,
        content_mask=config.content_mask,
        style_regions=dict(parse_style_region(text, styles) for text in config.style_regions),
        mode=config.mask_mode,
    )


def parse_style_region(text: str, styles: Sequence[str]) -> tuple[int, str]:
    """'2:part.png' or 'starry.jpg:part.png' -> (0-based style index, mask path): STYLE is a
    style's number or its file name (the first ':' that gives a known style splits them)."""
    for cut in (i for i, char in enumerate(text) if char == ":"):
        left, right = text[:cut], text[cut + 1 :]
        if not right:
            continue
        if left.isdigit() and 1 <= int(left) <= len(styles):
            return int(left) - 1, right
        named = [i for i, style in enumerate(styles) if left in (style, Path(style).name)]
        if len(named) == 1:
            return named[0], right
    raise ConfigError(
        f"--style-region {text!r} must be STYLE:MASK, STYLE being a style's number (1 to {len(styles)}) "
        "or its file name"
    )


def resolve(
    regions: Regions, *, size: tuple[int, int], names: Sequence[str], blended: bool, targets: bool
) -> RegionMasks:
    """The masks of `regions` read at the content's `size` (height, width) and checked: one per
    style, summing to at most 1, none empty. `names`: the styles, for messages; `blended`:
    --style-blend-weights was given; `targets`: the styles are precomputed Grams."""
    if blended and regions.styled:
        raise ConfigError(
            "--style-blend-weights blends the styles over the whole image; with --style-mask or --labels "
            "each style has its own region: leave it out"
        )
    style_masks: list[np.ndarray] | None = None
    if regions.style_masks:
        if len(regions.style_masks) != len(names):
            raise ConfigError(
                f"--style-mask is given {len(regions.style_masks)} time(s) for {len(names)} style(s); "
                "give one mask per style, in the styles' order"
            )
        style_masks = [read_mask(m, size, what="--style-mask") for m in regions.style_masks]
    elif regions.labels is not None:
        style_masks, colours = label_masks(regions.labels, size, what="--labels")
        if len(style_masks) != len(names):
            raise ConfigError(
                f"--labels has {len(style_masks)} region(s) ({', '.join(colours)}) for {len(names)} style(s); "
                "give one style per region, in ascending order of colour"
            )
        mapping = ", ".join(f"{colour} -> {name}" for colour, name in zip(colours, names))
        warnings.warn(f"--labels: the regions take the styles in ascending colour: {mapping}", NSTNote, stacklevel=3)
    if style_masks is not None:
        check_partition(style_masks, names)
    content = None
    if regions.content_mask is not None:
        content = read_mask(regions.content_mask, size, what="--content-mask")
        if float(content.sum()) <= 0:
            raise ConfigError("--content-mask is black everywhere; the content would count nowhere: leave it out")
    if regions.style_regions:
        if targets:
            raise ConfigError("--style-region needs the style images, not --targets (targets hold whole images' Grams)")
        for index in regions.style_regions:
            if not 0 <= index < len(names):
                raise ConfigError(f"--style-region names style {index + 1}, but there are {len(names)}")
    return RegionMasks(tuple(style_masks) if style_masks else None, content, regions.mode, tuple(names))


def masks_key(masks: RegionMasks, style_regions: Mapping[int, MaskLike]) -> str:
    """A digest of resolved regions, for what a run state belongs to."""
    digest = hashlib.sha1(masks.mode.encode())
    for mask in (*(masks.styles or ()), *([masks.content] if masks.content is not None else [])):
        digest.update(np.ascontiguousarray(mask, dtype=np.float32).tobytes())
    for index, source in sorted(style_regions.items(), key=lambda item: item[0]):
        digest.update(f"{index}:".encode())
        if isinstance(source, (str, Path)):
            digest.update(str(source).encode())
        elif isinstance(source, np.ndarray):
            digest.update(np.ascontiguousarray(source).tobytes())
        else:
            digest.update(source.tobytes())
    return digest.hexdigest()[:16]
