"""`nst stylize`: content photo + style images (or a targets file) -> stylized image."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nst.cli.stylize_options import PATH, stylize_config, stylize_options
from nst.errors import ConfigError
from nst.models.layers import Pooling

if TYPE_CHECKING:
    from nst.cli.outputs import OutputPaths
    from nst.runtime.config import Step, StylizeConfig
    from nst.runtime.state import RunState
    from nst.serve.preview import Preview


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
@click.option("--preview", type=click.IntRange(0, 65535), is_flag=False, flag_value=8765, metavar="[PORT]",
              help="Watch the run in the browser at http://127.0.0.1:PORT/ (read-only; needs nst[serve]).  "
              "[default port: 8765]")  # fmt: skip
@stylize_options
def stylize_cmd(content: Path, styles: tuple[Path, ...], output: Path, checkpoint_output: str | None,
                resume: Path | None, preview: int | None, model: Path | None, weights: str | None,
                targets: Path | None, print_iterations: int | None, log: bool, plot: bool, overwrite: bool,
                quiet: bool, **options: Any) -> None:  # fmt: skip
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
    from nst.runtime.images import output_format
    from nst.runtime.state import load_state

    if model is not None and weights is not None:
        raise ConfigError("give -m MODEL.onnx or --weights, not both")
    _hint_misplaced_numbers(styles)
    state = load_state(resume) if resume is not None else None
    base = StylizeConfig.from_options(state.config) if state is not None else None
    config = stylize_config(options, base)
    paths = output_paths(output, config, template=checkpoint_output, log=log, plot=plot)
    output_format(output)
    paths.check(overwrite=overwrite, after=state.iteration if state else 0)  # before any work
    if plot:
        require_matplotlib()
    if config.provider not in ("auto", "cpu"):  # a named provider that cannot run fails before any work
        from nst.runtime.ort_extractor import resolve_providers

        resolve_providers(config.provider)
    model_path = _resolve_model(model, weights, config.pooling)
    with _live_view(preview, config, content, styles) as live:
        _run(content, styles, model_path, targets, config, paths, state=state, overwrite=overwrite,
             print_every=print_iterations, quiet=quiet, live=live)  # fmt: skip


def _live_view(port: int | None, config: StylizeConfig, content: Path, styles: tuple[Path, ...]) -> Any:
    """--preview's server for the length of the run (nothing without it)."""
    if port is None:
        return contextlib.nullcontext(None)
    from nst.cli.serve_cmd import require_extra

    require_extra()
    from nst.serve.preview import previewing

    return previewing(port, config=config, content=content, styles=styles)


def _resolve_model(model: Path | None, weights: str | None, pooling: Pooling | None) -> Path:
    """-m as given, else the cached model of --weights, with a download bar and notes."""
    from nst.cli.cache_cmd import download_bar, echo_step
    from nst.export.cached import resolve_model

    with download_bar("weights") as progress:
        return resolve_model(model, weights=weights, pooling=pooling, progress=progress, notify=echo_step)


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
         quiet: bool, live: Preview | None = None) -> None:  # fmt: skip
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

    if live is not None:
        click.echo(f"live view: {live.url}", err=True)

    def on_step(step: Step) -> None:
        display(step)
        rows.append(step.row())
        if live is not None:
            live.callback(step)
        if step.image is not None:
            checkpoint = paths.checkpoints[step.iteration]
            save_image(step.image, checkpoint, overwrite=overwrite, text=text)
            if step.state is not None:
                save_state(step.state, state_path(checkpoint), overwrite=overwrite)

    try:
        image = session.stylize(content, styles=styles, targets=targets, callback=on_step, resume=state)
    except StylizeInterrupted as stop:
        display.close()
        save_final(stop.image, paths.output, overwrite=overwrite, text=text)
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
        save_final(stop.image, paths.output, overwrite=overwrite, text=text)
        raise click.ClickException(f"{stop}; wrote the best image so far to {paths.output}") from None
    except KeyboardInterrupt:
        display.close()
        click.echo("Interrupted before the first iteration; nothing written", err=True)
        sys.exit(130)
    finally:
        display.close()
    save_final(image, paths.output, overwrite=overwrite, text=text)
    write_log(rows, paths, overwrite=overwrite)
    final = rows[-1]["stage"] if rows else 0
    loss = min((r["total"] for r in rows if r["stage"] == final), default=float("nan"))
    click.echo(
        f"wrote {paths.output} ({image.width}x{image.height}, {config.optimizer}, {config.iterations} iterations, "
        f"loss {loss:.6g}) in {time.perf_counter() - start:.1f} s"
    )


def choose_backends(device: str) -> None:
    """The CLI's choice for the whole process: fixed shapes, so cuDNN may pick its fastest
    algorithms once (the library sets no global switch)."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
