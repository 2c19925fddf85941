"""`nst stylize-batch`: many content images, parameter sweeps and a contact sheet, run in this
process, in worker processes, or on a Ray cluster."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nst.cli.options import Ranged, choice, ranged
from nst.cli.stylize_options import PATH, stylize_config, stylize_options
from nst.errors import ConfigError
from nst.models.convention import LayoutChoice
from nst.runtime.batch.jobs import DEFAULT_NAME, sweep_field

if TYPE_CHECKING:
    from nst.runtime.batch import BatchResult

RAY_LOCAL = "local"


@click.command("stylize-batch")
@click.argument("contents", metavar="CONTENT...", nargs=-1, required=True)
@click.option(
    "-s",
    "--style",
    "styles",
    multiple=True,
    type=PATH,
    metavar="STYLE",
    help="A style image; repeat for several, blended as `nst stylize` blends its STYLEs (or --targets).",
)
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
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes on this machine, each with its share of the cores as threads.  "
    "[default: 1 on the CPU, one per GPU on CUDA]",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value=RAY_LOCAL,
    metavar="[ADDRESS]",
    help="Run on Ray (pip install 'nst[ray]'): alone, a local instance (or $RAY_ADDRESS); or the "
    "cluster at ADDRESS (ray://HOST:10001, auto). Give it after CONTENT, or as --ray=ADDRESS.",
)
@click.option(
    "--cpus-per-task",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Ray: CPUs, and as many threads, per task on nodes without a GPU.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Ray: times a task is retried when its worker dies, before its output is reported failed.",
)
@stylize_options
def stylize_batch_cmd(contents: tuple[str, ...], styles: tuple[Path, ...], outdir: Path, name: str,
                      sweep: tuple[str, ...], contact_sheet: Path | None, workers: int | None,
                      ray_address: str | None, cpus_per_task: int, retries: int, model: Path | None,
                      weights: str | None, weights_layout: LayoutChoice, targets: Path | None,
                      print_iterations: int | None, log: bool,
                      plot: bool, overwrite: bool, quiet: bool, **options: Any) -> None:  # fmt: skip
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
    from nst.cli.outputs import require_matplotlib
    from nst.cli.stylize_cmd import _resolve_model
    from nst.fileio import check_writable
    from nst.runtime.images import output_format

    if model is not None and weights is not None:
        raise ConfigError("give -m MODEL.onnx or --weights, not both")
    config = stylize_config(options)
    if config.checkpoint_iterations is not None:
        raise ConfigError("stylize-batch writes no checkpoints: a stopped batch resumes image by image "
                          "(run the same command again)")  # fmt: skip
    swept = dict(_parse_sweep(text) for text in sweep)
    if len(swept) != len(sweep):
        raise click.UsageError("--sweep names an option twice; give its values once, comma-separated")
    if ray_address is not None and ray_address != RAY_LOCAL and ray_address != "auto" and ":" not in ray_address:
        raise click.UsageError(f"--ray takes an address such as ray://HOST:10001 or auto, got {ray_address!r} "
                               "(give --ray after CONTENT, or as --ray=ADDRESS)")  # fmt: skip
    if ray_address is not None and workers is not None:
        raise ConfigError("give --workers or --ray, not both (Ray decides how many tasks run at once)")
    if ray_address is not None:
        from nst.runtime.batch.cluster import import_ray

        import_ray()  # a missing extra is a one-line error before any work
    if contact_sheet is not None:
        output_format(contact_sheet)
        check_writable(contact_sheet, overwrite=True)
    if plot:
        require_matplotlib()
    model_path = _resolve_model(model, weights, config.pooling, weights_layout)
    _run(contents, styles=styles, targets=targets, outdir=outdir, model=model_path, config=config, sweep=swept,
         name=name, overwrite=overwrite, workers=workers, ray=ray_address, cpus_per_task=cpus_per_task,
         retries=retries, log=log, plot=plot, quiet=quiet, print_every=print_iterations,
         contact_sheet=contact_sheet)  # fmt: skip


def _parse_sweep(text: str) -> tuple[str, tuple[Any, ...]]:
    """'style-weight=50,500' -> ('style_weight', (50.0, 500.0)), each value checked as the
    option itself checks it."""
    import typing

    from nst.runtime.config import StylizeConfig, choices

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


def _run(contents: tuple[str, ...], *, styles: tuple[Path, ...], targets: Path | None, outdir: Path, model: Path,
         config: Any, sweep: dict[str, tuple[Any, ...]], name: str, overwrite: bool, workers: int | None,
         ray: str | None, cpus_per_task: int, retries: int, log: bool, plot: bool, quiet: bool,
         print_every: int | None, contact_sheet: Path | None) -> None:  # fmt: skip
    from nst.cli.outputs import OutputPaths, write_log
    from nst.cli.progress import BatchDisplay
    from nst.runtime.batch import MANIFEST, BatchEvent, BatchInterrupted, stylize_batch

    start = time.perf_counter()
    display = BatchDisplay(config.iterations, quiet=quiet, print_every=print_every)

    def on_event(event: BatchEvent) -> None:
        display(event)
        result = event.result
        if event.kind == "done" and result.status == "ok" and (log or plot):
            stem = result.output.stem
            paths = OutputPaths(result.output, log=result.output.with_name(f"{stem}.losses.csv") if log else None,
                                plot=result.output.with_name(f"{stem}.losses.png") if plot else None)  # fmt: skip
            write_log(result.history, paths, overwrite=True)  # they belong to the output just made

    try:
        results = stylize_batch(
            contents, outdir=outdir, styles=styles, targets=targets, config=config, model=model, sweep=sweep,
            name=name, overwrite=overwrite, workers=workers, ray=ray, cpus_per_task=cpus_per_task, retries=retries,
            history=log or plot, callback=on_event,
        )  # fmt: skip
    except BatchInterrupted as stop:
        display.close()
        made = sum(r.status == "ok" for r in stop.results)
        click.echo(f"Interrupted: {made} output(s) written this run, kept in {outdir}; run the same command again "
                   "to finish (existing outputs are skipped)", err=True)  # fmt: skip
        sys.exit(130)
    finally:
        display.close()
    made = sum(r.status == "ok" for r in results)
    if contact_sheet is not None and (made or not contact_sheet.exists()):
        _write_sheet(results, contact_sheet, styles, targets)
    click.echo(_summary(results, outdir, time.perf_counter() - start)
               + (f"; contact sheet {contact_sheet}" if contact_sheet else ""))  # fmt: skip
    failed = sum(r.status == "failed" for r in results)
    if failed:
        raise click.ClickException(f"{failed} of {len(results)} output(s) failed; the reasons are above and in "
                                   f"{outdir / MANIFEST}")  # fmt: skip


def _write_sheet(results: list[BatchResult], path: Path, styles: tuple[Path, ...], targets: Path | None) -> None:
    from nst.runtime.batch.jobs import style_label
    from nst.runtime.batch.sheet import contact_sheet
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
