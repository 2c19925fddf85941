"""`nst stylize-batch`: many content images, parameter sweeps and a contact sheet, run in this
process, in worker processes, or on a Ray cluster."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nst.batch.execution import Execution
from nst.batch.jobs import DEFAULT_NAME, sweep_field
from nst.cli import INTERRUPTED
from nst.cli.execution_options import execution_options
from nst.cli.options import Ranged, choice, ranged
from nst.cli.stylize_options import PATH, STYLES, ModelSource, Reporting, stylize_config, stylize_options
from nst.errors import ConfigError
from nst.runtime.config import StylizeConfig, choices

if TYPE_CHECKING:
    from nst.batch import BatchResult


@click.command("stylize-batch")
@click.argument("contents", metavar="CONTENT...", nargs=-1, required=True)
@STYLES
@click.option(
    "-o",
    "--outdir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The folder for the outputs and their manifest.jsonl (made if missing).",
)
@click.option(
    "--name",
    default=DEFAULT_NAME,
    show_default=True,
    help="Output file name: {content}, {parent} (its folder), {style}, or an option's value such as "
    "{style-weight}; swept values it leaves out are added to the stem (-style-weight=500).",
)
@click.option(
    "--sweep",
    multiple=True,
    metavar="OPTION=V,V...",
    help="Stylize with each value of an option, e.g. style-weight=50,500,5000; repeat for every combination.",
)
@click.option(
    "--contact-sheet",
    type=PATH,
    metavar="IMAGE",
    help="Also write a labelled grid: a row per content, a column per parameter set.",
)
@execution_options("output")
@stylize_options
def stylize_batch_cmd(
    contents: tuple[str, ...],
    styles: tuple[Path, ...],
    outdir: Path,
    name: str,
    sweep: tuple[str, ...],
    contact_sheet: Path | None,
    execution: Execution,
    source: ModelSource,
    report: Reporting,
    options: dict[str, Any],
) -> None:
    """Stylize every CONTENT (image files, folders of images, or quoted globs) with the
    --style images (or --targets), into OUTDIR.

    Every `nst stylize` option applies to each output. Outputs that exist are skipped, so
    running the same command again finishes a batch that was stopped; a content image that
    cannot be read fails its outputs and the batch goes on (exit status 1 at the end).
    OUTDIR/manifest.jsonl gets a line per output: status, loss, seconds, seed, parameters.

    \b
    nst stylize-batch photos/ -s style.jpg -o out/
    nst stylize-batch 'frames/*.png' --targets style.targets -m vgg19-nst.onnx -o out/ --workers 2
    nst stylize-batch a.jpg b.jpg -s style.jpg -o out/ --sweep style-weight=50,500,5000 --contact-sheet sheet.png
    nst stylize-batch photos/ -s style.jpg -o out/ --ray ray://head:10001
    """
    from nst.fileio import check_writable
    from nst.runtime.images import output_format
    from nst.runtime.record import require_matplotlib

    config = stylize_config(options)
    if config.checkpoint_iterations is not None:
        raise ConfigError(
            "stylize-batch writes no checkpoints: a stopped batch resumes image by image (run the same command again)"
        )
    swept = dict(_parse_sweep(text) for text in sweep)
    if len(swept) != len(sweep):
        raise click.UsageError("--sweep names an option twice; give its values once, comma-separated")
    if contact_sheet is not None:
        output_format(contact_sheet)
        check_writable(contact_sheet, overwrite=True)
    if report.plot:
        require_matplotlib()
    batch = Batch(contents, styles, source.targets, outdir, name, swept, execution, contact_sheet)
    _run(batch, model=source.resolve(config.pooling), config=config, report=report)


@dataclass(frozen=True)
class Batch:
    """What `nst stylize-batch` was asked to make, and how it runs."""

    contents: tuple[str, ...]
    styles: tuple[Path, ...]
    targets: Path | None
    outdir: Path
    name: str
    sweep: dict[str, tuple[Any, ...]]
    execution: Execution
    contact_sheet: Path | None


def _parse_sweep(text: str) -> tuple[str, tuple[Any, ...]]:
    """'style-weight=50,500' -> ('style_weight', (50.0, 500.0)), each value checked as the
    option itself checks it."""
    import typing

    option, sep, values = text.partition("=")
    if not sep or not values.strip():
        raise click.BadParameter(f"{text!r} is not OPTION=V,V... (e.g. style-weight=50,500,5000)", param_hint="--sweep")
    field = sweep_field(option)
    hint = typing.get_type_hints(StylizeConfig)[field]
    allowed = choices(hint)
    number = int if hint is int or int in typing.get_args(hint) else float
    kind: click.ParamType = choice(hint) if allowed else ranged(field, number)
    converted = []
    for value in values.split(","):
        try:
            converted.append(kind.convert(value.strip(), None, None))
        except click.BadParameter as exc:
            raise click.BadParameter(f"{option.strip()}: {exc.message}", param_hint="--sweep") from None
    if isinstance(kind, Ranged):
        converted = [number(v) for v in converted]
    return field, tuple(converted)


def _run(batch: Batch, *, model: Path, config: StylizeConfig, report: Reporting) -> None:
    from nst.batch import MANIFEST, BatchEvent, BatchInterrupted, stylize_batch
    from nst.cli.progress import BatchDisplay, hardware_lines
    from nst.runtime.record import LossLog

    start = time.perf_counter()
    display = BatchDisplay(config.iterations, quiet=report.quiet, print_every=report.print_every)

    def on_event(event: BatchEvent) -> None:
        if event.kind == "planned":  # the model and inputs checked: no one-line error can follow
            for line in hardware_lines(config.device, config.precision, quiet=report.quiet):
                click.echo(line, err=True)
        display(event)
        result = event.result
        if event.kind == "done" and result.status == "ok":
            # The log belongs to the output just made: it replaces an older one.
            LossLog.beside(result.output, log=report.log, plot=report.plot).write(result.history, overwrite=True)

    try:
        results = stylize_batch(
            batch.contents,
            outdir=batch.outdir,
            styles=batch.styles,
            targets=batch.targets,
            config=config,
            model=model,
            sweep=batch.sweep,
            name=batch.name,
            overwrite=report.overwrite,
            execution=batch.execution,
            history=report.log or report.plot,
            callback=on_event,
        )
    except BatchInterrupted as stop:
        display.close()
        made = sum(r.status == "ok" for r in stop.results)
        click.echo(
            f"Interrupted: {made} output(s) written this run, kept in {batch.outdir}; run the same command "
            "again to finish (existing outputs are skipped)",
            err=True,
        )
        sys.exit(INTERRUPTED)
    finally:
        display.close()
    made = sum(r.status == "ok" for r in results)
    sheet = batch.contact_sheet
    if sheet is not None and (made or not sheet.exists()):
        _write_sheet(results, sheet, batch.styles, batch.targets)
    click.echo(
        _summary(results, batch.outdir, time.perf_counter() - start) + (f"; contact sheet {sheet}" if sheet else "")
    )
    failed = sum(r.status == "failed" for r in results)
    if failed:
        raise click.ClickException(
            f"{failed} of {len(results)} output(s) failed; the reasons are above and in {batch.outdir / MANIFEST}"
        )


def _write_sheet(results: list[BatchResult], path: Path, styles: tuple[Path, ...], targets: Path | None) -> None:
    from nst.batch.jobs import style_label
    from nst.batch.sheet import contact_sheet
    from nst.runtime.images import save_image

    save_image(contact_sheet(results, style=style_label(styles, targets)), path, overwrite=True)


def _summary(results: list[BatchResult], outdir: Path, seconds: float) -> str:
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
    parts = [f"{counts['ok']} written"]
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped (they exist; --overwrite replaces them)")
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    minutes, secs = divmod(seconds, 60)
    took = f"{int(minutes)} min {secs:.0f} s" if minutes else f"{secs:.1f} s"
    return f"{len(results)} output(s) in {outdir}: {', '.join(parts)}, in {took}"
