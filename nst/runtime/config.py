"""The options of a stylize run and a precompute run, their choices and ranges, written once.

Torch-free, so that `nst --help` and the CLI's option types can read it cheaply. Each range
rule lives in `RULES`; the configs check themselves against it, and the CLI's click types
are built from it, so a value is refused with the same words wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nst.errors import ConfigError, option_name
from nst.models.layers import Pooling

OptimizerName = Literal["adam", "lbfgs"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
ColorMode = Literal["luminance", "histogram"]
Provider = Literal["auto", "cpu", "cuda", "tensorrt", "openvino"]  # onnxruntime's execution providers
LossScale = Literal["auto", "reference", "balanced"]  # auto: by the model's weights (nst.runtime.loss_scale)
BitDepth = Literal[8, 16]  # bits per channel of PNG and TIFF outputs
OutputProfile = Literal["srgb", "content"]  # the outputs' colour profile
MaskMode = Literal["soft", "inside"]  # region guides: averaged, or eroded to units that see only the region
Device = str  # auto | cpu | cuda | cuda:N (see check_device)

SEED_MAX = 2**64 - 1


@dataclass(frozen=True)
class Rule:
    """The allowed range of a number (each element, for a tuple of numbers); always finite."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False  # min itself excluded ("positive")
    max_open: bool = False
    zero: str | None = None  # what 0 means, when 0 is allowed outside the range ("the original size")

    def accepts(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if value == 0 and self.zero is not None:
            return True
        if self.min is not None and (value < self.min or (self.min_open and value == self.min)):
            return False
        return self.max is None or (value < self.max or (not self.max_open and value == self.max))

    def describe(self) -> str:
        """'must be ...', for messages."""
        if self.zero is not None:
            plain = Rule(self.min, self.max, self.min_open, self.max_open).describe().removeprefix("must be ")
            return f"must be 0 ({self.zero}) or {plain}"
        low, high = _fmt(self.min), _fmt(self.max)
        if self.min is not None and self.max is not None:
            if self.min_open or self.max_open:
                return f"must be in {'(' if self.min_open else '['}{low}, {high}{')' if self.max_open else ']'}"
            return f"must be between {low} and {high}"
        if self.min is not None:
            return (
                ("must be positive" if self.min == 0 else f"must be above {low}")
                if self.min_open
                else ("must not be negative" if self.min == 0 else f"must be at least {low}")
            )
        return f"must be at most {high}" if self.max is not None else "must be a finite number"


def _fmt(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class StylizeConfig:
    """Every option of `nst stylize` that shapes the result; defaults are the CLI's, which
    are anishathalye/neural-style's where it has the option. Sizes are (height, width)."""

    iterations: int = 1000
    size: int = 512  # the content's long side in px; 0: as it is (width, when given, wins)
    width: int | None = None  # resize the content to this width (keeping aspect) instead
    style_scales: tuple[float, ...] | None = (
        None  # per style (one value: all); style width = scale * content width; None: 1.0
    )
    loss_scale: LossScale = "auto"  # reference for MatConvNet's VGG-19, else balanced (README)
    content_weight: float | None = None  # None: the loss scale's default (DEFAULT_WEIGHTS)
    content_weight_blend: float = 1.0  # relu4_2 gets this share of the content weight, relu5_2 the rest
    style_weight: float | None = None
    style_layer_weight_exp: float = 1.0  # style layer l (0..4) weighs exp**l, normalised to sum 1
    style_blend_weights: tuple[float, ...] | None = None  # per style, normalised to sum 1; None: equal
    tv_weight: float | None = None
    learning_rate: float = 10.0  # Adam's step size (L-BFGS steps with 1, as torch and neural-style-pt do)
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    initial: str | Path | None = None  # start image; None: noise (or the content, with a noise blend < 1)
    initial_noiseblend: float | None = None  # share of noise in the start; None: 0 with --initial, else 1
    preserve_colors: ColorMode | None = None
    pooling: Pooling | None = None  # None: the model's own pooling
    optimizer: OptimizerName = "lbfgs"  # measured: lower loss in the same time (README)
    lbfgs_history: int = 100  # L-BFGS (s, y) pairs kept: 2 image-sized vectors each
    seed: int | None = None
    device: Device = "auto"  # auto | cpu | cuda[:N]
    scales: int = 1  # coarse-to-fine stages; 0: as many octaves as fit above min_size
    min_size: int = 128  # long side of the coarsest stage
    checkpoint_iterations: int | None = None  # Step.image carries the best image every N iterations
    precision: Precision = "auto"  # conv precision; auto: bf16 on CUDA, fp32 on the CPU (README)
    low_memory: bool = False  # activation checkpointing: ~1 more forward per iteration, far less memory
    compile: bool = False  # torch.compile the objective (slow first iteration; pays on long runs)
    provider: Provider = "auto"  # onnxruntime's, for the style pass; auto: CUDA on a CUDA device, else the CPU
    style_masks: tuple[str, ...] = ()  # one greyscale mask per style: where it applies (white), soft values share
    labels: str | None = None  # instead of style_masks: a label map, one colour per style's region
    content_mask: str | None = None  # where the content term applies; elsewhere only the styles and TV
    style_regions: tuple[str, ...] = ()  # STYLE:MASK: only that part of a style image makes its target Grams
    mask_mode: MaskMode = "soft"  # soft guides, or inside: eroded so that no unit sees across a border
    bit_depth: BitDepth = 8  # output only: 16 writes PNG/TIFF from the float image
    output_profile: OutputProfile = "srgb"  # output only: tagged sRGB, or converted to the content's ICC profile

    def __post_init__(self) -> None:
        check(self)
        blend = self.style_blend_weights
        if blend is not None and sum(blend) <= 0:
            raise ConfigError(f"--style-blend-weights must have a positive sum, got {blend!r}")
        check_device(self.device)
        if self.style_masks and self.labels is not None:
            raise ConfigError("give --style-mask per style or --labels, not both")

    def replace(self, **changes: Any) -> StylizeConfig:
        return dataclasses.replace(self, **changes)

    def resolved(self) -> StylizeConfig:
        """This config with the weights it leaves to its loss scale filled in (none for `auto`,
        whose scale and so whose weights depend on the model: `nst.runtime.loss_scale`)."""
        defaults = DEFAULT_WEIGHTS.get(self.loss_scale)
        if defaults is None:
            return self
        names = ("content_weight", "style_weight", "tv_weight")
        return self.replace(**{n: d for n, d in zip(names, defaults) if getattr(self, n) is None})

    @classmethod
    def from_options(cls, values: dict[str, Any]) -> StylizeConfig:
        """The config of JSON values (`applied_options`' output, a run state's): lists become tuples."""
        names = {field.name for field in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
        return cls(**kwargs)


# (content, style, TV) weights by loss scale. reference: anishathalye/neural-style's tuned
# values; balanced: every term is relative to its target, so the weights are the terms' shares,
# calibrated on two trained VGG-16s: the smallest style weight tried (0.5, 2, 5, 20) that took
# the style term to at most 0.35 of its start on both (benchmarks/calibrate_loss_scale.py; README).
DEFAULT_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "reference": (5.0, 500.0, 100.0),
    "balanced": (1.0, 5.0, 1.0),
}


@dataclass(frozen=True)
class PrecomputeConfig:
    """Options of `nst precompute-style`."""

    # The styles' long side in px at scale 1. The reference sizes styles to the content's
    # width, which is not known here; stylize can compute Grams at other sizes itself.
    size: int = 512
    style_scales: tuple[float, ...] = (1.0,)
    batch_size: int = 8
    provider: Provider = "auto"

    def __post_init__(self) -> None:
        check(self)
        if not self.style_scales:
            raise ConfigError("--style-scales needs at least one value")


# The range of every numeric option, by field name (both configs share names and rules).
RULES: dict[str, Rule] = {
    "iterations": Rule(1, 1_000_000),
    "width": Rule(16, 30_000),
    "size": Rule(16, 30_000, zero="the original size"),
    "style_scales": Rule(0, 16, min_open=True),
    "content_weight": Rule(0, 1e15),
    "content_weight_blend": Rule(0, 1),
    "style_weight": Rule(0, 1e15),
    "style_layer_weight_exp": Rule(0, 1000),
    "style_blend_weights": Rule(0, 1e15),
    "tv_weight": Rule(0, 1e15),
    "learning_rate": Rule(0, 1e6, min_open=True),
    "beta1": Rule(0, 1, max_open=True),
    "beta2": Rule(0, 1, max_open=True),
    "epsilon": Rule(0, 1, min_open=True),
    "initial_noiseblend": Rule(0, 1),
    "seed": Rule(0, SEED_MAX),
    "scales": Rule(0, 16),
    "min_size": Rule(16, 30_000),
    "checkpoint_iterations": Rule(1, 1_000_000),
    "batch_size": Rule(1, 1024),
    "lbfgs_history": Rule(1, 1000),
}


ADAM_ONLY = ("learning_rate", "beta1", "beta2", "epsilon")
LBFGS_ONLY = ("lbfgs_history",)
# Options that change where and how things are written, not the image optimised.
OUTPUT_ONLY = ("checkpoint_iterations", "bit_depth", "output_profile")


def applied_options(config: StylizeConfig) -> dict[str, Any]:
    """The options that shaped the result, as JSON values: the other optimiser's settings
    and output-only options are left out (what a PNG records and a resumed run must match)."""
    config = config.resolved()
    unused = OUTPUT_ONLY + (LBFGS_ONLY if config.optimizer == "adam" else ADAM_ONLY)
    values = {}
    for field in dataclasses.fields(config):
        if field.name in unused:
            continue
        value = getattr(config, field.name)
        values[field.name] = (
            str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        )
    return values


def check_device(device: str) -> str:
    """`device` when it names a device nst can run on: auto (CUDA when there is one), cpu, cuda
    or cuda:N. The one rule of the configs, the CLI and batch; whether CUDA device N exists is
    checked when the device is resolved (`nst.runtime.device.resolve_device`)."""
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ConfigError(f"{option_name('device')} {DEVICE_RULE}, got {device!r}")


DEVICE_RULE = "must be auto, cpu, cuda or cuda:N"


def choices(field_type: Any) -> tuple[str, ...]:
    """The values of a Literal alias (or of an Optional Literal), for click.Choice."""
    args = typing.get_args(field_type)
    if typing.get_origin(field_type) is Literal:
        return tuple(args)
    for arg in args:  # Optional[Literal[...]]
        if typing.get_origin(arg) is Literal:
            return tuple(typing.get_args(arg))
    return ()


def check(config: Any, rules: dict[str, Rule] | None = None) -> None:
    """Raise ConfigError for the first field of a config dataclass outside its rule or choices
    (`rules`: RULES with a config's own exceptions)."""
    rules = RULES if rules is None else rules
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        allowed = choices(hints[field.name])
        if allowed and value not in allowed:
            raise ConfigError(f"{option_name(field.name)} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        rule = rules.get(field.name)
        if rule is None:
            continue
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not rule.accepts(item):
                raise ConfigError(f"{option_name(field.name)} {rule.describe()}, got {value!r}")
