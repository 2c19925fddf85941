"""Running a batch on a Ray cluster (the optional `nst[ray]` extra): one task per output.

No shared filesystem is assumed. The model and the styles (or targets) go into the object
store once, as file bytes; each task gets its content image's bytes and returns the encoded
output, which the driver writes. A Ray worker process keeps its session between tasks, so the
model loads once per process. A task whose worker dies is retried (`retries`), then reported
as failed; Ctrl-C cancels the tasks not finished and keeps what is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nst.batch.execution import Execution
from nst.batch.jobs import Job
from nst.batch.local import OnEvent
from nst.batch.ray_connect import connect, first_line
from nst.batch.worker import Inputs, Outcome, Worker, run_guarded, set_threads
from nst.errors import ConfigError, ImageError, NSTError, OutputError


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'nst[ray]' (or pip install 'ray[client]')") from None
    return ray


@dataclass(frozen=True)
class Shared:
    """What every task needs, as bytes (put in the object store once): file name -> data."""

    key: str  # identifies these inputs, so a worker process reuses its session
    model: File
    styles: tuple[File, ...]
    targets: File | None
    inputs: Inputs  # with the driver's paths; the worker swaps in its own copies


@dataclass(frozen=True)
class File:
    name: str
    sha256: str
    data: bytes


@dataclass(frozen=True)
class Remote:
    """A kind of job on Ray. `payload(job)`, on the driver, is what the task needs that no file
    on its node holds (an NSTError or OSError fails the job with its message); `run(worker, job,
    payload, report)` runs it on a worker process's session."""

    payload: Callable[[Any], Any]
    run: Callable[[Worker, Any, Any, Callable[[Any], None]], Outcome]


def shared_inputs(inputs: Inputs) -> Shared:
    def read(path: Path) -> File:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise OutputError(f"cannot read {path} ({exc.strerror or exc})") from None
        return File(path.name, hashlib.sha256(data).hexdigest(), data)

    model, styles = read(inputs.model), tuple(read(p) for p in inputs.styles)
    targets = read(inputs.targets) if inputs.targets is not None else None
    files = [model, *styles, *([targets] if targets else [])]
    identity = repr(([(f.name, f.sha256) for f in files], inputs.config, inputs.history))
    return Shared(hashlib.sha256(identity.encode()).hexdigest()[:16], model, styles, targets, inputs)


def run_ray(
    jobs: Iterable[Any],
    inputs: Inputs,
    execution: Execution,
    *,
    device: str,
    on_event: Callable[[Any], None],
    on_outcome: Callable[[Any, Outcome], None],
    remote: Remote | None = None,
) -> None:
    """Every job as a Ray task on the cluster at `execution.ray` (RAY_LOCAL: a local instance,
    unless Ray is initialised already). GPU nodes: one GPU per task; else
    `execution.cpus_per_task` CPUs, and as many threads. `remote`: how a job runs there (a
    batch's images by default)."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        connect(ray, execution.ray)
    try:
        _run(ray, jobs, inputs, execution, remote or IMAGES, device=device, on_event=on_event, on_outcome=on_outcome)
    finally:
        if started:
            ray.shutdown()


def _run(
    ray: Any,
    jobs: Iterable[Any],
    inputs: Inputs,
    execution: Execution,
    remote: Remote,
    *,
    device: str,
    on_event: Callable[[Any], None],
    on_outcome: Callable[[Any, Outcome], None],
) -> None:
    from ray.util.queue import Queue

    cpus_per_task, retries = execution.cpus_per_task, execution.retries
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 0)
    if device.startswith("cuda") and not gpus:
        raise ConfigError("--device cuda: the Ray cluster has no GPU; use --device cpu or auto")
    use_gpu = device != "cpu" and gpus > 0
    if not use_gpu and cpus < cpus_per_task:
        raise ConfigError(f"--cpus-per-task {cpus_per_task}: the Ray cluster has {cpus:g} CPUs")
    task = ray.remote(max_retries=retries, retry_exceptions=True)(_ray_task).options(
        num_cpus=cpus_per_task, num_gpus=1 if use_gpu else 0
    )
    payload = shared_inputs(inputs)
    key, shared = payload.key, ray.put(payload)  # once; a task's worker fetches it on its first task only
    events = Queue(actor_options={"num_cpus": 0})
    slots = int(gpus if use_gpu else cpus // cpus_per_task)
    in_flight = max(2, 2 * slots)  # enough to keep every slot busy; the rest wait here, not in the object store
    todo = iter(jobs)  # taken as slots free up: taking one may claim its output
    pending: dict[Any, Any] = {}
    more = True
    try:
        while more or pending:
            while more and len(pending) < in_flight:
                job = next(todo, None)
                if job is None:
                    more = False
                    break
                try:
                    data = remote.payload(job)
                except (OSError, NSTError) as exc:
                    on_outcome(job, Outcome(job.index, error=str(exc)))
                    continue
                ref = task.remote(
                    remote.run, job, data, key, [shared], "cuda" if use_gpu else "cpu", cpus_per_task, events
                )
                pending[ref] = job
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2) if pending else ([], [])
            _drain(events, on_event)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    outcome = Outcome(job.index, error=_one_line(exc, retries))
                on_outcome(job, outcome)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        events.shutdown(force=True)


def _drain(events: Any, on_event: OnEvent) -> None:
    size = events.qsize()
    if size:
        for event in events.get_nowait_batch(size):
            on_event(event)


def _one_line(exc: BaseException, retries: int) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return first_line(cause)
    return f"the Ray task failed after {retries} retries ({first_line(exc)})"


# --- on the Ray worker ----------------------------------------------------------------------

_SESSIONS: dict[str, Worker] = {}  # this worker process's session, by Shared.key


def _ray_task(
    run: Callable[[Worker, Any, Any, Callable[[Any], None]], Outcome],
    job: Any,
    payload: Any,
    key: str,
    shared_ref: list[Any],
    device: str,
    threads: int,
    events: Any,
) -> Outcome:
    """One job on a Ray worker, on this process's session. The shared inputs come in a list, so
    that Ray does not fetch them for every task."""
    set_threads(threads)
    return run(_session(key, shared_ref[0], device, threads), job, payload, events.put_nowait)


def _content_bytes(job: Job) -> bytes:
    try:
        return job.content.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image {job.content} ({exc.strerror or exc})") from None


def _run_image(worker: Worker, job: Job, content: bytes, report: Callable[[Any], None]) -> Outcome:
    """One output: the content's bytes in, the encoded output back."""
    folder = Path(tempfile.mkdtemp(prefix="nst-ray-content-"))
    local = folder / job.content.name
    try:
        local.write_bytes(content)
        outcome = run_guarded(worker, replace(job, content=local), report, every=0.5)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if outcome.error:  # name the user's file, not this worker's copy
        outcome.error = outcome.error.replace(str(local), str(job.content))
    return outcome


IMAGES = Remote(payload=_content_bytes, run=_run_image)


def _session(key: str, ref: Any, device: str, threads: int) -> Worker:
    """The session for these inputs, made on this process's first task with them."""
    import ray

    if key not in _SESSIONS:
        shared: Shared = ray.get(ref)
        _SESSIONS.clear()  # one batch's session at a time
        model, styles = _local_copy(shared.model), tuple(_local_copy(f) for f in shared.styles)
        targets = _local_copy(shared.targets) if shared.targets else None
        inputs = replace(shared.inputs, model=model, styles=styles, targets=targets)
        _SESSIONS[key] = Worker(inputs, device=device, threads=threads)
    return _SESSIONS[key]


def _local_copy(file: File) -> Path:
    """The file on this node, under its own name in a folder named by its hash: written once
    per node (the processes of a node share it; a rename makes each write whole), so the
    copies are bounded by the distinct models and styles used, not by tasks or processes."""
    path = Path(tempfile.gettempdir()) / "nst-ray" / file.sha256[:16] / file.name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        part.write_bytes(file.data)
        os.replace(part, path)
    return path
