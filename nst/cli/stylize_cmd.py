"""`nst stylize`: content photo + style images (or a targets file) -> stylized image."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from nst.cli.options import choice, comma_list, ranged
from nst.errors import ConfigError
from nst.runtime.config import ColorMode, Optimizer, Pooling, Precision, Provider, Step, StylizeConfig

_PATH = click.Path(path_type=Path, dir_okay=False)
_D = StylizeConfig()  # the defaults, in one place


@click.command("stylize")
@click.argument("content", type=_PATH)
@click.argument("styles", metavar="[STYLE]...", nargs=-1, type=_PATH)
@click.option(
    "-m",
    "--model",
    type=_PATH,
    help="The ONNX extractor (made by `nst export-vgg`).  [default: the cached model of --weights, "
    "downloaded and exported on first use]",
)
@click.option(
    "--weights",
    metavar="NAME|PATH",
    help="Without -m: the weights to export the cached model from, a registry name "
    "(vgg19, vgg19-2015, vgg16) or a local .mat file.  [default: vgg19]",
)
@click.option(
    "-o",
    "--output",
    type=_PATH,
    required=True,
    help="The image to write; the format follows the extension (PNG, JPEG at quality 95, ...).",
)
@click.option(
    "--targets", type=_PATH, help="Precomputed style Grams (`nst precompute-style`), instead of STYLE images."
)
@click.option(
    "--iterations",
    type=ranged("iterations", int),
    default=_D.iterations,
    show_default=True,
    help="Optimiser iterations in all (split evenly over --scales stages).",
)
@click.option("--width", type=ranged("width", int), help="Resize the content to this width (keeps the aspect).")
@click.option(
    "--style-scales",
    type=comma_list("style_scales"),
    metavar="S[,S...]",
    help="Style size: style width = scale x content width; one value, or one per style.  [default: 1]",
)
@click.option("--content-weight", type=ranged("content_weight"), default=_D.content_weight, show_default=True)
@click.option(
    "--content-weight-blend",
    type=ranged("content_weight_blend"),
    default=_D.content_weight_blend,
    show_default=True,
    help="Share of the content weight on relu4_2; the rest goes to relu5_2.",
)
@click.option("--style-weight", type=ranged("style_weight"), default=_D.style_weight, show_default=True)
@click.option(
    "--style-layer-weight-exp",
    type=ranged("style_layer_weight_exp"),
    default=_D.style_layer_weight_exp,
    show_default=True,
    help="Style layer l (relu1_1 = 0 ... relu5_1 = 4) weighs EXP^l; weights sum to 1.",
)
@click.option(
    "--style-blend-weights",
    type=comma_list("style_blend_weights"),
    metavar="W[,W...]",
    help="One weight per style (comma-separated), normalised to sum to 1.  [default: equal]",
)
@click.option(
    "--tv-weight",
    type=ranged("tv_weight"),
    default=_D.tv_weight,
    show_default=True,
    help="Total-variation (smoothness) weight.",
)
@click.option(
    "--learning-rate",
    type=ranged("learning_rate"),
    default=_D.learning_rate,
    show_default=True,
    help="Adam's step size.",
)
@click.option("--beta1", type=ranged("beta1"), default=_D.beta1, show_default=True, help="Adam's beta1.")
@click.option("--beta2", type=ranged("beta2"), default=_D.beta2, show_default=True, help="Adam's beta2.")
@click.option("--epsilon", type=ranged("epsilon"), default=_D.epsilon, show_default=True, help="Adam's epsilon.")
@click.option("--initial", type=_PATH, help="Start from this image (resized to the content) instead of noise.")
@click.option(
    "--initial-noiseblend",
    type=ranged("initial_noiseblend"),
    help="Share of noise blended into the start image (--initial, else the content).  "
    "[default: 0 with --initial, else 1]",
)
@click.option(
    "--preserve-colors",
    type=choice(ColorMode),
    is_flag=False,
    flag_value="luminance",
    default=None,
    help="Keep the content's colours: 'luminance' (alone: the reference's luma transfer) "
    "or 'histogram' (match the colour statistics).",
)
@click.option(
    "--pooling",
    type=choice(Pooling),
    help="Pooling between blocks; if the model was exported with the other kind, its "
    "convolutions are reused with this pooling.  [default: the model's]",
)
@click.option(
    "--optimizer",
    type=choice(Optimizer),
    default=_D.optimizer,
    show_default=True,
    help="Optimiser (the default reached a lower loss in the same time; see the README).",
)
@click.option(
    "--seed",
    type=ranged("seed", int),
    help="Random seed; the same seed reproduces the output bit for bit on the CPU.  "
    "[default: a random one, recorded in the PNG]",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=_D.device,
    show_default=True,
    help="auto: CUDA when available, else the CPU.",
)
@click.option(
    "--provider",
    type=choice(Provider),
    default=_D.provider,
    show_default=True,
    help="onnxruntime execution provider of the style pass; auto: CUDA on a CUDA --device, else the CPU.",
)
@click.option(
    "--precision",
    type=choice(Precision),
    default=_D.precision,
    show_default=True,
    help="Precision of the convolutions (Grams and losses stay float32); auto: bf16 on CUDA, fp32 on the CPU.",
)
@click.option(
    "--low-memory",
    is_flag=True,
    default=_D.low_memory,
    help="Recompute activations during backward (checkpointing): much less memory for "
    "large images, about a third more time per iteration.",
)
@click.option(
    "--compile",
    "compile",
    is_flag=True,
    default=_D.compile,
    help="torch.compile the loss (the first iteration compiles; pays on long runs, mostly on CUDA).",
)
@click.option(
    "--scales",
    type=ranged("scales", int),
    default=None,
    help=f"Coarse-to-fine stages (0: one per octave above --min-size).  [default: {_D.scales}; 0 with --min-size]",
)
@click.option(
    "--min-size",
    type=ranged("min_size", int),
    default=None,
    help=f"Long side of the coarsest stage.  [default: {_D.min_size}]",
)
@click.option(
    "--checkpoint-iterations",
    type=ranged("checkpoint_iterations", int),
    help="Write the best image so far every N iterations.",
)
@click.option(
    "--checkpoint-output",
    metavar="TEMPLATE",
    help="Checkpoint file names, with the iteration as %s or {} (e.g. 'out_%s.png').  [default: OUTPUT's name + .NNNN]",
)
@click.option("--print-iterations", type=click.IntRange(min=1), help="Print the losses every N iterations.")
@click.option(
    "--log/--no-log",
    default=True,
    show_default=True,
    help="Write the losses per iteration to OUTPUT's name + .losses.csv.",
)
@click.option("--plot", is_flag=True, help="Plot the losses to OUTPUT's name + .losses.png (needs nst[plot]).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT (and the log, plot and checkpoints) if they exist.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def stylize_cmd(
    content: Path,
    styles: tuple[Path, ...],
    model: Path | None,
    weights: str | None,
    output: Path,
    targets: Path | None,
    checkpoint_output: str | None,
    print_iterations: int | None,
    log: bool,
    plot: bool,
    overwrite: bool,
    quiet: bool,
    scales: int | None,
    min_size: int | None,
    seed: int | None,
    **options,
) -> None:
    """Stylize CONTENT with the STYLE images (or --targets) and write OUTPUT.

    \b
    nst stylize photo.jpg style.jpg -o out.png      (downloads VGG-19 once)
    nst stylize photo.jpg style.jpg -m vgg19-nst.onnx -o out.png
    nst stylize photo.jpg --targets style.targets -m vgg19-nst.onnx -o out.png
    """
    import secrets

    defaults = _D
    if model is not None and weights is not None:
        raise ConfigError("give -m MODEL.onnx or --weights, not both")
    _hint_misplaced_numbers(styles)
    # No random seed given: draw one here, so that the PNG records what reproduces it.
    config = StylizeConfig(
        **options,
        scales=scales if scales is not None else (0 if min_size is not None else defaults.scales),
        min_size=min_size if min_size is not None else defaults.min_size,
        seed=seed if seed is not None else secrets.randbelow(2**31),
    )
    paths = _output_paths(output, config, checkpoint_output, log, plot)
    from nst.fileio import check_writable
    from nst.runtime.images import output_format

    output_format(output)
    for path in paths.all():  # before any work: nothing is computed for an output that cannot be written
        check_writable(path, overwrite)
    if plot:
        _require_matplotlib()
    if config.provider not in ("auto", "cpu"):  # a named provider that cannot run fails before any work
        from nst.runtime.ort_extractor import resolve_providers

        resolve_providers(config.provider)
    model_path = _resolve_model(model, weights, config.pooling)
    _run(content, styles, model_path, targets, config, paths, overwrite, print_iterations, quiet)


def _resolve_model(model: Path | None, weights: str | None, pooling: Pooling | None) -> Path:
    """-m as given, else the cached model of --weights, with a download bar and notes."""
    from nst.cli.cache_cmd import download_bar, echo_step
    from nst.export.cached import resolve_model

    with download_bar("weights") as progress:
        return resolve_model(model, weights=weights, pooling=pooling, progress=progress, notify=echo_step)


class _Paths:
    def __init__(self, output: Path, checkpoints: dict[int, Path], log: Path | None, plot: Path | None):
        self.output, self.checkpoints, self.log, self.plot = output, checkpoints, log, plot

    def all(self) -> list[Path]:
        return [self.output, *self.checkpoints.values(), *(p for p in (self.log, self.plot) if p)]


def _output_paths(output: Path, config, template: str | None, log: bool, plot: bool) -> _Paths:
    checkpoints: dict[int, Path] = {}
    if config.checkpoint_iterations:
        template = template or str(output.with_name(f"{output.stem}.{{:04d}}{output.suffix}"))
        step = config.checkpoint_iterations
        checkpoints = {i: checkpoint_path(template, i) for i in range(step, config.iterations, step)}
    elif template:
        raise ConfigError("--checkpoint-output needs --checkpoint-iterations N")
    return _Paths(
        output,
        checkpoints,
        output.with_name(f"{output.stem}.losses.csv") if log else None,
        output.with_name(f"{output.stem}.losses.png") if plot else None,
    )


def checkpoint_path(template: str, iteration: int) -> Path:
    """The checkpoint file for `iteration`: the reference's `%s` template, or a `{}` one."""
    try:
        if "{" in template:
            name = template.format(iteration, iteration=iteration)
        elif "%" in template:
            name = template % iteration
        else:
            name = template
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ConfigError(f"--checkpoint-output {template!r} is not a valid template ({exc})") from None
    if name == template:
        raise ConfigError(
            f"--checkpoint-output {template!r} must contain the iteration as %s or {{}} (e.g. out_%s.png)"
        )
    return Path(name)


def _hint_misplaced_numbers(styles: tuple[Path, ...]) -> None:
    # The reference takes `--style-blend-weights 0.8 0.2`; here the second number would be a STYLE.
    for style in styles:
        try:
            float(str(style))
        except ValueError:
            continue
        if not style.exists():
            raise ConfigError(
                f"style image {style} not found; list values with commas, "
                "e.g. --style-blend-weights 0.8,0.2 or --style-scales 1,0.5"
            )


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'nst[plot]' (or pip install matplotlib)") from None


def _run(
    content,
    styles,
    model_path,
    targets,
    config,
    paths: _Paths,
    overwrite: bool,
    print_iterations: int | None,
    quiet: bool,
) -> None:
    from tqdm import tqdm

    from nst.runtime.images import save_image
    from nst.runtime.stylize import StylizeInterrupted, stylize

    text = {"nst:parameters": _parameters(content, styles, model_path, targets, config), "Software": "nst"}
    steps: list[Step] = []
    bar = tqdm(
        total=config.iterations,
        unit="it",
        file=sys.stderr,
        disable=quiet,
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )
    bar.set_description("stylize (set-up)")

    def on_step(step) -> None:
        if not steps:  # restart the clock, so the ETA leaves out the set-up
            bar.reset()
            bar.set_description("stylize")
        steps.append(step)
        bar.set_postfix_str(
            f"loss {step.total:.4g} (content {step.content:.3g}, style {step.style:.3g}, "
            f"tv {step.tv:.3g}) {step.size[1]}x{step.size[0]}",
            refresh=False,
        )
        bar.update(1)
        if print_iterations and step.iteration % print_iterations == 0:
            tqdm.write(
                f"iteration {step.iteration:5d}/{step.iterations}: total {step.total:.6g}  content "
                f"{step.content:.6g}  style {step.style:.6g}  tv {step.tv:.6g}  ({step.elapsed:.1f} s)",
                file=sys.stderr,
            )
        if step.image is not None:
            save_image(step.image, paths.checkpoints[step.iteration], overwrite=overwrite, text=text)

    start = time.perf_counter()
    _choose_backends(config.device)
    try:
        image = stylize(content, styles, config=config, model=model_path, targets=targets, callback=on_step)
    except StylizeInterrupted as stop:
        bar.close()
        save_image(stop.image, paths.output, overwrite=overwrite, text=text)
        _write_logs(steps, paths, overwrite)
        click.echo(
            f"Interrupted at iteration {stop.iteration}: wrote the best image so far to {paths.output}", err=True
        )
        sys.exit(130)
    except KeyboardInterrupt:
        bar.close()
        click.echo("Interrupted before the first iteration; nothing written", err=True)
        sys.exit(130)
    finally:
        bar.close()
    save_image(image, paths.output, overwrite=overwrite, text=text)
    _write_logs(steps, paths, overwrite)
    final = steps[-1].total if steps else float("nan")
    click.echo(
        f"wrote {paths.output} ({image.width}x{image.height}, {config.optimizer}, {config.iterations} "
        f"iterations, final loss {final:.6g}) in {time.perf_counter() - start:.1f} s"
    )


def _choose_backends(device: str) -> None:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        # Fixed shapes for the whole run: let cuDNN pick its fastest algorithms once.
        torch.backends.cudnn.benchmark = True


def _parameters(content, styles, model_path, targets, config) -> str:
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    values.update(
        content=Path(content).name,
        styles=[Path(s).name for s in styles],
        model=Path(model_path).name,
        targets=Path(targets).name if targets else None,
    )
    return json.dumps(values, sort_keys=True)


def _write_logs(steps, paths: _Paths, overwrite: bool) -> None:
    from nst.fileio import atomic_path

    if paths.log:
        with atomic_path(paths.log, overwrite=overwrite) as tmp, open(tmp, "w") as f:
            f.write("iteration,scale,width,height,elapsed_s,total,content,style,tv\n")
            for s in steps:
                f.write(
                    f"{s.iteration},{s.stage},{s.size[1]},{s.size[0]},{s.elapsed:.4f},"
                    f"{s.total:.9g},{s.content:.9g},{s.style:.9g},{s.tv:.9g}\n"
                )
    if paths.plot and steps:
        _plot(steps, paths.plot, overwrite)


def _plot(steps, path: Path, overwrite: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nst.fileio import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = [s.iteration for s in steps]
    for name in ("total", "content", "style", "tv"):
        ax.plot(x, [max(getattr(s, name), 1e-12) for s in steps], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
