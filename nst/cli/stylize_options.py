"""The options of `nst stylize` that `nst stylize-batch` shares, and the config they build.

Every StylizeConfig field is one option here, with its type (choices and ranges) from
`nst.runtime.config`; `stylize_config` turns the parsed values into the config, taking the
ones the user did not give from a base config when there is one (a resumed run's).
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from nst.cli.options import DEVICE, choice, comma_list, ranged
from nst.errors import ConfigError, NSTWarning, option_name
from nst.models.convention import LayoutChoice
from nst.runtime.config import (
    ADAM_ONLY,
    DEFAULT_WEIGHTS,
    LBFGS_ONLY,
    ColorMode,
    LossScale,
    MaskMode,
    OptimizerName,
    OutputProfile,
    Pooling,
    Precision,
    Provider,
    StylizeConfig,
)

PATH = click.Path(path_type=Path, dir_okay=False)
MASK = click.Path(dir_okay=False)  # a str: masks are recorded in the PNG's parameters as given
# The style images of the commands that stylize many contents (stylize-batch, stylize-video), taken
# as an option because their arguments are the contents.
STYLES = click.option(
    "-s",
    "--style",
    "styles",
    multiple=True,
    type=PATH,
    metavar="STYLE",
    help="A style image; repeat for several, blended as `nst stylize` blends its STYLEs (or --targets).",
)
_D = StylizeConfig()  # the defaults, in one place


def _weights(index: int) -> str:
    return ", ".join(f"{weights[index]:g} {scale}" for scale, weights in DEFAULT_WEIGHTS.items())


_CONFIG_OPTIONS: list[Callable[[Callable], Callable]] = [
    click.option("--iterations", type=ranged("iterations", int), default=_D.iterations, show_default=True,
                 help="Optimiser iterations in all (split evenly over --scales stages)."),
    click.option("--size", type=ranged("size", int), default=_D.size, show_default=True,
                 help="The content's long side in px (0: as it is). Larger is slower and needs more memory."),
    click.option("--width", type=ranged("width", int),
                 help="Resize the content to this width instead (keeps the aspect; wins over --size)."),
    click.option("--style-scales", type=comma_list("style_scales"), metavar="S[,S...]",
                 help="Style size: style width = scale x content width; one value, or one per style.  [default: 1]"),
    click.option("--loss-scale", type=choice(LossScale), default=_D.loss_scale, show_default=True,
                 help="reference: anishathalye/neural-style's losses and tuned weights; balanced: every term "
                 "relative to its target, so the balance holds with any weights and at any size; auto: reference "
                 "for the registry's MatConvNet VGG-19 (by the model's source hash), balanced for other weights "
                 "(README)."),
    click.option("--content-weight", type=ranged("content_weight"),
                 help=f"[default: {_weights(0)}]"),
    click.option("--content-weight-blend", type=ranged("content_weight_blend"), default=_D.content_weight_blend,
                 show_default=True, help="Share of the content weight on relu4_2; the rest goes to relu5_2."),
    click.option("--style-weight", type=ranged("style_weight"), help=f"[default: {_weights(1)}]"),
    click.option("--style-layer-weight-exp", type=ranged("style_layer_weight_exp"),
                 default=_D.style_layer_weight_exp, show_default=True,
                 help="Style layer l (relu1_1 = 0 ... relu5_1 = 4) weighs EXP^l; weights sum to 1."),
    click.option("--style-blend-weights", type=comma_list("style_blend_weights"), metavar="W[,W...]",
                 help="One weight per style (comma-separated), normalised to sum to 1.  [default: equal]"),
    click.option("--tv-weight", type=ranged("tv_weight"),
                 help=f"Total-variation (smoothness) weight.  [default: {_weights(2)}]"),
    click.option("--optimizer", type=choice(OptimizerName), default=_D.optimizer, show_default=True,
                 help="L-BFGS reached a lower loss in the same time (README); adam is the reference's."),
    click.option("--lbfgs-history", type=ranged("lbfgs_history", int), default=_D.lbfgs_history,
                 show_default=True, help="L-BFGS: correction pairs kept (each is two image-sized vectors)."),
    click.option("--learning-rate", type=ranged("learning_rate"), default=_D.learning_rate, show_default=True,
                 help="Adam only: its step size."),
    click.option("--beta1", type=ranged("beta1"), default=_D.beta1, show_default=True, help="Adam only."),
    click.option("--beta2", type=ranged("beta2"), default=_D.beta2, show_default=True, help="Adam only."),
    click.option("--epsilon", type=ranged("epsilon"), default=_D.epsilon, show_default=True, help="Adam only."),
    click.option("--initial", type=PATH, help="Start from this image (resized to the content) instead of noise."),
    click.option("--initial-noiseblend", type=ranged("initial_noiseblend"),
                 help="Share of noise blended into the start image (--initial, else the content).  "
                 "[default: 0 with --initial, else 1]"),
    click.option("--preserve-colors", type=choice(ColorMode), is_flag=False, flag_value="luminance", default=None,
                 help="Keep the content's colours: 'luminance' (alone: the reference's luma transfer) "
                 "or 'histogram' (match the colour statistics)."),
    click.option("--pooling", type=choice(Pooling),
                 help="Pooling between blocks; if the model was exported with the other kind, its "
                 "convolutions are reused with this pooling.  [default: the model's]"),
    click.option("--seed", type=ranged("seed", int),
                 help="Random seed (0 to 2^64-1); the same seed reproduces the output bit for bit on the CPU.  "
                 "[default: a random one, recorded in the PNG]"),
    click.option("--device", type=DEVICE, default=_D.device, show_default=True,
                 help="auto: CUDA when available, else the CPU; cuda or cuda:N: that GPU."),
    click.option("--provider", type=choice(Provider), default=_D.provider, show_default=True,
                 help="onnxruntime execution provider of the style pass; auto: CUDA on a CUDA --device, else the CPU."),
    click.option("--precision", type=choice(Precision), default=_D.precision, show_default=True,
                 help="Precision of the convolutions (Grams and losses stay float32); "
                 "auto: bf16 on CUDA, fp32 on the CPU (bf16 there is opt-in: see the README)."),
    click.option("--low-memory", is_flag=True, default=_D.low_memory,
                 help="Recompute activations during backward (checkpointing): much less memory for "
                 "large images, about a third more time per iteration."),
    click.option("--compile", "compile", is_flag=True, default=_D.compile,
                 help="torch.compile the loss (the first iteration compiles; pays on long runs, mostly on CUDA)."),
    click.option("--scales", type=ranged("scales", int), default=None,
                 help=f"Coarse-to-fine stages (0: one per octave above --min-size).  "
                 f"[default: {_D.scales}; 0 with --min-size]"),
    click.option("--min-size", type=ranged("min_size", int), default=None,
                 help=f"Long side of the coarsest stage.  [default: {_D.min_size}]"),
    click.option("--checkpoint-iterations", type=ranged("checkpoint_iterations", int),
                 help="Every N iterations, write the best image so far and the run's state (to --resume from)."),
    click.option("--style-mask", "style_masks", type=MASK, multiple=True, metavar="MASK",
                 help="A greyscale mask per style, in the styles' order: white where that style applies, soft "
                 "values share a pixel (the masks must sum to at most 1; where less, the rest is unstyled)."),
    click.option("--labels", type=MASK, metavar="MAP",
                 help="Instead of --style-mask: a label map, one colour per region; the regions take the styles "
                 "in ascending order of colour (a palette or 0, 1, 2... greyscale map: by index)."),
    click.option("--content-mask", type=MASK, metavar="MASK",
                 help="Where the content counts (white); elsewhere only the styles and smoothness shape the image."),
    click.option("--style-region", "style_regions", multiple=True, metavar="STYLE:MASK",
                 help="Use only part of a style image (white in MASK, over that style) for its targets; STYLE is "
                 "its number (1, 2, ...) or file name."),
    click.option("--mask-mode", type=choice(MaskMode), default=_D.mask_mode, show_default=True,
                 help="soft: masks averaged through the network (soft edges); inside: eroded so that no unit "
                 "sees across a region's border (no bleeding, a seam at the border)."),
    click.option("--bit-depth", type=click.Choice(["8", "16"]), default=str(_D.bit_depth), show_default=True,
                 callback=lambda _ctx, _param, value: int(value) if value is not None else None,
                 help="Bits per channel of PNG and TIFF outputs (and checkpoints); 16 writes the float image "
                 "without rounding it to 8 bits first."),
    click.option("--output-profile", type=choice(OutputProfile), default=_D.output_profile, show_default=True,
                 help="The outputs' colour profile: srgb (tagged as such), or content: converted to the content "
                 "image's embedded ICC profile (Adobe RGB, Display P3, ...) and tagged with it."),
]  # fmt: skip

_NETWORK_OPTIONS: list[Callable[[Callable], Callable]] = [
    click.option("-m", "--model", type=PATH,
                 help="The ONNX extractor (made by `nst export-vgg`).  [default: the cached model of --weights, "
                 "downloaded and exported on first use]"),
    click.option("--weights", metavar="NAME|PATH",
                 help="Without -m: the weights to export the cached model from, a registry name "
                 "(vgg19, vgg19-2015, vgg16, vgg19-torchvision, vgg19-caffe, ...) or a local .mat, .pth, "
                 ".safetensors or ONNX classifier file.  [default: vgg19]"),
    click.option("--weights-layout", type=choice(LayoutChoice), default="auto", show_default=True,
                 help="The input --weights expects: torchvision (RGB, normalized) or caffe (BGR 0-255); "
                 "auto: from a known file's hash, its keys or its preprocessing."),
]  # fmt: skip
_MODEL_OPTIONS: list[Callable[[Callable], Callable]] = [
    *_NETWORK_OPTIONS,
    click.option("--targets", type=PATH,
                 help="Precomputed style Grams (`nst precompute-style`), instead of STYLE images."),
]  # fmt: skip

_REPORT_OPTIONS: list[Callable[[Callable], Callable]] = [
    click.option("--print-iterations", type=click.IntRange(min=1), help="Print the losses every N iterations."),
    click.option("--log/--no-log", default=True, show_default=True,
                 help="Write the losses per iteration to OUTPUT's name + .losses.csv."),
    click.option("--plot", is_flag=True, help="Plot the losses to OUTPUT's name + .losses.png (needs nst[plot])."),
    click.option("--overwrite", is_flag=True, help="Replace outputs (and their logs, plots and checkpoints)."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar, and no line saying the loss scale."),
]  # fmt: skip

CONFIG_PARAMS = tuple(field.name for field in dataclasses.fields(StylizeConfig))


@dataclass(frozen=True)
class ModelSource:
    """-m, --weights (and its --weights-layout) and --targets: the network a command runs, and
    precomputed style Grams."""

    model: Path | None = None
    weights: str | None = None
    targets: Path | None = None
    weights_layout: LayoutChoice = "auto"  # the input convention of a .pth/.safetensors/.onnx --weights

    def __post_init__(self) -> None:
        if self.model is not None and self.weights is not None:
            raise ConfigError("give -m MODEL.onnx or --weights, not both")

    def resolve(self, pooling: Pooling | None) -> Path:
        """-m as given, else the cached model of --weights (downloaded and exported on first
        use, with a progress bar and a line per step)."""
        from nst.cli.cache_cmd import download_bar, echo_step
        from nst.export.cached import resolve_model

        with download_bar("weights") as progress:
            return resolve_model(
                self.model,
                weights=self.weights,
                pooling=pooling,
                layout=self.weights_layout,
                progress=progress,
                notify=echo_step,
            )


@dataclass(frozen=True)
class Reporting:
    """What a stylizing command shows and writes besides its images."""

    print_every: int | None = None  # a loss line every N iterations
    log: bool = True  # OUT.losses.csv
    plot: bool = False  # OUT.losses.png
    overwrite: bool = False
    quiet: bool = False  # no progress bar


def stylize_options(command: Callable) -> Callable:
    """Add the model, config and report options to a click command (in --help order). The
    command receives them grouped: `source` (ModelSource), `report` (Reporting) and `options`
    (the config's values, for `stylize_config`)."""

    @functools.wraps(command)
    def grouped(**params: Any) -> Any:
        source = ModelSource(
            params.pop("model"), params.pop("weights"), params.pop("targets"), params.pop("weights_layout")
        )
        report = Reporting(*(params.pop(name) for name in ("print_iterations", "log", "plot", "overwrite", "quiet")))
        options = {name: params.pop(name) for name in CONFIG_PARAMS}
        return command(source=source, report=report, options=options, **params)

    for option in reversed([*_MODEL_OPTIONS, *_CONFIG_OPTIONS, *_REPORT_OPTIONS]):
        grouped = option(grouped)
    return grouped


def model_options(command: Callable) -> Callable:
    """Add -m, --weights and --weights-layout to a command that runs a network on images it is
    given (no --targets); it receives them as `source` (ModelSource)."""

    @functools.wraps(command)
    def grouped(**params: Any) -> Any:
        source = ModelSource(params.pop("model"), params.pop("weights"), None, params.pop("weights_layout"))
        return command(source=source, **params)

    for option in reversed(_NETWORK_OPTIONS):
        grouped = option(grouped)
    return grouped


def stylize_config(params: dict[str, Any], base: StylizeConfig | None = None) -> StylizeConfig:
    """The StylizeConfig of parsed options (`params`, the command's `options`). Options the user did not
    give come from `base` when there is one; a seed is drawn when there is neither, so that
    the output records what reproduces it. Warns about options the optimiser does not use."""
    ctx = click.get_current_context()
    given = {name for name in CONFIG_PARAMS if _given(ctx, name)}
    values = {name: params[name] for name in CONFIG_PARAMS}
    if base is not None:
        values.update({name: getattr(base, name) for name in CONFIG_PARAMS if name not in given})
    else:
        if values["scales"] is None:
            values["scales"] = 0 if values["min_size"] is not None else _D.scales
        if values["min_size"] is None:
            values["min_size"] = _D.min_size
        if values["seed"] is None:
            values["seed"] = secrets.randbelow(2**63)
    config = StylizeConfig(**values)
    unused = ADAM_ONLY if config.optimizer == "lbfgs" else LBFGS_ONLY
    ignored = [option_name(name) for name in unused if name in given]
    if ignored:
        names = ignored[0] if len(ignored) == 1 else f"{', '.join(ignored[:-1])} and {ignored[-1]}"
        other = "adam" if config.optimizer == "lbfgs" else "lbfgs"
        warnings.warn(
            f"{names} only {'applies' if len(ignored) == 1 else 'apply'} to --optimizer {other}; "
            f"{config.optimizer} ignores {'it' if len(ignored) == 1 else 'them'}",
            NSTWarning,
            stacklevel=2,
        )
    return config


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
