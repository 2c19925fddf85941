"""The Stylizer session and `stylize()`: optimise an image so its VGG features match a content
photo's and its Gram matrices match the styles' (Gatys et al. 2015). A `Stylizer` loads the
network once and keeps the style Grams it computed, by style image and size, so a second content
image with the same styles pays only for its own content pass. Sizes are (height, width)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nst.contract import gram
from nst.errors import ConfigError, NSTWarning
from nst.export.cached import resolve_model
from nst.models.layers import STYLE_LAYERS, Pooling
from nst.runtime.config import StylizeConfig, applied_options
from nst.runtime.device import channels_last, precision_name, resolve_device
from nst.runtime.grams import style_grams, style_shape
from nst.runtime.guides import checked_regions, guided_style_grams
from nst.runtime.images import ImageLike, Rendered, as_image, image_key, probe_image, resized, resized_shape
from nst.runtime.loop import Step
from nst.runtime.loss_scale import resolve_loss_scale
from nst.runtime.memory import check_fits, estimate_peak, out_of_memory
from nst.runtime.mirror import VGGMirror
from nst.runtime.objective import StyleGrams, Term
from nst.runtime.ort_extractor import OrtExtractor
from nst.runtime.plan import (
    Plan,
    Stage,
    StartImage,
    check_sizes,
    extras_key,
    plan_stages,
    start_image,
    style_blend,
    style_scales,
    target_grams,
    warn_collapsed,
    warn_targets_size,
)
from nst.runtime.record import provenance
from nst.runtime.regions import MaskLike, Regions, masks_key, read_mask, regions_of
from nst.runtime.run import Run, StylizeDiverged, StylizeInterrupted, image_tensor
from nst.runtime.state import RunState
from nst.runtime.style_size import warn_small_styles
from nst.runtime.targets import StyleTargets, load_targets

if TYPE_CHECKING:
    from PIL.Image import Image

StepCallback = Callable[[Step], None]

__all__ = ["Step", "StylizeConfig", "StylizeDiverged", "StylizeInterrupted", "Stylizer", "stylize"]


class Stylizer:
    """A stylize session: one network on one device, and the style Grams computed so far.

    `model` is an ONNX extractor path, a loaded `VGGMirror`, or None for the cached default
    model (downloaded and exported on first use). `device` overrides `config.device`.
    `keep_extractor=False` closes the onnxruntime session after each style pass, which
    saves its memory when only one image is stylized. `threads` caps onnxruntime's threads
    for the style pass (None: one per physical core); torch's are the caller's to set
    (`torch.set_num_threads`), as a process-wide choice.
    """

    def __init__(
        self,
        model: str | Path | VGGMirror | None = None,
        *,
        device: str | torch.device | None = None,
        config: StylizeConfig = StylizeConfig(),
        keep_extractor: bool = True,
        threads: int | None = None,
    ):
        self.config = config
        self.device = resolve_device(device if device is not None else config.device)
        self.model = load_mirror(model, config.pooling).to(self.device)
        if channels_last(self.device):
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.keep_extractor, self.threads = keep_extractor, threads
        self._extractor: OrtExtractor | None = None
        self._grams: dict[tuple[str, tuple[int, int]], StyleGrams] = {}

    def stylize(
        self,
        content: ImageLike,
        *,
        styles: Sequence[ImageLike] = (),
        targets: str | Path | StyleTargets | None = None,
        callback: StepCallback | None = None,
        config: StylizeConfig | None = None,
        extra_terms: Sequence[Term] = (),
        resume: RunState | None = None,
        masks: Regions | Sequence[MaskLike] | None = None,
        initial: StartImage | None = None,
    ) -> Image:
        """Stylize `content` with `styles` (or precomputed `targets`); return the best image
        (8-bit sRGB; `render` returns the same image in float, for 16-bit outputs)."""
        return self.render(content, styles=styles, targets=targets, callback=callback, config=config,
                           extra_terms=extra_terms, resume=resume, masks=masks, initial=initial).image  # fmt: skip

    def render(
        self,
        content: ImageLike,
        *,
        styles: Sequence[ImageLike] = (),
        targets: str | Path | StyleTargets | None = None,
        callback: StepCallback | None = None,
        config: StylizeConfig | None = None,
        extra_terms: Sequence[Term] = (),
        resume: RunState | None = None,
        masks: Regions | Sequence[MaskLike] | None = None,
        initial: StartImage | None = None,
    ) -> Rendered:
        """`stylize` without the rounding to 8 bits: the best image as float pixels (and its
        8-bit `image`).

        `config` overrides the session's for this image (its pooling must be the session's).
        `masks` gives each style its region of the content: one mask per style, or `Regions`
        (a label map, a content mask, masks over the styles; default: the config's
        --style-mask, --labels, --content-mask and --style-region). `extra_terms` join the
        objective at every stage. `initial` replaces `config.initial`'s file with a start image
        in memory: PIL, or (1, 3, H, W) 0-255 floats (a video's warped frame, unrounded).
        `resume` continues from a saved state (same inputs, settings, extra terms and start).
        Ctrl-C raises `StylizeInterrupted` with the best image and the run's state; a loss that
        stops being finite, `StylizeDiverged`; a run too big for memory, `ResourceError` first.
        """
        start = time.perf_counter()
        config = self.resolve(config)
        if config.pooling not in (None, self.model.pooling):
            raise ConfigError(f"this session pools with {self.model.pooling}; start another for {config.pooling}")
        try:
            plan = self.plan(content, styles=styles, targets=targets, config=config, extra_terms=extra_terms,
                             masks=masks, initial=initial)  # fmt: skip
            if resume is not None:
                resume.check(
                    config=applied_options(config),
                    model=self.model.info.weights_sha256,
                    pooling=self.model.pooling,
                    content=plan.content_key,
                    styles=plan.styles_key,
                    extras=plan.extras_key,
                )
            return Run(self.model, config, plan, callback=callback, resume=resume, start=start).run()
        except (RuntimeError, MemoryError) as exc:
            oom = out_of_memory(exc)
            if oom is None:
                raise
            raise oom from None

    def resolve(self, config: StylizeConfig | None = None) -> StylizeConfig:
        """`config` (None: the session's) with loss scale auto resolved for this model's weights
        (`nst stylize`, batch, serve and regions alike): what a run uses and its PNG and state record."""
        return resolve_loss_scale(config or self.config, self.model.info)

    def plan(
        self,
        content: ImageLike,
        *,
        styles: Sequence[ImageLike] = (),
        targets: str | Path | StyleTargets | None = None,
        config: StylizeConfig | None = None,
        extra_terms: Sequence[Term] = (),
        masks: Regions | Sequence[MaskLike] | None = None,
        initial: StartImage | None = None,
    ) -> Plan:
        """Everything about one image that comes before its first iteration: sizes checked
        against the network and the memory, images and masks read, style Grams computed."""
        config = config or self.config
        original = probe_image(content) if isinstance(content, (str, Path)) else (content.height, content.width)
        size = resized_shape(original, long_side=config.size, width=config.width)
        check_sizes(original, size, name=str(content) if isinstance(content, (str, Path)) else "the content image")
        stages = plan_stages(size, config.iterations, config.scales, config.min_size)
        warn_collapsed(config, size, stages)
        self._check_memory(config, size, stages)
        content_img = resized(as_image(content), size)
        style_imgs = [as_image(s) for s in styles]
        loaded = self._targets(targets, style_imgs)
        names = [Path(str(s)).name if isinstance(s, (str, Path)) else f"style {i + 1}" for i, s in enumerate(styles)]
        if loaded is not None:
            names = [source.name for source in loaded.sources]
        regions = masks if isinstance(masks, Regions) or masks is None else Regions(style_masks=tuple(masks))
        regions = regions or regions_of(config, [str(s) for s in styles if isinstance(s, (str, Path))])
        resolved = checked_regions(
            regions, self.model, config=config, size=size, names=names, targets=loaded is not None
        )
        scales = style_scales(config, len(names), loaded)
        if loaded is not None:  # Grams at the size they were computed at, for every stage
            warn_targets_size(loaded, scales, size[1])
            stage_grams: list[list[StyleGrams]] = [target_grams(loaded, scales, self.device) for _ in stages]
            styles_key = "targets:" + ",".join(s.sha256 for s in loaded.sources)
        else:
            widths = [stage.size[1] for stage in stages]
            stage_grams = self._stage_grams(style_imgs, scales, widths, regions=regions)
            warn_small_styles(names, [(img.height, img.width) for img in style_imgs], scales, width=size[1])
            styles_key = "styles:" + ",".join(image_key(s) for s in style_imgs)
        if resolved is not None and regions is not None:
            styles_key += "|regions:" + masks_key(resolved, regions.style_regions)
        return Plan(
            content=content_img,
            initial=start_image(initial, config),
            stages=stages,
            style_grams=stage_grams,
            blend=style_blend(config, len(names)),
            content_key=image_key(content_img),
            styles_key=styles_key,
            extra_terms=extra_terms,
            extras_key=extras_key(extra_terms, initial),
            regions=resolved,
        )

    def _check_memory(self, config: StylizeConfig, size: tuple[int, int], stages: Sequence[Stage]) -> None:
        """Refuse, before any work, a run that would not fit in this device's memory."""
        estimate = estimate_peak(
            [stage.size for stage in stages],
            optimizer=config.optimizer,
            lbfgs_history=config.lbfgs_history,
            iterations=max(stage.iterations for stage in stages),
            precision=precision_name(self.device, config.precision),
            low_memory=config.low_memory,
        )
        check_fits(
            estimate, device=str(self.device), optimizer=config.optimizer, low_memory=config.low_memory, size=max(size)
        )

    def provenance(
        self,
        config: StylizeConfig | None = None,
        *,
        content: ImageLike,
        styles: Sequence[ImageLike] = (),
        targets: str | Path | None = None,
    ) -> dict[str, str]:
        """The text an output of this session records (PNG chunks): the options that applied (auto
        resolved), the inputs by name, the model and its weights file, the device and precision used."""
        config, info = self.resolve(config), self.model.info
        return provenance(
            config,
            content=content if isinstance(content, (str, Path)) else "(image)",
            styles=[s if isinstance(s, (str, Path)) else "(image)" for s in styles],
            model=info.path,
            weights_sha256=info.weights_sha256,
            source_sha256=info.source_sha256,
            targets=Path(targets) if targets is not None else None,
            device=str(self.device),
            precision=precision_name(self.device, config.precision),
        )

    def style_grams(self, styles: Sequence[ImageLike], shapes: Sequence[tuple[int, int]]) -> list[StyleGrams]:
        """The Grams of each style at its (height, width) in `shapes`, from the cache when
        computed before; the missing ones in one batched extractor pass."""
        images = [as_image(s) for s in styles]
        keys = [(image_key(img), shape) for img, shape in zip(images, shapes)]
        missing = {key: (img, key[1]) for img, key in zip(images, keys) if key not in self._grams}
        if missing:
            computed = self._compute_grams([img for img, _ in missing.values()], [s for _, s in missing.values()])
            self._grams.update(zip(missing, computed))
        return [self._grams[key] for key in keys]

    def _stage_grams(
        self, styles: list[Image], scales: Sequence[float], widths: list[int], *, regions: Regions | None = None
    ) -> list[list[StyleGrams]]:
        """[stage][style] Grams, each style sized to scale * the stage's content width (as the
        reference does), all in one pass; a style with a --style-region mask gets the guided
        Grams of that part of it (through the mirror)."""
        shapes = [style_shape((s.height, s.width), k, width=w) for w in widths for s, k in zip(styles, scales)]
        flat = self.style_grams(styles * len(widths), shapes)
        n = len(styles)
        stages = [flat[i * n : (i + 1) * n] for i in range(len(widths))]
        for index, mask in (regions.style_regions if regions is not None else {}).items():
            for stage, grams in enumerate(stages):
                shape = shapes[stage * n + index]
                image = image_tensor(styles[index], shape, self.device)
                part = read_mask(mask, shape, what="--style-region mask")
                grams[index] = guided_style_grams(self.model, image, part, STYLE_LAYERS, mode=regions.mode)  # type: ignore[union-attr]
        return stages

    def _compute_grams(self, images: list[Image], shapes: list[tuple[int, int]]) -> list[StyleGrams]:
        """Through onnxruntime (images of one size batched), unless the session pools unlike
        the file or the file is static (one size): then the mirror computes them."""
        if not self.model.pools_like_file or self.model.info.static:
            return [self._mirror_grams(img, shape) for img, shape in zip(images, shapes)]
        flat = style_grams(self._open_extractor(), images, shapes, layers=STYLE_LAYERS)
        if not self.keep_extractor:
            self._extractor = None
        return [{name: torch.from_numpy(g[name]).to(self.device)[None] for name in STYLE_LAYERS} for g in flat]

    def _open_extractor(self) -> OrtExtractor:
        if self._extractor is None:
            # auto: on CUDA, onnxruntime's CUDA provider when it can start, else its CPU one (the
            # Grams are computed once; a missing CUDA provider must not stop a CUDA run).
            # Without the CPU arena: the PyTorch loop must not pay for both (250 MiB at 512 px).
            provider = self.config.provider
            if provider == "auto" and self.device.type != "cuda":
                provider = "cpu"
            self._extractor = OrtExtractor(
                self.model.info.path,
                provider=provider,
                arena=False,
                info=self.model.info,
                threads=self.threads,
                notify=lambda line: warnings.warn(line, NSTWarning, stacklevel=2),  # the CLI prints it
            )
        return self._extractor

    def _mirror_grams(self, image: Image, shape: tuple[int, int]) -> StyleGrams:
        with torch.no_grad():
            features = self.model(image_tensor(image, shape, self.device), layers=STYLE_LAYERS)
        return {name: gram(features[name].float()) for name in STYLE_LAYERS}  # (1, C, C) each

    def _targets(self, targets: str | Path | StyleTargets | None, style_imgs: list[Image]) -> StyleTargets | None:
        if targets is None:
            if not style_imgs:
                raise ConfigError("no style given; pass one or more style images, or --targets FILE")
            return None
        if style_imgs:
            raise ConfigError("give style images or --targets, not both")
        loaded = targets if isinstance(targets, StyleTargets) else load_targets(targets)
        loaded.check_targets(self.model.info, layers=STYLE_LAYERS)
        return loaded


def stylize(
    content: ImageLike,
    styles: Sequence[ImageLike] = (),
    *,
    config: StylizeConfig = StylizeConfig(),
    model: str | Path | VGGMirror | None = None,
    targets: str | Path | StyleTargets | None = None,
    device: str | torch.device | None = None,
    callback: StepCallback | None = None,
) -> Image:
    """Stylize one image: `Stylizer(model, device=device, config=config).stylize(...)`."""
    session = Stylizer(model, device=device, config=config, keep_extractor=False)
    return session.stylize(content, styles=styles, targets=targets, callback=callback)


def load_mirror(model: str | Path | VGGMirror | None, pooling: Pooling | None = None) -> VGGMirror:
    """The PyTorch mirror of the extractor (None: the cached default model), with `pooling`."""
    if not isinstance(model, VGGMirror):
        model = VGGMirror.from_onnx(resolve_model(model, pooling=pooling))
    return model.with_pooling(pooling) if pooling else model
