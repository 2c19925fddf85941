"""The temporal term of Ruder et al. (2016): the image held to earlier frames' outputs warped into it,
weighted per pixel by where the warp can be trusted. A term of the objective (`Stylizer.stylize(...,
extra_terms=[term])`); the loop does not change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nst.runtime.objective import Features, tensor_key


@dataclass(frozen=True)
class TemporalTarget:
    """One earlier frame's output warped into the current frame, with its per-pixel weight."""

    warped: torch.Tensor  # (1, 3, H, W), 0-255: omega, `warp.warp` of the earlier output
    mask: torch.Tensor  # (1, 1, H, W) in [0, 1]: c, the consistency mask (long-term: its disjoint weight)
    weight: float = 1.0  # a factor on this target's mean (the balanced scale's normalisation goes here)


@dataclass(frozen=True, eq=False)
class TemporalTerm:
    """weight * sum_j w_j * mean(c_j * (x - omega_j)^2), the mean over all 3 * H * W values (Ruder et
    al.'s eq. 7: their artistic_video_core.lua multiplies both sides by sqrt(c) under an MSE).

    It reads only the image. Under coarse to fine (`--scales`) a stage smaller than the targets gets
    them resized to its size (area averaging, the mask too), once per size and device.
    """

    targets: tuple[TemporalTarget, ...]
    weight: float
    name: str = "temporal"
    layers: tuple[str, ...] = ()
    _sized: dict[tuple, tuple[tuple[torch.Tensor, torch.Tensor], ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __call__(self, image: torch.Tensor, features: Features) -> torch.Tensor:
        loss = image.new_zeros((), dtype=torch.float32)
        for target, (warped, mask) in zip(self.targets, self._at(image)):
            error = (image.float() - warped).pow(2)  # (1, 3, h, w)
            loss = loss + target.weight * (mask * error).mean()
        return self.weight * loss

    def key(self) -> str:
        """A digest of the targets, their masks and every weight: a frame resumed from its saved state
        is held to the same warped outputs, or refused (`Term.key`)."""
        weights = ",".join(repr(t.weight) for t in self.targets)
        tensors = [tensor for t in self.targets for tensor in (t.warped, t.mask)]
        return f"{self.weight!r};{weights};{tensor_key(*tensors)}"

    def _at(self, image: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        size = (image.shape[2], image.shape[3])
        key = (size, image.device)
        if key not in self._sized:
            self._sized[key] = tuple(
                (_resized(t.warped, size, image.device), _resized(t.mask, size, image.device)) for t in self.targets
            )
        return self._sized[key]


def temporal_term(
    warped: Sequence[torch.Tensor],
    masks: Sequence[np.ndarray | torch.Tensor],
    *,
    weight: float,
    loss_scale: str = "reference",
    mean_pixel: torch.Tensor | Sequence[float] | None = None,
) -> TemporalTerm:
    """The temporal term against earlier outputs `warped` ((1, 3, H, W) each, closest first) with
    their weights `masks` ((H, W); for several frames `consistency.long_term_weights` of the masks).

    reference: Ruder et al.'s mean(c * (x - omega)^2) in 0-255 pixel units, times `weight`.
    balanced: each target's mean divided by mean((omega - mean_pixel)^2), the energy of that target as
    the network receives it (its input is the image less the mean pixel), floored at 1 for a flat
    frame: like the content term's division by mean(P^2), the term is then relative to its own
    target, so a clip's brightness and contrast do not move its balance against the other terms
    (scaling both image and target about the mean pixel leaves it unchanged), and being a mean it does
    not depend on the image size either.
    """
    if len(warped) != len(masks):
        raise ValueError(f"{len(warped)} warped outputs but {len(masks)} masks")
    if loss_scale not in ("reference", "balanced"):
        raise ValueError(f"loss_scale is reference or balanced (Stylizer.resolve settles auto), got {loss_scale!r}")
    if loss_scale == "balanced" and mean_pixel is None:
        raise ValueError("the balanced scale needs the model's mean pixel")
    targets = []
    for image, mask in zip(warped, masks):
        c = torch.as_tensor(mask, dtype=torch.float32, device=image.device)
        c = c.reshape(1, 1, *c.shape[-2:])
        if c.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"a mask of {tuple(c.shape[-2:])} for an image of {tuple(image.shape[-2:])}")
        norm = 1.0
        if loss_scale == "balanced":
            mean = torch.as_tensor(mean_pixel, dtype=torch.float32, device=image.device).reshape(1, 3, 1, 1)
            norm = 1.0 / max(float((image.float() - mean).pow(2).mean()), 1.0)
        targets.append(TemporalTarget(warped=image.detach().float(), mask=c, weight=norm))
    return TemporalTerm(targets=tuple(targets), weight=weight)


def _resized(tensor: torch.Tensor, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    tensor = tensor.to(device)
    if tuple(tensor.shape[-2:]) == size:
        return tensor
    return F.interpolate(tensor, size=size, mode="area")
