"""One stylization in progress: its coarse-to-fine stages, start image, objective per stage,
the best image so far, and what each step reports. Sizes are (height, width)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from nst.runtime.colors import preserve_colors
from nst.runtime.config import Step, StylizeConfig
from nst.runtime.loop import Best, ObjectiveFn, optimize
from nst.runtime.mirror import VGGMirror
from nst.runtime.objective import Objective, StyleGrams, Term, reference_terms
from nst.runtime.optim import Optimizer, make_optimizer

if TYPE_CHECKING:
    from PIL.Image import Image

# The reference starts from N(0, 0.256^2) noise in mean-subtracted pixel space, i.e. a nearly
# flat image of the mean pixel (anishathalye/neural-style stylize.py, `tf.random_normal * 0.256`).
NOISE_STD = 0.256


@dataclass(frozen=True)
class Stage:
    """One coarse-to-fine stage: its size and its share of the iterations."""

    index: int
    size: tuple[int, int]  # (height, width)
    iterations: int
    first: int  # the number of its first iteration, counted over all stages


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


class StylizeInterrupted(KeyboardInterrupt):
    """Ctrl-C during a stylization; carries the best image so far (at the output size)."""

    def __init__(self, image: Image, iteration: int):
        super().__init__(f"interrupted at iteration {iteration}")
        self.image = image
        self.iteration = iteration


class Run:
    """A stylization of one content image, stage by stage."""

    def __init__(
        self,
        model: VGGMirror,
        config: StylizeConfig,
        content: Image,
        stages: Sequence[Stage],
        stage_grams: Sequence[Sequence[StyleGrams]],
        *,
        blend: Sequence[float],
        initial: Image | None,
        precision: Callable,
        channels_last: bool,
        extra_terms: Sequence[Term] = (),
        callback: Callable[[Step], None] | None = None,
        start: float | None = None,
    ):
        self.model, self.config, self.content, self.initial = model, config, content, initial
        self.stages, self.stage_grams = stages, stage_grams  # one list of style Grams per stage
        self.blend, self.extra_terms = blend, extra_terms
        self.precision, self.channels_last, self.callback = precision, channels_last, callback
        self.start = time.perf_counter() if start is None else start
        self.device = model.mean_pixel.device
        self.full_size = (content.height, content.width)
        self.generator = torch.Generator()
        if config.seed is not None:
            self.generator.manual_seed(config.seed)
        else:
            self.generator.seed()
        self.image: torch.Tensor | None = None
        self.optimizer: Optimizer | None = None
        self.best = self.previous = Best()
        self.reached = 0  # the last iteration reported

    def run(self) -> Image:
        """Every stage in turn; the best image of the final stage, at the output size."""
        try:
            for stage, grams in zip(self.stages, self.stage_grams):
                self._run_stage(stage, grams)
        except KeyboardInterrupt:
            # Before a new stage's first evaluation, the previous stage's best is the best.
            kept = self.best.image if self.best.image is not None else self.previous.image
            if kept is None:
                raise
            raise StylizeInterrupted(self.render(kept), self.reached) from None
        return self.render(self._kept())

    def _run_stage(self, stage: Stage, style_grams: Sequence[StyleGrams]) -> None:
        content = image_tensor(self.content, stage.size, self.device)  # (1, 3, h, w)
        if self.image is None:
            start = image_tensor(self.initial, stage.size, self.device) if self.initial is not None else None
            image = initial_image(
                content,
                start,
                noiseblend=self.config.initial_noiseblend,
                mean_pixel=self.model.mean_pixel,
                generator=self.generator,
            )
            previous_size = stage.size
        else:
            # Coarse to fine: continue from the previous stage's best, upsampled.
            image = F.interpolate(self._kept(), size=stage.size, mode="bicubic", align_corners=False)
            previous_size = (self.image.shape[2], self.image.shape[3])
        self.image = image = image.detach().requires_grad_(True)
        terms = reference_terms(self.model, content, style_grams, self.blend, self.config)
        objective = Objective(
            self.model,
            [*terms, *self.extra_terms],
            precision=self.precision,
            channels_last=self.channels_last,
            checkpoint=self.config.low_memory,
        )
        fn: ObjectiveFn = objective
        if self.config.compile:
            # Fixed shapes within a stage; on CUDA "max-autotune" also captures CUDA graphs.
            fn = torch.compile(objective, mode="max-autotune" if self.channels_last else None, dynamic=False)
        ratio = (stage.size[0] * stage.size[1]) / (previous_size[0] * previous_size[1])
        self.optimizer = make_optimizer(image, self.config, previous=self.optimizer, pixel_ratio=ratio)
        self.previous, self.best = self.best, Best()

        def on_step(iteration: int, total: float, values: dict[str, float]) -> None:
            self.reached = iteration
            if self.callback is None:
                return
            every = self.config.checkpoint_iterations
            due = every and iteration % every == 0 and iteration < self.config.iterations
            snapshot = self.render(self.best.image) if due and self.best.image is not None else None
            self.callback(
                Step(
                    iteration,
                    self.config.iterations,
                    stage.index,
                    stage.size,
                    total,
                    values,
                    time.perf_counter() - self.start,
                    snapshot,
                )
            )

        optimize(
            image, fn, self.optimizer, iterations=stage.iterations, first=stage.first, best=self.best, on_step=on_step
        )

    def _kept(self) -> torch.Tensor:
        # No finite loss was ever seen (a diverged run): keep the last iterate rather than nothing.
        assert self.image is not None
        return self.best.image if self.best.image is not None else self.image.detach()

    def render(self, tensor: torch.Tensor) -> Image:
        """A (1, 3, h, w) image as the output: clipped, rounded, at the full size, recoloured."""
        from nst.runtime.images import from_array, resized

        out = resized(from_array(tensor.detach().float().cpu().numpy()), self.full_size)
        if self.config.preserve_colors:
            out = preserve_colors(out, self.content, self.config.preserve_colors)
        return out


def image_tensor(image: Image, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """`image` resized to `size` (height, width) as (1, 3, H, W) 0-255 on `device`."""
    from nst.runtime.images import resized, to_array

    return torch.from_numpy(to_array(resized(image, size))).to(device)  # (1, 3, H, W)
