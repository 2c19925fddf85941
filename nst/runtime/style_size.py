"""The one warning for a style resized to a few pixels (a panorama at the default size, or a tiny
--style-scales): its deepest Gram targets are then near zero, and the run ignores most of it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from nst.errors import NSTWarning

# The network's minimum, as for contents: it pools four times, so a side under 16 px leaves
# relu5_1 a single unit or none.
MIN_STYLE_SIDE = 16


def warn_small_style(name: str, shape: tuple[int, int], scale: float) -> None:
    """A one-line warning when the style `name` at `shape` (height, width) has a side under
    MIN_STYLE_SIDE. A warning, not a refusal: the shallow layers still carry its texture."""
    h, w = shape
    if min(h, w) < MIN_STYLE_SIDE:
        warnings.warn(
            f"style {name} is resized to {w}x{h} px (style scale {scale:g}), under {MIN_STYLE_SIDE} px on a side: "
            "its deep style layers see almost nothing; use a larger --style-scales or --size, or crop it",
            NSTWarning,
            stacklevel=4,
        )


def warn_small_styles(
    names: Sequence[str], sizes: Sequence[tuple[int, int]], scales: Sequence[float], *, width: int
) -> None:
    """`warn_small_style` for each style of a run, sized as stylize sizes it for a content `width` px wide."""
    from nst.runtime.grams import style_shape  # grams imports this module at its top

    for name, size, scale in zip(names, sizes, scales):
        warn_small_style(name, style_shape(size, scale, width=width), scale)
