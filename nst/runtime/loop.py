"""The optimiser loop: step an image through an objective, keep the best iterate, report each step.

It never prints or saves: each iteration goes to `on_step(iteration, total, terms)`. A loss
that is not finite stops it (`NonFiniteLoss`); `GracefulInterrupt` turns Ctrl-C into a stop
at the end of the current iteration, where the run's state is whole.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import torch

from nst.runtime.optim import Optimizer

if TYPE_CHECKING:
    from PIL.Image import Image

    from nst.runtime.images import Rendered
    from nst.runtime.state import RunState

# objective(image) -> (total, {term name: value}), scalar tensors.
ObjectiveFn = Callable[[torch.Tensor], "tuple[torch.Tensor, Mapping[str, torch.Tensor]]"]
# on_step(iteration, total, {term name: value}) after each iteration.
StepFn = Callable[[int, float, "dict[str, float]"], None]


@dataclass(frozen=True)
class Step:
    """One optimiser iteration, as reported to the callback. Losses are the weighted terms of
    the objective, evaluated at the image the step started from."""

    iteration: int  # 1-based, counted over all stages
    iterations: int  # the run's total
    stage: int  # coarse-to-fine stage, 0-based
    size: tuple[int, int]  # (height, width) optimised at this stage
    total: float
    terms: Mapping[str, float]  # each term's weighted value, by name (content, style, tv, ...)
    elapsed: float  # seconds since the run started
    image: Image | None = None  # the best image so far, at checkpoint iterations only
    state: RunState | None = None  # the run's state, at checkpoint iterations only (save it in the callback)
    rendered: Rendered | None = None  # `image` as float pixels (16-bit writers), with it
    # `rendered` on demand, at every iteration: the same rendering of the best image so far, done
    # only when called and from any thread (a live view calls it when it shows a frame, so the
    # loop never pays for it); None before the first.
    preview: Callable[[], Rendered] | None = None

    def row(self) -> dict[str, Any]:
        """The step as a JSON row (the loss log, a run state's history)."""
        return {
            "iteration": self.iteration,
            "stage": self.stage,
            "size": list(self.size),
            "elapsed": self.elapsed,
            "total": self.total,
            "terms": dict(self.terms),
        }


class NonFiniteLoss(ArithmeticError):
    """The objective gave inf or nan at `iteration` (the image it started from is discarded)."""

    def __init__(self, iteration: int, value: float):
        super().__init__(f"the loss became {value} at iteration {iteration}")
        self.iteration, self.value = iteration, value


class GracefulInterrupt:
    """While active (main thread only), the first Ctrl-C only sets `requested`; `check()` then
    raises KeyboardInterrupt at an iteration boundary. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: object = None

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, kind: type | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


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
        if not math.isfinite(value):
            raise NonFiniteLoss(iteration, value)
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
