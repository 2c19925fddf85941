"""One stylization in progress: stage by stage, the objective and optimiser of each stage, the
best image so far, what each step reports, and the state a later run can resume from."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from nst.errors import NSTError
from nst.models.layers import CONTENT_LAYERS, STYLE_LAYERS
from nst.runtime.colors import preserve_colors_array
from nst.runtime.config import StylizeConfig, applied_options
from nst.runtime.device import autocast, channels_last
from nst.runtime.guides import stage_guides
from nst.runtime.images import Rendered, resized, resized_pixels, to_array
from nst.runtime.loop import Best, GracefulInterrupt, NonFiniteLoss, ObjectiveFn, Step, optimize
from nst.runtime.mirror import VGGMirror
from nst.runtime.objective import Objective, StyleGrams, objective_terms
from nst.runtime.optim import Optimizer, make_optimizer
from nst.runtime.plan import Plan, Stage, StartImage, initial_image
from nst.runtime.state import RunState
from nst.version import nst_version

if TYPE_CHECKING:
    from PIL.Image import Image


class StylizeInterrupted(KeyboardInterrupt):
    """Ctrl-C during a stylization; carries the best image so far (at the output size; as
    float pixels in `rendered`) and, when the run stopped between iterations, its state."""

    def __init__(
        self, image: Image, iteration: int, state: RunState | None = None, *, rendered: Rendered | None = None
    ):
        super().__init__(f"interrupted at iteration {iteration}")
        self.image, self.iteration, self.state, self.rendered = image, iteration, state, rendered


class StylizeDiverged(NSTError):
    """The loss stopped being finite; carries the best image seen before that."""

    def __init__(self, message: str, image: Image | None, iteration: int, *, rendered: Rendered | None = None):
        super().__init__(message)
        self.image, self.iteration, self.rendered = image, iteration, rendered


class Run:
    """A stylization of one content image, stage by stage (optionally from a saved state)."""

    def __init__(
        self,
        model: VGGMirror,
        config: StylizeConfig,
        plan: Plan,
        *,
        callback: Callable[[Step], None] | None = None,
        resume: RunState | None = None,
        start: float | None = None,
    ):
        self.model, self.config, self.plan, self.callback, self.resume = model, config, plan, callback, resume
        self.start = time.perf_counter() if start is None else start
        self.offset = resume.elapsed if resume is not None else 0.0  # seconds spent before a resume
        self.device = model.mean_pixel.device
        self.full_size = (plan.content.height, plan.content.width)
        self.generator = torch.Generator()
        if resume is not None:
            resume.check_size({stage.index: stage.size for stage in plan.stages})
            self.generator.set_state(resume.generator)
        elif config.seed is not None:
            self.generator.manual_seed(config.seed)
        else:
            self.generator.seed()
        self.image: torch.Tensor | None = None
        self.optimizer: Optimizer | None = None
        self.stage: Stage = plan.stages[0]
        self.best = self.previous = Best()
        self.history: list[dict] = list(resume.history) if resume is not None else []
        self.reached = resume.iteration if resume is not None else 0  # the last iteration done
        self.boundary = False  # between iterations: the state is whole

    def run(self) -> Rendered:
        """Every stage in turn; the best image of the final stage, at the output size."""
        try:
            with GracefulInterrupt() as interrupt:
                for stage, grams in zip(self.plan.stages, self.plan.style_grams):
                    if self.resume is None or stage.index >= self.resume.stage:
                        self._run_stage(stage, grams, interrupt)
        except KeyboardInterrupt:
            # Before a new stage's first evaluation, the previous stage's best is the best.
            kept = self.best.image if self.best.image is not None else self.previous.image
            if kept is None:
                raise
            # After the last iteration there is nothing to resume: the best image is the run's result.
            resumable = self.boundary and self.image is not None and self.reached < self.config.iterations
            state = self.state() if resumable else None
            rendered = self.render(kept)
            raise StylizeInterrupted(rendered.image, self.reached, state, rendered=rendered) from None
        except NonFiniteLoss as stop:
            kept = self.best.image if self.best.image is not None else self.previous.image
            best = self.render(kept) if kept is not None else None
            raise StylizeDiverged(
                f"{stop}; stopped and kept the best image before it. Lower the weights"
                f"{' or --learning-rate' if self.config.optimizer == 'adam' else ', or try --optimizer adam'}",
                best.image if best is not None else None,
                stop.iteration,
                rendered=best,
            ) from None
        return self.render(self._kept())

    def _run_stage(self, stage: Stage, style_grams: Sequence[StyleGrams], interrupt: GracefulInterrupt) -> None:
        self.stage = stage
        content = image_tensor(self.plan.content, stage.size, self.device)  # (1, 3, h, w)
        resumed = self.resume is not None and stage.index == self.resume.stage
        if resumed:
            assert self.resume is not None
            image, previous_size = self.resume.image.to(self.device), stage.size
        elif self.image is None:
            start = start_tensor(self.plan.initial, stage.size, self.device)
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
        self.image = image = (image.detach().clone() if resumed else image.detach()).requires_grad_(True)
        precision, layout = autocast(self.device, self.config.precision), channels_last(self.device)
        regions = self.plan.regions
        guides = (
            stage_guides(regions, stage.size, self.model, style_layers=STYLE_LAYERS, content_layers=CONTENT_LAYERS)
            if regions is not None
            else None
        )
        terms = objective_terms(self.model, content, style_grams, self.plan.blend, self.config, precision=precision,
                                channels_last=layout, guides=guides)  # fmt: skip
        objective = Objective(
            self.model,
            [*terms, *self.plan.extra_terms],
            precision=precision,
            channels_last=layout,
            checkpoint=self.config.low_memory,
        )
        fn: ObjectiveFn = objective
        if self.config.compile:
            # Fixed shapes within a stage; on CUDA "max-autotune" also captures CUDA graphs.
            fn = torch.compile(objective, mode="max-autotune" if self.device.type == "cuda" else None, dynamic=False)
        ratio = (stage.size[0] * stage.size[1]) / (previous_size[0] * previous_size[1])
        self.optimizer = make_optimizer(image, self.config, previous=self.optimizer, pixel_ratio=ratio)
        self.previous, self.best = self.best, Best()
        first, iterations = stage.first, stage.iterations
        if resumed:
            assert self.resume is not None
            self.optimizer.load_state_dict(self.resume.optimizer)
            best = self.resume.best_image
            self.best = Best(self.resume.best_loss, best.to(self.device) if best is not None else None)
            first, iterations = self.resume.iteration + 1, stage.first + stage.iterations - 1 - self.resume.iteration

        def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
            self.boundary = False  # from here until the step is recorded, the state is in flux
            return fn(x)

        def on_step(iteration: int, total: float, values: dict[str, float]) -> None:
            elapsed = self.offset + time.perf_counter() - self.start
            step = Step(iteration, self.config.iterations, stage.index, stage.size, total, values, elapsed,
                        preview=self._preview())  # fmt: skip
            self.history.append(step.row())
            self.reached, self.boundary = iteration, True
            if self.callback is not None:
                every = self.config.checkpoint_iterations
                if every is not None and iteration % every == 0 and iteration < self.config.iterations:
                    snapshot = step.preview() if step.preview is not None else None  # the step's image, now
                    # The state shares the run's tensors: the callback saves it before the next step.
                    image = snapshot.image if snapshot is not None else None
                    step = dataclasses.replace(step, image=image, rendered=snapshot, state=self.state())
                self.callback(step)
            interrupt.check()

        if iterations > 0:
            optimize(
                image, evaluate, self.optimizer, iterations=iterations, first=first, best=self.best, on_step=on_step
            )

    def state(self) -> RunState:
        """The run as it stands between two iterations (tensors shared, not copied: save it
        before the next iteration)."""
        assert self.image is not None and self.optimizer is not None
        return RunState(
            config=applied_options(self.config),
            model=self.model.info.weights_sha256,
            pooling=self.model.pooling,
            content=self.plan.content_key,
            styles=self.plan.styles_key,
            extras=self.plan.extras_key,
            stage=self.stage.index,
            iteration=self.reached,
            elapsed=self.offset + time.perf_counter() - self.start,
            image=self.image.detach(),
            best_loss=self.best.loss,
            best_image=self.best.image,
            optimizer=self.optimizer.state_dict(),
            generator=self.generator.get_state(),
            history=list(self.history),
            nst_version=nst_version(),
        )

    def _preview(self) -> Callable[[], Rendered] | None:
        """`render` of the best image so far, to call later from any thread (each better iterate
        replaces the tensor, never changes it in place); None before the first."""
        kept = self.best.image
        return functools.partial(self.render, kept) if kept is not None else None

    def _kept(self) -> torch.Tensor:
        # No finite loss was ever seen (a diverged run): keep the last iterate rather than nothing.
        assert self.image is not None
        return self.best.image if self.best.image is not None else self.image.detach()

    def render(self, tensor: torch.Tensor) -> Rendered:
        """A (1, 3, h, w) image as the output: clipped, at the full size, recoloured; in float,
        so that a 16-bit writer gets more than the 8-bit image (`Rendered.image`) holds."""
        pixels = np.clip(tensor.detach().float().cpu().numpy()[0].transpose(1, 2, 0), 0.0, 255.0)  # (h, w, 3)
        pixels = resized_pixels(pixels, self.full_size)
        if self.config.preserve_colors:
            pixels = preserve_colors_array(pixels, self.plan.content, self.config.preserve_colors)
        return Rendered(np.clip(pixels, 0.0, 255.0).astype(np.float32))


def image_tensor(image: Image, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """`image` resized to `size` (height, width) as (1, 3, H, W) 0-255 on `device`."""
    return torch.from_numpy(to_array(resized(image, size))).to(device)  # (1, 3, H, W)


def start_tensor(initial: StartImage | None, size: tuple[int, int], device: torch.device) -> torch.Tensor | None:
    """The plan's start image at a stage's `size` as (1, 3, H, W) 0-255 on `device` (None: noise). A
    tensor is resized in float (area averaging down, bicubic up), never through 8 bits."""
    if initial is None:
        return None
    if not isinstance(initial, torch.Tensor):
        return image_tensor(initial, size, device)
    tensor = initial.to(device)
    if tuple(tensor.shape[2:]) == size:
        return tensor
    smaller = size[0] * size[1] < tensor.shape[2] * tensor.shape[3]
    if smaller:
        return F.interpolate(tensor, size=size, mode="area")
    return F.interpolate(tensor, size=size, mode="bicubic", align_corners=False)
