"""`nst stylize`: content photo + style images (or a targets file) -> stylized image."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from nst.cli import INTERRUPTED
from nst.cli.stylize_options import PATH, ModelSource, Reporting, stylize_config, stylize_options
from nst.errors import ConfigError
from nst.runtime.config import StylizeConfig

if TYPE_CHECKING:
    from nst.cli.outputs import Encoding, OutputPaths
    from nst.cli.progress import StepDisplay
    from nst.runtime.loop import Step
    from nst.runtime.run import StylizeInterrupted
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
@click.option(
    "--preview",
    type=click.IntRange(0, 65535),
    is_flag=False,
    flag_value=8765,
    metavar="[PORT]",
    help="Watch the run in the browser at http://127.0.0.1:PORT/ (read-only; needs nst[serve]).  [default port: 8765]",
)
@stylize_options
def stylize_cmd(
    content: Path,
    styles: tuple[Path, ...],
    output: Path,
    checkpoint_output: str | None,
    resume: Path | None,
    preview: int | None,
    source: ModelSource,
    report: Reporting,
    options: dict[str, Any],
) -> None:
    """Stylize CONTENT with the STYLE images (or --targets) and write OUTPUT.

    The content is resized so that its long side is --size px (512 by default); styles are
    sized relative to it (--style-scales).

    \b
    nst stylize photo.jpg style.jpg -o out.png      (downloads VGG-19 once)
    nst stylize photo.jpg style.jpg -m vgg19-nst.onnx -o out.png
    nst stylize photo.jpg --targets style.targets -m vgg19-nst.onnx -o out.png
    nst stylize photo.jpg style.jpg -o out.png --resume out.0500.state --overwrite
    """
    from nst.cli.outputs import output_paths
    from nst.clobber import refuse_inputs_as_outputs
    from nst.runtime.early_memory import check_memory_early
    from nst.runtime.icc import output_profile
    from nst.runtime.images import check_output
    from nst.runtime.ort_extractor import check_provider
    from nst.runtime.record import require_matplotlib
    from nst.runtime.state import load_state

    _hint_misplaced_numbers(styles)
    state = load_state(resume) if resume is not None else None
    base = StylizeConfig.from_options(state.config) if state is not None else None
    config = stylize_config(options, base)
    check_memory_early(content, config)  # before torch loads: a 12000 px run is refused in well under a second
    paths = output_paths(output, config, template=checkpoint_output, log=report.log, plot=report.plot)
    for path in (output, *paths.checkpoints.values()):
        check_output(path, bit_depth=config.bit_depth, embed_profile=config.output_profile == "content")
    refuse_inputs_as_outputs(
        paths.all(), _inputs(content, styles, source.targets, config), fix="choose another -o or --checkpoint-output"
    )
    if state is None:
        _hint_resumable(output, paths)
    paths.check(overwrite=report.overwrite, after=state.iteration if state else 0)  # before any work
    profile = output_profile(config.output_profile, content, bit_depth=config.bit_depth)
    if report.plot:
        require_matplotlib()
    check_provider(config.provider)
    model = source.resolve(config.pooling)
    with _live_view(preview, config, content, styles) as live:
        _run(
            content,
            styles,
            model=model,
            targets=source.targets,
            config=config,
            paths=paths,
            state=state,
            report=report,
            profile=profile,
            live=live,
        )


def _live_view(port: int | None, config: StylizeConfig, content: Path, styles: tuple[Path, ...]) -> Any:
    """--preview's server for the length of the run (nothing without it)."""
    if port is None:
        return contextlib.nullcontext(None)
    from nst.cli.serve_cmd import require_extra

    require_extra()
    from nst.serve.preview import previewing

    return previewing(port, config=config, content=content, styles=styles)


def _hint_resumable(output: Path, paths: OutputPaths) -> None:
    """A run of this output that was stopped (killed, or Ctrl-C) left a state: say how to
    continue it, before this run starts again from the beginning."""
    from nst.runtime.state import resumable_state

    found = resumable_state(output, paths.checkpoints.values())
    if found is not None:
        click.echo(
            f"note: {found.path} holds an unfinished run of {output} (iteration {found.iteration} of "
            f"{found.iterations}); to continue it instead, add --resume {found.path} --overwrite",
            err=True,
        )


def _inputs(
    content: Path, styles: tuple[Path, ...], targets: Path | None, config: StylizeConfig
) -> dict[str, Path | None]:
    """The files a run reads, by role, that no output may replace."""
    named: dict[str, Path | None] = {f"style {i + 1}": style for i, style in enumerate(styles)}
    initial = Path(config.initial) if config.initial is not None else None
    return {"the content": content, **named, "the --targets file": targets, "the --initial image": initial}


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


def _run(
    content: Path,
    styles: tuple[Path, ...],
    *,
    model: Path,
    targets: Path | None,
    config: StylizeConfig,
    paths: OutputPaths,
    state: RunState | None,
    report: Reporting,
    profile: bytes | None,
    live: Preview | None = None,
) -> None:
    from nst.cli.outputs import Encoding, save_final
    from nst.cli.progress import StepDisplay
    from nst.runtime.hardware import emulated_bf16, precision_line
    from nst.runtime.loss_scale import describe_loss_scale
    from nst.runtime.record import final_loss
    from nst.runtime.stylize import StylizeDiverged, StylizeInterrupted, Stylizer

    choose_backends(config.device)
    start = time.perf_counter()
    session = Stylizer(model, config=config, keep_extractor=False)
    requested, config = config.loss_scale, session.resolve(config)  # auto: the scale for these weights
    text = session.provenance(config, content=content, styles=styles, targets=targets)
    encoding = Encoding(text, config.bit_depth, profile)
    rows = list(state.history) if state is not None else []
    display = StepDisplay(config.iterations, quiet=report.quiet, print_every=report.print_every, done=len(rows))
    overwrite = report.overwrite
    emulated = emulated_bf16(session.device, config.precision)
    if emulated is not None:
        click.echo(f"warning: {emulated}", err=True)  # now: the first iteration may take minutes
    # Said at the first iteration, like the bar, so that an error in the set-up stays one line.
    first = [] if report.quiet else [precision_line(session.device, config.precision),
                                     describe_loss_scale(config, session.model.info, requested=requested)]  # fmt: skip
    on_step = _recorder(display, rows, paths, encoding, overwrite=overwrite, first_lines=first)
    if live is not None:
        live.job.config = config  # the page shows the scale and weights that apply, as the PNG records them
        click.echo(f"live view: {live.url}", err=True)
        on_step = live.following(on_step)
    try:
        image = session.render(content, styles=styles, targets=targets, callback=on_step, resume=state)
    except StylizeInterrupted as stop:
        display.close()
        _keep_interrupted(stop, rows, paths, encoding, overwrite=overwrite)
    except StylizeDiverged as stop:
        display.close()
        paths.log.write(rows, overwrite=overwrite)
        if stop.image is None:
            raise
        save_final(stop.rendered or stop.image, paths.output, overwrite=overwrite, encoding=encoding)
        raise click.ClickException(f"{stop}; wrote the best image so far to {paths.output}") from None
    except KeyboardInterrupt:
        display.close()
        click.echo("Interrupted before the first iteration; nothing written", err=True)
        sys.exit(INTERRUPTED)
    finally:
        display.close()
    save_final(image, paths.output, overwrite=overwrite, encoding=encoding)
    paths.log.write(rows, overwrite=overwrite)
    loss = final_loss(rows)
    height, width = image.pixels.shape[:2]
    click.echo(
        f"wrote {paths.output} ({width}x{height}, {config.optimizer}, {config.iterations} iterations, "
        f"loss {loss if loss is not None else float('nan'):.6g}) in {time.perf_counter() - start:.1f} s"
    )


def _recorder(
    display: StepDisplay,
    rows: list[dict[str, Any]],
    paths: OutputPaths,
    encoding: Encoding,
    *,
    overwrite: bool,
    first_lines: Sequence[str] = (),
) -> Callable[[Step], None]:
    """The run's callback: `first_lines` at the first step, the progress display, the history
    rows, and at checkpoint iterations the checkpoint image with its state."""
    from nst.runtime.state import save_state, state_path

    pending = list(first_lines)

    def on_step(step: Step) -> None:
        while pending:
            click.echo(pending.pop(0), err=True)
        display(step)
        rows.append(step.row())
        if step.image is not None:
            checkpoint = paths.checkpoints[step.iteration]
            encoding.save(step.rendered or step.image, checkpoint, overwrite=overwrite)
            if step.state is not None:
                save_state(step.state, state_path(checkpoint), overwrite=overwrite)

    return on_step


def _keep_interrupted(
    stop: StylizeInterrupted, rows: list[dict[str, Any]], paths: OutputPaths, encoding: Encoding, *, overwrite: bool
) -> NoReturn:
    """Ctrl-C: the best image so far, the log, and the state to resume from; exit 130."""
    from nst.cli.outputs import save_final
    from nst.runtime.state import save_state, state_path

    save_final(stop.rendered or stop.image, paths.output, overwrite=overwrite, encoding=encoding)
    paths.log.write(rows, overwrite=overwrite)
    note = ""
    if stop.state is not None:  # None after the last iteration: nothing is left to resume
        save_state(stop.state, state_path(paths.output), overwrite=overwrite)
        note = f"; continue with --resume {state_path(paths.output)} --overwrite"
    click.echo(
        f"Interrupted at iteration {stop.iteration}: wrote the best image so far to {paths.output}{note}", err=True
    )
    sys.exit(INTERRUPTED)


def choose_backends(device: str) -> None:
    """The CLI's choice for the whole process: fixed shapes, so cuDNN may pick its fastest
    algorithms once (the library sets no global switch)."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
