"""What is decided about one image before its first iteration: the coarse-to-fine stages, the
start image, the style Grams of each stage. Sizes are (height, width)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import torch

from nst.errors import ConfigError, NSTWarning, TargetsError
from nst.models.layers import STYLE_LAYERS
from nst.runtime.config import StylizeConfig
from nst.runtime.images import as_image, image_key
from nst.runtime.losses import normalized
from nst.runtime.objective import StyleGrams, Term, tensor_key, term_key

if TYPE_CHECKING:
    from PIL.Image import Image

    from nst.runtime.regions import RegionMasks
    from nst.runtime.targets import StyleTargets

# A start image in memory: a PIL image, or a (1, 3, H, W) 0-255 float tensor.
StartImage = Union["Image", torch.Tensor]

# The reference starts from N(0, 0.256^2) noise in mean-subtracted pixel space, i.e. a nearly
# flat image of the mean pixel (anishathalye/neural-style stylize.py, `tf.random_normal * 0.256`).
NOISE_STD = 0.256
# The network pools four times before relu5_1: below this, its deepest maps are under 1 px.
MIN_SIDE = 16


@dataclass(frozen=True)
class Stage:
    """One coarse-to-fine stage: its size and its share of the iterations."""

    index: int
    size: tuple[int, int]  # (height, width)
    iterations: int
    first: int  # the number of its first iteration, counted over all stages


@dataclass(frozen=True)
class Plan:
    """One image's run, planned: inputs, stages and the style Grams each stage compares to."""

    content: Image  # at the output size
    initial: StartImage | None  # the start image, when not noise
    stages: Sequence[Stage]
    style_grams: Sequence[Sequence[StyleGrams]]  # [stage][style]
    blend: Sequence[float]  # per style, summing to 1
    content_key: str  # what the run belongs to, for resumed states
    styles_key: str
    extra_terms: Sequence[Term] = ()
    extras_key: str = ""  # the extra terms and an in-memory start image, for resumed states
    regions: RegionMasks | None = None  # where each style, and the content, apply


def start_image(initial: StartImage | None, config: StylizeConfig) -> StartImage | None:
    """The start image: `initial` when given (in memory), else `config.initial`'s file, else None (noise)."""
    if initial is None:
        return as_image(config.initial) if config.initial is not None else None
    if isinstance(initial, torch.Tensor):
        if initial.ndim != 4 or initial.shape[:2] != (1, 3):
            raise ValueError(f"a start image tensor is (1, 3, H, W), got {tuple(initial.shape)}")
        return initial.detach().float()
    return as_image(initial)


def extras_key(terms: Sequence[Term], initial: StartImage | None) -> str:
    """What a run depends on besides its config, content and styles, so that a resumed state can tell:
    the extra terms (`objective.term_key`) and a start image given in memory (a file's path is in the
    config). "" when there is neither, as states without the field read."""
    parts = [term_key(term) for term in terms]
    if initial is not None:
        parts.append("initial:" + (tensor_key(initial) if isinstance(initial, torch.Tensor) else image_key(initial)))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest() if parts else ""


def stage_sizes(size: tuple[int, int], scales: int, min_size: int) -> list[tuple[int, int]]:
    """(height, width) of each coarse-to-fine stage: long sides geometric from `min_size`
    to the full size. `scales` 0 picks one stage per octave above `min_size`."""
    h, w = size
    long_side = max(h, w)
    n = scales if scales > 0 else 1 + max(0, math.floor(math.log2(long_side / min_size)))
    if n <= 1 or long_side <= min_size:
        return [(h, w)]
    ratios = [(min_size / long_side) ** ((n - 1 - k) / (n - 1)) for k in range(n)]
    return [(max(1, round(h * r)), max(1, round(w * r))) for r in ratios[:-1]] + [(h, w)]


def plan_stages(size: tuple[int, int], iterations: int, scales: int, min_size: int) -> list[Stage]:
    """The stages with iterations to run: split evenly, the final size getting the remainder."""
    sizes = stage_sizes(size, scales, min_size)
    budgets = [iterations // len(sizes)] * len(sizes)
    budgets[-1] += iterations - sum(budgets)
    stages, first = [], 1
    for index, (shape, budget) in enumerate(zip(sizes, budgets)):
        if budget:
            stages.append(Stage(index, shape, budget, first))
            first += budget
    return stages


def initial_image(
    content: torch.Tensor,
    initial: torch.Tensor | None,
    *,
    noiseblend: float | None,
    mean_pixel: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """The start image (1, 3, H, W), 0-255, following anishathalye/neural-style: noise
    N(0, 0.256^2) in mean-subtracted space blended with the start image as
    (start - mean) * (1 - noiseblend) + noise * noiseblend. The start image is `initial` if
    given, else the content; noiseblend defaults to 0 with an initial image and 1 without."""
    base = initial if initial is not None else content
    blend = noiseblend if noiseblend is not None else (0.0 if initial is not None else 1.0)
    noise = torch.randn(base.shape, generator=generator).to(base.device) * NOISE_STD  # CPU draw: same on any device
    mean = mean_pixel.to(base.device)
    return (base - mean) * (1 - blend) + noise * blend + mean


def check_sizes(original: tuple[int, int], size: tuple[int, int], *, name: str) -> None:
    """Refuse a content image the network cannot use: under MIN_SIDE px on a side, as given
    or once resized."""
    for what, (h, w) in (("is", original), ("would be resized to", size)):
        if min(h, w) < MIN_SIDE:
            raise ConfigError(
                f"{name} {what} {w}x{h} px; the network needs at least {MIN_SIDE}x{MIN_SIDE} "
                "(it pools four times before its deepest style layer)"
                + ("" if what == "is" else "; choose a larger --size or --width")
            )


def warn_collapsed(config: StylizeConfig, size: tuple[int, int], stages: Sequence[Stage]) -> None:
    """A one-line warning when coarse to fine runs fewer stages than --scales asked for."""
    import warnings

    h, w = size
    if config.scales == 0 and max(size) <= config.min_size:  # --min-size asked for coarse to fine
        warnings.warn(
            f"--min-size {config.min_size} runs 1 stage: the content ({w}x{h} px) is no larger than it",
            NSTWarning,
            stacklevel=3,
        )
    if config.scales > 1 and len(stages) < config.scales:
        reason = (
            f"the content ({w}x{h} px) is no larger than --min-size {config.min_size}"
            if max(size) <= config.min_size
            else f"--iterations {config.iterations} leaves the coarser stages none"
        )
        warnings.warn(f"--scales {config.scales} runs {len(stages)} stage(s): {reason}", NSTWarning, stacklevel=3)


def warn_targets_size(targets: StyleTargets, scales: Sequence[float], width: int) -> None:
    """A one-line warning when precomputed Grams are of another size than this content's
    styles would be (the reference sizes each style to scale x the content's width)."""
    import warnings

    for index, scale in enumerate(scales):
        entry = next(e for e in targets.grams_for(index) if e.scale == scale)
        wanted = round(scale * width)
        if abs(entry.size[1] - wanted) > 0.1 * wanted:
            warnings.warn(
                f"the style targets were computed with style {index + 1} {entry.size[1]} px wide, but this "
                f"content ({width} px wide) would use {wanted} px: the style's scale differs; "
                f"precompute at this size to match",
                NSTWarning,
                stacklevel=3,
            )
            return


def target_grams(targets: StyleTargets, scales: Sequence[float], device: torch.device) -> list[StyleGrams]:
    """[style] -> {layer: (1, C, C)} from a targets file, at each style's scale."""
    grams: list[StyleGrams] = []
    for index, scale in enumerate(scales):
        entry = next(e for e in targets.grams_for(index) if e.scale == scale)
        grams.append({name: torch.from_numpy(entry.grams[name]).to(device)[None] for name in STYLE_LAYERS})
    return grams


def style_blend(config: StylizeConfig, n_styles: int) -> tuple[float, ...]:
    weights = config.style_blend_weights or (1.0,) * n_styles
    if len(weights) != n_styles:
        raise ConfigError(
            f"--style-blend-weights has {len(weights)} values for {n_styles} style(s); give one per style"
        )
    return normalized(weights)


def style_scales(config: StylizeConfig, n_styles: int, targets: StyleTargets | None) -> tuple[float, ...]:
    """One style scale per style; with targets, checked against the scales they hold."""
    scales = config.style_scales
    if targets is not None:
        available = sorted({entry.scale for entry in targets.entries})
        if scales is None and len(available) == 1:
            scales = (available[0],)
        scales = scales or (1.0,)
        for index, scale in enumerate(scales * n_styles if len(scales) == 1 else scales):
            if all(entry.scale != scale for entry in targets.grams_for(index)):
                raise TargetsError(
                    f"the targets have no Grams at style scale {scale:g} for style {index + 1} "
                    f"(they have {', '.join(f'{s:g}' for s in available)}); pass --style-scales to pick one"
                )
    scales = scales or (1.0,)
    if len(scales) == 1:
        return scales * n_styles
    if len(scales) != n_styles:
        raise ConfigError(
            f"--style-scales has {len(scales)} values for {n_styles} style(s); give one, or one per style"
        )
    return scales
