"""The optimiser loop: step an image through an objective, keep the best iterate, report each step.

It never prints or saves: each iteration goes to `on_step(iteration, total, terms)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from nst.runtime.optim import Optimizer

# objective(image) -> (total, {term name: value}), scalar tensors.
ObjectiveFn = Callable[[torch.Tensor], "tuple[torch.Tensor, Mapping[str, torch.Tensor]]"]
# on_step(iteration, total, {term name: value}) after each iteration.
StepFn = Callable[[int, float, "dict[str, float]"], None]


@dataclass
class Best:
    """The lowest-loss image seen so far (the reference outputs the best, not the last)."""

    loss: float = math.inf
    image: torch.Tensor | None = None

    def offer(self, loss: float, image: torch.Tensor) -> None:
        if loss < self.loss:
            self.loss, self.image = loss, image.detach().clone()


def optimize(
    image: torch.Tensor,
    objective: ObjectiveFn,
    optimizer: Optimizer,
    *,
    iterations: int,
    first: int = 1,
    best: Best | None = None,
    on_step: StepFn | None = None,
) -> Best:
    """Run `iterations` optimiser steps on `image` (a leaf requiring grad); return the best.

    One objective call is one forward pass and, through `backward`, one input gradient; Adam
    and L-BFGS (one evaluation per step) call it once a step. A step reports the losses of
    the image it started from, the image that `best` compares.
    """
    best = best if best is not None else Best()
    seen: list[tuple[float, Mapping[str, torch.Tensor]]] = []  # this step's evaluations

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total, terms = objective(image)
        total.backward()
        value = total.item()
        seen.append((value, terms))
        best.offer(value, image)  # the image this loss belongs to, before the update
        return total

    for iteration in range(first, first + iterations):
        seen.clear()
        optimizer.step(closure)
        if on_step is not None:
            total, terms = seen[0]
            on_step(iteration, total, {name: float(term) for name, term in terms.items()})
    return best
