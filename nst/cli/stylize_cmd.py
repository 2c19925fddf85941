"""`nst stylize`: content photo + style images (or a targets file) -> stylized image."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nst.cli.stylize_options import PATH, stylize_config, stylize_options
from nst.errors import ConfigError
from nst.models.convention import LayoutChoice
from nst.models.layers import Pooling

if TYPE_CHECKING:
    from nst.cli.outputs import OutputPaths
    from nst.runtime.config import Step, StylizeConfig
    from nst.runtime.state import RunState


@click.command("stylize")
@click.argument("content", type=PATH)
@click.argument("styles", metavar="[STYLE]...", nargs=-1, type=PATH)
@click.option(
    "-o",
    "--output",
    type=PATH,
    required=True,
    help="The image to write; the format follows the extension (PNG, JPEG at quality 95, ...).",
)
@click.option(
    "--checkpoint-output",
    metavar="TEMPLATE",
    help="Checkpoint file names, with the iteration as %s or {} (e.g. 'out_%s.png').  [default: OUTPUT's name + .NNNN]",
)
@click.option(
    "--resume",
    type=PATH,
    metavar="STATE",
    help="Continue the run saved in STATE (a checkpoint's .state file, or the one Ctrl-C wrote), "
    "with the same CONTENT and STYLEs; options not given are the saved run's.",
)
@stylize_options
def stylize_cmd(content: Path, styles: tuple[Path, ...], output: Path, checkpoint_output: str | None,
                resume: Path | None, model: Path | None, weights: str | None, weights_layout: LayoutChoice,
                targets: Path | None,
                print_iterations: int | None, log: bool, plot: bool, overwrite: bool, quiet: bool,
                **options: Any) -> None:  # fmt: skip
    """Stylize CONTENT with the STYLE images (or --targets) and write OUTPUT.

    The content is resized so that its long side is --size px (512 by default); styles are
    sized relative to it (--style-scales).

    \b
    nst stylize photo.jpg style.jpg -o out.png      (downloads VGG-19 once)
    nst stylize photo.jpg style.jpg -m vgg19-nst.onnx -o out.png
    nst stylize photo.jpg --targets style.targets -m vgg19-nst.onnx -o out.png
    nst stylize photo.jpg style.jpg -o out.png --resume out.0500.state --overwrite
    """
    from nst.cli.outputs import output_paths, require_matplotlib
    from nst.runtime.config import StylizeConfig
    from nst.runtime.icc import output_profile
    from nst.runtime.images import check_output
    from nst.runtime.state import load_state

    if model is not None and weights is not None:
        raise ConfigError("give -m MODEL.onnx or --weights, not both")
    _hint_misplaced_numbers(styles)
    state = load_state(resume) if resume is not None else None
    base = StylizeConfig.from_options(state.config) if state is not None else None
    config = stylize_config(options, base)
    paths = output_paths(output, config, template=checkpoint_output, log=log, plot=plot)
    for path in (output, *paths.checkpoints.values()):
        check_output(path, bit_depth=config.bit_depth, embed_profile=config.output_profile == "content")
    paths.check(overwrite=overwrite, after=state.iteration if state else 0)  # before any work
    profile = output_profile(config.output_profile, content, bit_depth=config.bit_depth)
    if plot:
        require_matplotlib()
    if config.provider not in ("auto", "cpu"):  # a named provider that cannot run fails before any work
        from nst.runtime.ort_extractor import resolve_providers

        resolve_providers(config.provider)
    model_path = _resolve_model(model, weights, config.pooling, weights_layout)
    _run(content, styles, model_path, targets, config, paths, state=state, overwrite=overwrite,
         print_every=print_iterations, quiet=quiet, profile=profile)  # fmt: skip


def _resolve_model(
    model: Path | None, weights: str | None, pooling: Pooling | None, layout: LayoutChoice = "auto"
) -> Path:
    """-m as given, else the cached model of --weights, with a download bar and notes."""
    from nst.cli.cache_cmd import download_bar, echo_step
    from nst.export.cached import resolve_model

    with download_bar("weights") as progress:
        return resolve_model(
            model, weights=weights, pooling=pooling, layout=layout, progress=progress, notify=echo_step
        )


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


def _run(content: Path, styles: tuple[Path, ...], model_path: Path, targets: Path | None, config: StylizeConfig,
         paths: OutputPaths, *, state: RunState | None, overwrite: bool, print_every: int | None,
         quiet: bool, profile: bytes | None = None) -> None:  # fmt: skip
    from nst.cli.outputs import save_final, write_log
    from nst.cli.progress import StepDisplay
    from nst.runtime.device import precision_name
    from nst.runtime.images import save_image
    from nst.runtime.provenance import provenance
    from nst.runtime.state import save_state, state_path
    from nst.runtime.stylize import StylizeDiverged, StylizeInterrupted, Stylizer

    choose_backends(config.device)
    start = time.perf_counter()
    session = Stylizer(model_path, config=config, keep_extractor=False)
    text = provenance(config, content=content, styles=styles, model=model_path, targets=targets,
                      weights_sha256=session.model.info.weights_sha256, device=str(session.device),
                      precision=precision_name(session.device, config.precision))  # fmt: skip
    rows = list(state.history) if state is not None else []
    display = StepDisplay(config.iterations, quiet=quiet, print_every=print_every, done=len(rows))

    def on_step(step: Step) -> None:
        display(step)
        rows.append(step.row())
        if step.image is not None:
            checkpoint = paths.checkpoints[step.iteration]
            save_image(step.rendered or step.image, checkpoint, overwrite=overwrite, text=text,
                       bit_depth=config.bit_depth, profile=profile)  # fmt: skip
            if step.state is not None:
                save_state(step.state, state_path(checkpoint), overwrite=overwrite)

    try:
        image = session.render(content, styles=styles, targets=targets, callback=on_step, resume=state)
    except StylizeInterrupted as stop:
        display.close()
        save_final(stop.rendered or stop.image, paths.output, overwrite=overwrite, text=text, config=config,
                   profile=profile)  # fmt: skip
        write_log(rows, paths, overwrite=overwrite)
        note = ""
        if stop.state is not None:
            save_state(stop.state, state_path(paths.output), overwrite=overwrite)
            note = f"; continue with --resume {state_path(paths.output)} --overwrite"
        click.echo(f"Interrupted at iteration {stop.iteration}: wrote the best image so far to {paths.output}{note}",
                   err=True)  # fmt: skip
        sys.exit(130)
    except StylizeDiverged as stop:
        display.close()
        write_log(rows, paths, overwrite=overwrite)
        if stop.image is None:
            raise
        save_final(stop.rendered or stop.image, paths.output, overwrite=overwrite, text=text, config=config,
                   profile=profile)  # fmt: skip
        raise click.ClickException(f"{stop}; wrote the best image so far to {paths.output}") from None
    except KeyboardInterrupt:
        display.close()
        click.echo("Interrupted before the first iteration; nothing written", err=True)
        sys.exit(130)
    finally:
        display.close()
    save_final(image, paths.output, overwrite=overwrite, text=text, config=config, profile=profile)
    write_log(rows, paths, overwrite=overwrite)
    final = rows[-1]["stage"] if rows else 0
    loss = min((r["total"] for r in rows if r["stage"] == final), default=float("nan"))
    click.echo(
        f"wrote {paths.output} ({image.image.width}x{image.image.height}, {config.optimizer}, {config.iterations} iterations, "
        f"loss {loss:.6g}) in {time.perf_counter() - start:.1f} s"
    )


def choose_backends(device: str) -> None:
    """The CLI's choice for the whole process: fixed shapes, so cuDNN may pick its fastest
    algorithms once (the library sets no global switch)."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
