"""The worker side of a batch: one `Stylizer` per process (the model loaded once, style Grams
computed once per size), running jobs and returning each output encoded, never writing it.

The same `Worker` runs in the calling process (sequential batches), in each process of a
local pool, and in each Ray worker process. The per-process sessions below are the one place
a session outlives a call: a worker process exists to hold one.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst.batch.jobs import BatchEvent, Job
from nst.errors import NSTError, NSTWarning
from nst.runtime.config import StylizeConfig
from nst.runtime.icc import output_profile
from nst.runtime.images import encode_image
from nst.runtime.record import final_loss
from nst.runtime.targets import load_targets

if TYPE_CHECKING:
    from nst.runtime.loop import Step  # torch: loaded with the session, not with the batch planner

Report = Callable[[BatchEvent], None]
# A kind of job run on a process's session: task(worker, job, report, every) -> Outcome, `every` spacing
# its step events in seconds (0: every step). A job is anything with an `index`; images are `run_image`'s.
Task = Callable[["Worker", Any, Callable[[Any], None], float], "Outcome"]


@dataclass(frozen=True)
class Inputs:
    """What every job of a batch shares. Paths are local to the worker's machine."""

    model: Path
    config: StylizeConfig  # the session's (its pooling is every job's)
    styles: tuple[Path, ...] = ()
    targets: Path | None = None
    history: bool = False  # return every step's losses (for loss logs)


@dataclass
class Outcome:
    """What a worker returns for one job: the encoded output, or why there is none."""

    index: int
    data: bytes | None = None
    loss: float | None = None
    seconds: float = 0.0
    error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # NSTWarnings, for the caller to show
    worker: str = ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """A session for the jobs of one batch: `run` stylizes a job and encodes its output."""

    def __init__(self, inputs: Inputs, *, device: str | None = None, threads: int | None = None):
        from nst.runtime.stylize import Stylizer  # torch loads only when a worker starts

        self.inputs = inputs
        self.session = Stylizer(inputs.model, device=device, config=inputs.config, threads=threads)
        self.targets = load_targets(inputs.targets) if inputs.targets is not None else None

    def run(self, job: Job, report: Report | None = None, *, every: float = 0.0) -> Outcome:
        """Stylize `job`; `report` gets its steps (at most one per `every` seconds, and the
        last). A bad image or option fails the job, not the batch: the error is returned."""
        start = time.perf_counter()
        rows: list[dict[str, Any]] = []
        last = [0.0]

        def on_step(step: Step) -> None:
            rows.append(step.row())
            now = time.perf_counter()
            if report is not None and (now - last[0] >= every or step.iteration == step.iterations):
                last[0] = now
                report(
                    BatchEvent(
                        "step",
                        job.index,
                        job.output,
                        iteration=step.iteration,
                        iterations=step.iterations,
                        loss=step.total,
                        terms=dict(step.terms),
                        elapsed=step.elapsed,
                        worker=worker_name(),
                    )
                )

        outcome = Outcome(job.index, worker=worker_name())
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", NSTWarning)
                image = self.session.render(
                    job.content, styles=self.inputs.styles, targets=self.targets, config=job.config, callback=on_step
                )
            for w in caught:  # nst's go to the caller; others stay where they are
                if issubclass(w.category, NSTWarning):
                    outcome.warnings.append(str(w.message))
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            text = self.session.provenance(
                job.config, content=job.content, styles=self.inputs.styles, targets=self.inputs.targets
            )
            bits = job.config.bit_depth
            profile = output_profile(job.config.output_profile, job.content, bit_depth=bits)
            outcome.data = encode_image(image, job.output, text=text, bit_depth=bits, profile=profile)
            outcome.loss = final_loss(rows)
        except NSTError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # a bug or a library's failure: reported, and the batch goes on
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.seconds = time.perf_counter() - start
        outcome.history = rows if self.inputs.history else []
        return outcome


def set_threads(threads: int) -> None:
    """This process's share of the cores, for torch's and OpenMP's pools alike."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


# --- local process pools: one Worker per process, made by the pool's initializer -----------

_POOL_WORKER: Worker | None = None
_POOL_ERROR: str | None = None
_POOL_EVENTS: Any = None


def start_pool_worker(inputs: Inputs, threads: int, devices: tuple[str, ...], slots: Any, events: Any) -> None:
    """A pool process's initializer: Ctrl-C is the parent's to handle; take a slot (a GPU on
    CUDA), this process's share of the cores, and load the session."""
    global _POOL_WORKER, _POOL_ERROR, _POOL_EVENTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(threads)
    slot = slots.get()
    _POOL_EVENTS = events
    try:
        _POOL_WORKER = Worker(inputs, device=devices[slot % len(devices)], threads=threads)
    except Exception as exc:  # reported with each job, in one line
        _POOL_ERROR = f"the worker could not start: {exc}"


def run_image(worker: Worker, job: Job, report: Report, every: float = 0.0) -> Outcome:
    """A batch's own task: one content image with one parameter set."""
    return worker.run(job, report, every=every)


def run_pool_job(job: Any, task: Task = run_image) -> Outcome:
    if _POOL_WORKER is None:
        return Outcome(job.index, error=_POOL_ERROR or "the worker could not start", worker=worker_name())
    return run_guarded(_POOL_WORKER, job, _POOL_EVENTS.put, task=task)


def run_guarded(
    worker: Worker, job: Any, report: Callable[[Any], None], every: float = 0.0, task: Task = run_image
) -> Outcome:
    """`task` in a worker process: a Ctrl-C that reaches it (the terminal signals the whole
    process group) fails this output; stopping the batch is the parent's to decide."""
    try:
        return task(worker, job, report, every)
    except KeyboardInterrupt:
        return Outcome(job.index, error="interrupted", worker=worker_name())
