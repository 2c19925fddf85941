"""The stylize loop: optimise an image so its VGG features match a content photo's and its
Gram matrices match the styles' (Gatys et al. 2015), with anishathalye/neural-style's losses.

`stylize()` is the library entry point; `optimize()` is the optimiser loop, which reports
each iteration to a callback as a `Step` and never prints or saves anything itself.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence, Union

from nst.errors import ConfigError, TargetsError
from nst.models.layers import CONTENT_LAYERS, STYLE_LAYERS
from nst.runtime.colors import COLOR_MODES, preserve_colors

# torch is imported inside the functions: the CLI reads StylizeConfig's defaults for
# `nst --help`, which must stay light.
if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from nst.runtime.mirror import VGGMirror
    from nst.runtime.targets import StyleTargets

ImageLike = Union[str, Path, "Image"]
OPTIMIZERS: tuple[str, ...] = ("adam", "lbfgs")
# The reference starts from N(0, 0.256^2) noise in mean-subtracted pixel space, i.e. a nearly
# flat image of the mean pixel (anishathalye/neural-style stylize.py, `tf.random_normal * 0.256`).
NOISE_STD = 0.256


@dataclass(frozen=True)
class StylizeConfig:
    """Every option of `nst stylize` that shapes the result; defaults are the CLI's, which
    are anishathalye/neural-style's where it has the option."""

    iterations: int = 1000
    width: int | None = None  # resize the content to this width (keeping aspect); None: as is
    style_scales: tuple[float, ...] | None = None  # per style (one value: all); style width = scale * content width; None: 1.0
    content_weight: float = 5.0
    content_weight_blend: float = 1.0  # relu4_2 gets this share of the content weight, relu5_2 the rest
    style_weight: float = 500.0
    style_layer_weight_exp: float = 1.0  # style layer l (0..4) weighs exp**l, normalised to sum 1
    style_blend_weights: tuple[float, ...] | None = None  # per style, normalised to sum 1; None: equal
    tv_weight: float = 100.0
    learning_rate: float = 10.0  # Adam's step size (L-BFGS steps with 1, as torch and neural-style-pt do)
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    initial: str | Path | None = None  # start image; None: noise (or the content, with a noise blend < 1)
    initial_noiseblend: float | None = None  # share of noise in the start; None: 0 with --initial, else 1
    preserve_colors: Literal["luminance", "histogram"] | None = None
    pooling: Literal["max", "avg"] | None = None  # None: the model's own pooling
    optimizer: Literal["adam", "lbfgs"] = "lbfgs"  # measured: lower loss in the same time (README)
    seed: int | None = None
    device: str = "auto"  # auto | cpu | cuda[:N]
    scales: int = 1  # coarse-to-fine stages; 0: as many octaves as fit above min_size
    min_size: int = 128  # long side of the coarsest stage
    checkpoint_iterations: int | None = None  # Step.image carries the best image every N iterations
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # conv precision; auto: bf16 on CUDA, fp32 on CPU
    low_memory: bool = False  # activation checkpointing: ~1 more forward per iteration, far less memory
    compile: bool = False  # torch.compile the objective (slow first iteration; pays on long runs)

    def __post_init__(self) -> None:
        def need(ok: bool, option: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"--{option.replace('_', '-')} {rule}, got {getattr(self, option)!r}")

        need(self.iterations >= 1, "iterations", "must be at least 1")
        need(self.width is None or self.width >= 16, "width", "must be at least 16 pixels")
        need(not self.style_scales or all(s > 0 for s in self.style_scales), "style_scales", "must be positive")
        for name in ("content_weight", "style_weight", "tv_weight", "style_layer_weight_exp"):
            need(getattr(self, name) >= 0, name, "must not be negative")
        need(0 <= self.content_weight_blend <= 1, "content_weight_blend", "must be between 0 and 1")
        blend = self.style_blend_weights
        need(blend is None or (all(w >= 0 for w in blend) and sum(blend) > 0), "style_blend_weights",
             "must be non-negative with a positive sum")
        need(self.learning_rate > 0, "learning_rate", "must be positive")
        need(0 <= self.beta1 < 1, "beta1", "must be in [0, 1)")
        need(0 <= self.beta2 < 1, "beta2", "must be in [0, 1)")
        need(self.epsilon > 0, "epsilon", "must be positive")
        need(self.initial_noiseblend is None or 0 <= self.initial_noiseblend <= 1, "initial_noiseblend",
             "must be between 0 and 1")
        need(self.preserve_colors in (None, *COLOR_MODES), "preserve_colors", f"must be one of {', '.join(COLOR_MODES)}")
        need(self.pooling in (None, "max", "avg"), "pooling", "must be max or avg")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"), "device",
             "must be auto, cpu or cuda")
        need(self.scales >= 0, "scales", "must be 0 (auto) or more")
        need(self.min_size >= 16, "min_size", "must be at least 16 pixels")
        need(self.checkpoint_iterations is None or self.checkpoint_iterations >= 1, "checkpoint_iterations",
             "must be at least 1")
        need(self.precision in ("auto", "fp32", "bf16", "fp16"), "precision", "must be auto, fp32, bf16 or fp16")


@dataclass(frozen=True)
class Step:
    """One optimiser iteration, as reported to the callback. Losses are weighted terms of
    the objective, evaluated at the image the step started from."""

    iteration: int  # 1-based, counted over all scales
    total: float
    content: float
    style: float
    tv: float
    elapsed: float  # seconds since stylize() started
    iterations: int = 0  # the run's total
    scale: int = 0  # coarse-to-fine stage, 0-based
    size: tuple[int, int] = (0, 0)  # (width, height) optimised at this stage
    image: Any = None  # PIL image: the best so far, at checkpoint iterations only


class StylizeInterrupted(KeyboardInterrupt):
    """Ctrl-C during stylize(); carries the best image so far (at the output size)."""

    def __init__(self, image: "Image", iteration: int):
        super().__init__(f"interrupted at iteration {iteration}")
        self.image = image
        self.iteration = iteration


@dataclass
class Best:
    """The lowest-loss image seen so far (the reference outputs the best, not the last)."""

    loss: float = math.inf
    image: torch.Tensor | None = None


# objective(image) -> (total, (content, style, tv)), all scalar tensors.
Objective = Callable[["torch.Tensor"], "tuple[torch.Tensor, tuple[torch.Tensor, ...]]"]


def optimize(
    image: torch.Tensor,
    objective: Objective,
    optimizer: Any,
    iterations: int,
    callback: Callable[[Step], None] | None = None,
    best: Best | None = None,
    first: int = 1,
    start: float | None = None,
) -> Best:
    """Run `iterations` optimiser steps on `image` (a leaf requiring grad) and return the best.

    `objective(image)` returns (total, (content, style, tv)); one call is one forward and,
    through `backward`, one input gradient. Adam and L-BFGS (max_iter=1) call it once a step.
    """
    best = best if best is not None else Best()
    start = time.perf_counter() if start is None else start
    for iteration in range(first, first + iterations):
        terms: list[tuple[torch.Tensor, ...]] = []

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            total, parts = objective(image)
            total.backward()
            value = total.item()
            if not terms:
                terms.append((total.detach(), *parts))
            if value < best.loss:  # the image this loss belongs to, before the update
                best.loss, best.image = value, image.detach().clone()
            return total

        optimizer.step(closure)
        if callback is not None:
            total, content, style, tv = (float(t) for t in terms[0])
            callback(Step(iteration, total, content, style, tv, time.perf_counter() - start))
    return best


def stylize(
    content: ImageLike,
    styles: Sequence[ImageLike] = (),
    config: StylizeConfig = StylizeConfig(),
    model: str | Path | VGGMirror | None = None,
    targets: "str | Path | StyleTargets | None" = None,
    device: str | torch.device | None = None,
    callback: Callable[[Step], None] | None = None,
) -> "Image":
    """Stylize `content` with `styles` (or precomputed `targets`); return the best image.

    `model` is the ONNX extractor (path) or a loaded `VGGMirror`; `device` overrides
    `config.device`. Ctrl-C raises `StylizeInterrupted` carrying the best image so far.
    """
    import torch
    import torch.nn.functional as F

    start = time.perf_counter()
    dev = resolve_device(device if device is not None else config.device)
    mirror = load_model(model, config.pooling).to(dev)
    if dev.type == "cuda":
        # Fixed shapes for the whole run: let cuDNN pick the fastest algorithms once; NHWC is
        # the layout tensor cores want.
        torch.backends.cudnn.benchmark = True
        mirror = mirror.to(memory_format=torch.channels_last)
    content_img = _as_image(content)
    if config.width is not None:
        from nst.runtime.images import resize

        content_img = resize(content_img, width=config.width)
    style_imgs = [_as_image(s) for s in styles]
    loaded_targets = _load_targets(targets, mirror, style_imgs)
    n_styles = len(loaded_targets.sources) if loaded_targets is not None else len(style_imgs)
    blend = _style_blend(config, n_styles)
    scales = _style_scales(config, n_styles, loaded_targets)
    initial = _as_image(config.initial) if config.initial is not None else None
    generator = torch.Generator()
    if config.seed is not None:
        generator.manual_seed(config.seed)
    else:
        generator.seed()

    sizes = stage_sizes(content_img.size, config.scales, config.min_size)
    budgets = [config.iterations // len(sizes)] * len(sizes)
    budgets[-1] += config.iterations - sum(budgets)  # the final size gets the remainder
    full_size = content_img.size

    def finish(tensor: torch.Tensor) -> "Image":
        from PIL import Image as PILImage

        from nst.runtime.images import from_array

        out = from_array(tensor.detach().float().cpu().numpy())  # clipped to 0-255, rounded
        if out.size != full_size:
            out = out.resize(full_size, PILImage.Resampling.LANCZOS)
        if config.preserve_colors:
            out = preserve_colors(out, content_img, config.preserve_colors)
        return out

    widths = [w for w, _ in sizes]
    if loaded_targets is None:
        all_grams = stage_style_grams(mirror, style_imgs, scales, widths, dev)
    else:
        all_grams = [_target_grams(loaded_targets, scales, dev)] * len(sizes)

    image: torch.Tensor | None = None
    optimizer = None
    prev_w, prev_h = sizes[0]
    best = previous = Best()
    done = 0
    reached = [0]  # the last iteration reported, for the interrupt message
    try:
        for stage, ((w, h), budget) in enumerate(zip(sizes, budgets)):
            if budget == 0:
                continue
            stage_content = content_img if (w, h) == full_size else _resized(content_img, (w, h))
            content_x = _tensor(stage_content, dev)  # (1, 3, h, w)
            if image is None:
                init_x = _tensor(_resized(initial, (w, h)), dev) if initial is not None else None
                image = initial_image(content_x, init_x, config.initial_noiseblend, mirror.mean_pixel, generator)
            else:
                # Coarse to fine: continue from the previous stage's best, upsampled.
                image = F.interpolate(_kept(best, image), size=(h, w), mode="bicubic", align_corners=False)
            image = image.detach().requires_grad_(True)
            with torch.no_grad():
                objective = make_objective(
                    mirror, content_x, all_grams[stage], blend, config,
                )
            optimizer = make_optimizer(image, config, optimizer, pixel_ratio=(w * h) / (prev_w * prev_h))
            prev_w, prev_h = w, h
            previous, best = best, Best()

            def report(step: Step, stage: int = stage, size: tuple[int, int] = (w, h)) -> None:
                due = config.checkpoint_iterations and step.iteration % config.checkpoint_iterations == 0
                snapshot = finish(best.image) if due and step.iteration < config.iterations else None
                step = replace(step, iterations=config.iterations, scale=stage, size=size, image=snapshot)
                reached[0] = step.iteration
                if callback is not None:
                    callback(step)

            optimize(image, objective, optimizer, budget, report, best, first=done + 1, start=start)
            done += budget
    except KeyboardInterrupt:
        # Before the new stage's first evaluation, the previous stage's best is the best.
        kept = best.image if best.image is not None else previous.image
        if kept is None:
            raise
        raise StylizeInterrupted(finish(kept), reached[0]) from None
    return finish(_kept(best, image))


def _kept(best: Best, image: "torch.Tensor") -> "torch.Tensor":
    # No finite loss was ever seen (a diverged run): keep the last iterate rather than nothing.
    return best.image if best.image is not None else image.detach()


def make_objective(
    model: VGGMirror,
    content: torch.Tensor,
    style_grams: list[dict[str, torch.Tensor]],
    blend: tuple[float, ...],
    config: StylizeConfig,
) -> Objective:
    """The total loss of an image as one fused forward pass (content and style layers
    together, stopping at the deepest one used). Call under no_grad: it computes targets."""
    import torch

    from nst.runtime.losses import content_loss, gram, style_layer_weights, style_loss, tv_loss

    content_weights = {
        name: config.content_weight * share
        for name, share in zip(CONTENT_LAYERS, (config.content_weight_blend, 1 - config.content_weight_blend))
        if config.content_weight * share > 0
    }
    layer_weights = style_layer_weights(STYLE_LAYERS, config.style_layer_weight_exp)
    style_layers = STYLE_LAYERS if config.style_weight > 0 and style_grams else ()
    layers = tuple(content_weights) + style_layers
    autocast = _autocast(content.device, config.precision)
    # Targets in float32 whatever the precision of the loop: they are computed once.
    content_targets = model(content, layers=tuple(content_weights)) if content_weights else {}
    channels_last = content.device.type == "cuda"

    def objective(image: torch.Tensor):
        x = image.contiguous(memory_format=torch.channels_last) if channels_last else image
        with autocast:
            features = model(x, layers=layers, checkpoint=config.low_memory) if layers else {}
        # Grams and losses in float32, whatever precision the convolutions ran in.
        c_loss = image.new_zeros(())
        for name, weight in content_weights.items():
            c_loss = c_loss + weight * content_loss(features[name].float(), content_targets[name])
        s_loss = image.new_zeros(())
        for name in style_layers:
            g = gram(features[name].float())  # (1, C, C)
            per_style = sum(b * style_loss(g, grams[name]) for b, grams in zip(blend, style_grams) if b > 0)
            s_loss = s_loss + layer_weights[name] * per_style
        s_loss = config.style_weight * s_loss
        t_loss = config.tv_weight * tv_loss(image)
        return c_loss + s_loss + t_loss, (c_loss.detach(), s_loss.detach(), t_loss.detach())

    if config.compile:
        # Fixed shapes within a stage; on CUDA "max-autotune" also captures CUDA graphs.
        return torch.compile(objective, mode="max-autotune" if channels_last else None, dynamic=False)
    return objective


def make_optimizer(image: torch.Tensor, config: StylizeConfig, previous=None, pixel_ratio: float = 1.0):
    """Adam with the reference's settings, or L-BFGS taking one function evaluation per step
    (no line search, no early stop), so that both report and cost the same per iteration.

    Coarse to fine, L-BFGS starts each stage from the previous stage's curvature estimate,
    scaled by the ratio of pixel counts (the losses are means over pixels, so the inverse
    Hessian grows with their number); without it each stage would restart with torch's
    cautious first step of 1/|g|_1 and lose most of the coarse stage's head start."""
    from nst.runtime.optim import LBFGS, Adam

    if config.optimizer == "adam":
        return Adam(image, lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.epsilon)
    h_diag = getattr(previous, "h_diag", None)
    return LBFGS(image, lr=1.0, history_size=100, h_diag=h_diag * pixel_ratio if h_diag is not None else None)


def initial_image(
    content: torch.Tensor,
    initial: torch.Tensor | None,
    noiseblend: float | None,
    mean_pixel: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """The start image (1, 3, H, W), 0-255, following anishathalye/neural-style: noise
    N(0, 0.256^2) in mean-subtracted space blended with the start image as
    (start - mean) * (1 - noiseblend) + noise * noiseblend. The start image is `initial` if
    given, else the content; noiseblend defaults to 0 with an initial image and 1 without."""
    import torch

    base = initial if initial is not None else content
    blend = noiseblend if noiseblend is not None else (0.0 if initial is not None else 1.0)
    noise = torch.randn(base.shape, generator=generator).to(base.device) * NOISE_STD  # CPU draw: same on any device
    mean = mean_pixel.to(base.device)
    return (base - mean) * (1 - blend) + noise * blend + mean


def stage_sizes(size: tuple[int, int], scales: int, min_size: int) -> list[tuple[int, int]]:
    """(width, height) of each coarse-to-fine stage: long sides geometric from `min_size`
    to the full size. `scales` 0 picks one stage per octave above `min_size`."""
    w, h = size
    long_side = max(w, h)
    n = scales if scales > 0 else 1 + max(0, int(math.floor(math.log2(long_side / min_size))))
    if n <= 1 or long_side <= min_size:
        return [(w, h)]
    ratios = [(min_size / long_side) ** ((n - 1 - k) / (n - 1)) for k in range(n)]
    return [(max(1, round(w * r)), max(1, round(h * r))) for r in ratios[:-1]] + [(w, h)]


def resolve_device(device: str | torch.device) -> torch.device:
    """auto -> cuda when available, else cpu; asking for cuda without one is an error."""
    import torch

    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (this torch build or machine has none); use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}") from None


def load_model(model: str | Path | VGGMirror | None, pooling: str | None = None) -> VGGMirror:
    """The PyTorch mirror of the ONNX extractor, with `pooling` if it differs from the file's.

    Pooling has no weights, so the same convolutions with the other pooling are exactly the
    extractor `nst export-vgg --pooling` would have written: switching is that export."""
    from nst.runtime.mirror import VGGMirror

    if model is None:  # the cached default model: downloaded and exported on first use
        from nst.export.cached import cached_model
        from nst.export.onnx_graph import ExportConfig

        model = cached_model(None, ExportConfig(pooling=pooling or "max"))
    mirror = model if isinstance(model, VGGMirror) else VGGMirror.from_onnx(model)
    if pooling is not None and pooling != mirror.info.pooling:
        import copy

        mirror = copy.copy(mirror)  # shares the weights; only the metadata differs
        mirror.file_pooling = mirror.info.pooling
        mirror.info = replace(mirror.info, pooling=pooling)
    return mirror


def stage_style_grams(
    model: VGGMirror,
    styles: list["Image"],
    scales: tuple[float, ...],
    widths: list[int],
    device: torch.device,
) -> list[list[dict[str, torch.Tensor]]]:
    """Style Grams for each stage width: [stage][style] -> {layer: (1, C, C)}, each style
    resized so its width is scale * the stage's content width (as the reference does).

    They come from the onnxruntime extractor (one session, images of equal size batched),
    except when --pooling differs from the file's: only the mirror can switch pooling."""
    import torch

    from nst.runtime.targets import style_grams, style_shape

    shapes = [style_shape(img.size, scale, width=w) for w in widths for img, scale in zip(styles, scales)]
    images = [img for _ in widths for img in styles]
    if model.info.pooling == _file_pooling(model):
        from nst.runtime.ort_extractor import OrtExtractor

        # "auto": onnxruntime's CUDA provider when it can start, else its CPU one (the Grams
        # are computed once; a missing CUDA provider must not stop a CUDA run).
        extractor = OrtExtractor(model.info.path, provider="auto" if device.type == "cuda" else "cpu", arena=False,
                                 info=model.info)  # this branch: the file's own pooling
        flat = style_grams(extractor, images, shapes, layers=STYLE_LAYERS)
        grams = [{name: torch.from_numpy(g[name]).to(device)[None] for name in STYLE_LAYERS} for g in flat]
    else:
        grams = [_mirror_grams(model, img, shape, device) for img, shape in zip(images, shapes)]
    n = len(styles)
    return [grams[i * n:(i + 1) * n] for i in range(len(widths))]


def _mirror_grams(model: VGGMirror, image: "Image", shape: tuple[int, int], device: torch.device):
    import torch

    from nst.runtime.losses import gram

    x = _tensor(_resized(image, (shape[1], shape[0])), device)  # (1, 3, h, w)
    with torch.no_grad():
        features = model(x, layers=STYLE_LAYERS)
    return {name: gram(features[name].float()) for name in STYLE_LAYERS}  # (1, C, C) each


def _file_pooling(model: VGGMirror) -> str:
    return getattr(model, "file_pooling", model.info.pooling)


def _target_grams(targets: "StyleTargets", scales: tuple[float, ...], device: torch.device):
    """[style] -> {layer: (1, C, C)} from a targets file. It holds Grams at the size they were
    computed at, so every coarse-to-fine stage uses the same ones."""
    import torch

    grams = []
    for index, scale in enumerate(scales):
        entry = next(e for e in targets.grams_for(index) if e.scale == scale)
        grams.append({name: torch.from_numpy(entry.grams[name]).to(device)[None] for name in STYLE_LAYERS})
    return grams


def _load_targets(targets, mirror: VGGMirror, style_imgs: list) -> "StyleTargets | None":
    if targets is None:
        if not style_imgs:
            raise ConfigError("no style given; pass one or more style images, or --targets FILE")
        return None
    if style_imgs:
        raise ConfigError("give style images or --targets, not both")
    from nst.runtime.targets import StyleTargets, load_targets

    loaded = targets if isinstance(targets, StyleTargets) else load_targets(targets)
    loaded.check_model(mirror.info, layers=STYLE_LAYERS)
    return loaded


def _style_blend(config: StylizeConfig, n_styles: int) -> tuple[float, ...]:
    weights = config.style_blend_weights or (1.0,) * n_styles
    if len(weights) != n_styles:
        raise ConfigError(f"--style-blend-weights has {len(weights)} values for {n_styles} style(s); give one per style")
    from nst.runtime.losses import normalized

    return normalized(weights)


def _style_scales(config: StylizeConfig, n_styles: int, targets) -> tuple[float, ...]:
    scales = config.style_scales
    if targets is not None:
        available = sorted({entry.scale for entry in targets.entries})
        if scales is None and len(available) == 1:
            scales = (available[0],)
        scales = scales or (1.0,)
        for index, scale in enumerate(scales * n_styles if len(scales) == 1 else scales):
            if all(entry.scale != scale for entry in targets.grams_for(index)):
                raise TargetsError(f"the targets have no Grams at style scale {scale:g} for style {index + 1} "
                                   f"(they have {', '.join(f'{s:g}' for s in available)}); pass --style-scales to pick one")
    scales = scales or (1.0,)
    if len(scales) == 1:
        return scales * n_styles
    if len(scales) != n_styles:
        raise ConfigError(f"--style-scales has {len(scales)} values for {n_styles} style(s); give one, or one per style")
    return scales


def _as_image(image: ImageLike) -> "Image":
    from nst.runtime.images import open_image

    if isinstance(image, (str, Path)):
        return open_image(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _resized(image: "Image", size: tuple[int, int]) -> "Image":
    from PIL import Image as PILImage

    return image if image.size == size else image.resize(size, PILImage.Resampling.LANCZOS)


def _tensor(image: "Image", device: torch.device) -> torch.Tensor:
    import torch

    from nst.runtime.images import to_array

    return torch.from_numpy(to_array(image)).to(device)  # (1, 3, H, W)


def _autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """The convolutions' precision: autocast to bf16/fp16, or float32. "auto" is bf16 on CUDA
    (tensor cores; bf16's range needs no loss scaling) and float32 on the CPU. Grams and
    losses are computed in float32 regardless (make_objective casts the features)."""
    import torch

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
