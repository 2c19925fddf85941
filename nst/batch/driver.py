"""`stylize_batch`: stylize content images (with a sweep of parameter sets) in this process, in
worker processes, or on a Ray cluster, and write each output atomically as it finishes, with a
line in the folder's manifest.

The model loads once per process and the style Grams are computed once per size (a
`Stylizer` per process). Outputs that exist are skipped, so running a batch again finishes
it. An image that cannot be read, or a run that fails, fails its output, not the batch.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from nst.batch.claims import Claims, busy_message, made_since, run_claimed
from nst.batch.cluster import Remote, run_ray
from nst.batch.execution import Execution
from nst.batch.jobs import DEFAULT_NAME, BatchEvent, Job, expand_contents, make_jobs, parameter_sets, style_label
from nst.batch.local import OnEvent, run_pool, run_sequential
from nst.batch.manifest import MANIFEST, Manifest
from nst.batch.worker import Inputs, Outcome, Task, run_image
from nst.clobber import refuse_inputs_as_outputs
from nst.contract import ModelInfo, load_onnx, model_info
from nst.errors import ConfigError, ImageError, NSTWarning, OutputError
from nst.export.cached import resolve_model
from nst.fileio import atomic_path, check_writable
from nst.models.layers import STYLE_LAYERS
from nst.runtime.config import StylizeConfig, applied_options
from nst.runtime.images import probe_image
from nst.runtime.loss_scale import resolve_loss_scale
from nst.runtime.ort_extractor import check_provider, physical_cores
from nst.runtime.targets import load_targets

Status = Literal["ok", "skipped", "failed"]

__all__ = ["BatchInterrupted", "BatchResult", "stylize_batch"]


@dataclass(frozen=True)
class BatchResult:
    """One output of a batch: written (ok), found from an earlier run (skipped), or failed."""

    output: Path
    content: Path
    status: Status
    row: int  # the content's position
    column: int  # the parameter set's position
    parameters: dict[str, Any]  # the swept values, by option field name
    seed: int | None
    loss: float | None = None  # the output's weighted loss (for skipped outputs: the manifest's)
    seconds: float | None = None  # the run's wall time in its worker
    error: str | None = None
    worker: str | None = None  # host:pid that made it
    history: tuple[dict[str, Any], ...] = ()  # every step's losses, when asked for
    warnings: tuple[str, ...] = field(default=())


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch: the outputs done so far are written; `results` lists them."""

    def __init__(self, results: list[BatchResult]):
        super().__init__("batch interrupted")
        self.results = results


def stylize_batch(
    contents: Sequence[str | Path],
    *,
    outdir: str | Path,
    styles: Sequence[str | Path] = (),
    targets: str | Path | None = None,
    config: StylizeConfig = StylizeConfig(),
    model: str | Path | None = None,
    sweep: Mapping[str, Sequence[Any]] | None = None,
    name: str = DEFAULT_NAME,
    overwrite: bool = False,
    execution: Execution = Execution(),
    history: bool = False,
    callback: OnEvent | None = None,
) -> list[BatchResult]:
    """Stylize every content image (files, folders, globs) with `styles` or `targets`, once per
    parameter set of `sweep` ({"style_weight": [50, 500]}: the Cartesian product), into `outdir`
    under `name` (`jobs.make_jobs`). One result per output, in order (contents, then sets).

    `execution` says where the jobs run (this process, local workers, Ray). `history` keeps
    every step's losses in the results. `callback` gets a `BatchEvent` per output planned,
    step and output done. Ctrl-C raises `BatchInterrupted` with the results so far.
    """
    outdir = Path(outdir)
    style_paths, target_path = check_styles(styles, targets, probe=True)
    if execution.ray is None:
        check_provider(config.provider)  # one that cannot run here fails once, before any work
    found, sets = expand_contents(contents, exclude=outdir), parameter_sets(sweep, config)
    label = style_label(style_paths, target_path)
    jobs = make_jobs(found, sets, config, name=name, style=label)  # the names checked before the model loads
    read: dict[str, Path | None] = {f"the content image {i + 1}": path for i, path in enumerate(found)}
    read |= {f"style {i + 1}": path for i, path in enumerate(style_paths)} | {"the --targets file": target_path}
    refuse_inputs_as_outputs([outdir / job.output for job in jobs], read, fix="choose another --name or -o folder")
    model_path, info = _check_model(model, config, [job.config for job in jobs], style_paths, target_path)
    # Loss scale auto resolved by the model, as `nst stylize` does: the names, the manifest and
    # the workers then have the scale and weights each output is made with.
    jobs = make_jobs(found, sets, config, name=name, style=label, resolve=lambda c: resolve_loss_scale(c, info))
    manifest = _open_folder(outdir)
    report: OnEvent = callback or (lambda event: None)
    results: dict[int, BatchResult] = {  # made by an earlier run: as the manifest says
        job.index: _skipped(job, outdir, manifest, style_paths, target_path)
        for job in jobs
        if not overwrite and (outdir / job.output).exists()
    }
    to_run = [job for job in jobs if job.index not in results]
    report(BatchEvent("planned", outputs=len(jobs), to_run=len(to_run)))
    claims, started = Claims(outdir), time.time()

    def on_outcome(job: Job, outcome: Outcome) -> None:
        try:
            result = _write(job, outcome, outdir, overwrite=overwrite)
            manifest.append(_record(result, job, style_paths, target_path))
        finally:
            claims.release(job.output)
        results[job.index] = result
        for message in outcome.warnings:
            warnings.warn(f"{job.content.name}: {message}", NSTWarning, stacklevel=2)
        report(BatchEvent("done", job.index, result=result))

    def made_elsewhere(job: Job) -> None:
        results[job.index] = _skipped(job, outdir, manifest.reload(), style_paths, target_path)
        report(BatchEvent("done", job.index, result=results[job.index]))

    inputs = Inputs(model_path, config, style_paths, target_path, history)
    try:
        run_claimed(
            to_run,
            claims,
            lambda claimed: run_jobs(
                claimed, inputs, execution, device=config.device, on_event=report, on_outcome=on_outcome
            ),
            made=lambda job: made_since(outdir / job.output, started if overwrite else None),
            on_made=made_elsewhere,
            on_busy=lambda count: warnings.warn(busy_message(count, outdir), NSTWarning, stacklevel=2),
        )
    except KeyboardInterrupt:
        raise BatchInterrupted([results[job.index] for job in jobs if job.index in results]) from None
    finally:
        claims.release_all()
    return [results[job.index] for job in jobs]


class Jobs(Protocol):
    """Jobs a runner takes in turn, and at most how many (what pools are sized by)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


def run_jobs(
    jobs: Jobs,
    inputs: Inputs,
    execution: Execution,
    *,
    device: str,
    on_event: Callable[[Any], None],
    on_outcome: Callable[[Any, Outcome], None],
    task: Task = run_image,
    remote: Remote | None = None,
) -> None:
    """Run `jobs` where `execution` says, one session per process: in this process, in local
    worker processes (one per GPU on CUDA unless told), or on Ray. `task` runs a job locally and
    `remote` on Ray (a batch's images by default; a video's shots bring their own)."""
    if execution.ray is not None:
        run_ray(jobs, inputs, execution, device=device, on_event=on_event, on_outcome=on_outcome, remote=remote)
        return
    devices = local_devices(device)
    count = min(execution.workers or len(devices), len(jobs))
    if count <= 1:
        run_sequential(jobs, inputs, device=devices[0], on_event=on_event, on_outcome=on_outcome, task=task)
    else:
        run_pool(
            jobs,
            inputs,
            workers=count,
            threads=threads_per_worker(count),
            devices=devices,
            on_event=on_event,
            on_outcome=on_outcome,
            task=task,
        )


def local_devices(device: str) -> list[str]:
    """The devices local workers take turns on: every GPU on CUDA ('auto' with one, or
    'cuda'), the one named ('cuda:1'), else the CPU."""
    import torch

    from nst.runtime.device import resolve_device

    resolve_device(device)  # cuda without a GPU: one line now, not one per output
    if device == "cpu" or not torch.cuda.is_available():
        return ["cpu"]
    if device.startswith("cuda:"):
        return [device]
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def threads_per_worker(workers: int) -> int:
    """Each worker's share of this machine's physical cores (at least one)."""
    return max(1, physical_cores() // workers)


def check_styles(
    style_names: Sequence[str | Path], targets_name: str | Path | None, *, probe: bool = False
) -> tuple[tuple[Path, ...], Path | None]:
    """The style images or the targets file as paths, checked once before any work: one of the
    two given, each a file (and with `probe`, each style's header an image's)."""
    styles = tuple(Path(s) for s in style_names)
    targets = Path(targets_name) if targets_name is not None else None
    if not styles and targets is None:
        raise ConfigError("no style given; pass style images (--style STYLE) or --targets FILE")
    if styles and targets is not None:
        raise ConfigError("give style images or --targets, not both")
    for path in (*styles, *([targets] if targets else [])):
        if not path.is_file():
            raise ImageError(f"{'targets file' if path == targets else 'style image'} not found: {path}")
    for style in styles if probe else ():
        probe_image(style)  # its header: one that is no image fails once, before any work, not per output
    return styles, targets


def _check_model(
    model: str | Path | None,
    config: StylizeConfig,
    configs: list[StylizeConfig],
    styles: tuple[Path, ...],
    targets: Path | None,
) -> tuple[Path, ModelInfo]:
    """The model's path and metadata, and every check that would fail each output alike, made
    once now: the model opens, the targets belong to it, the styles match the blend and scales."""
    from nst.runtime.plan import style_blend, style_scales  # plan loads torch: only when a batch runs

    path = resolve_model(model, pooling=config.pooling)
    info = model_info(load_onnx(path), path)
    loaded = None
    if targets is not None:
        loaded = load_targets(targets)
        loaded.check_targets(info, layers=STYLE_LAYERS)
    count = len(loaded.sources) if loaded is not None else len(styles)
    for each in {c.replace(seed=None) for c in configs}:
        style_blend(each, count)
        style_scales(each, count, loaded)
    return path, info


def _open_folder(outdir: Path) -> Manifest:
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir} is a file; give a folder for the outputs")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {outdir} ({exc.strerror or exc})") from None
    check_writable(outdir / MANIFEST)
    return Manifest(outdir)


def _skipped(job: Job, outdir: Path, manifest: Manifest, styles: tuple[Path, ...], targets: Path | None) -> BatchResult:
    """An output that exists: as the manifest last recorded it (a line is added if it has none)."""
    before = manifest.records.get(job.output)
    made = before is not None and before.get("status") == "ok"
    result = BatchResult(
        outdir / job.output,
        job.content,
        "skipped",
        job.row,
        job.column,
        job.parameters,
        before["seed"] if made and before else job.config.seed,
        loss=before.get("loss") if made and before else None,
        seconds=before.get("seconds") if made and before else None,
    )
    if not made:
        manifest.append(_record(result, job, styles, targets))
    return result


def _write(job: Job, outcome: Outcome, outdir: Path, *, overwrite: bool) -> BatchResult:
    path, error = outdir / job.output, outcome.error
    if outcome.data is not None:
        try:
            with atomic_path(path, overwrite=overwrite) as tmp:
                tmp.write_bytes(outcome.data)
        except OutputError as exc:
            error = str(exc)
    loss = outcome.loss if outcome.loss is not None and math.isfinite(outcome.loss) else None
    return BatchResult(
        path,
        job.content,
        "failed" if error else "ok",
        job.row,
        job.column,
        job.parameters,
        job.config.seed,
        loss=loss,
        seconds=outcome.seconds,
        error=error,
        worker=outcome.worker,
        history=tuple(outcome.history),
        warnings=tuple(outcome.warnings),
    )


def _record(result: BatchResult, job: Job, styles: tuple[Path, ...], targets: Path | None) -> dict[str, Any]:
    """The result's manifest line."""
    return {
        "output": job.output,
        "status": result.status,
        "content": str(job.content),
        "styles": [str(s) for s in styles],
        "targets": str(targets) if targets else None,
        "parameters": job.parameters,
        "seed": result.seed,
        "loss": result.loss,
        "seconds": round(result.seconds, 3) if result.seconds is not None else None,
        "error": result.error,
        "worker": result.worker,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": applied_options(job.config),
    }
