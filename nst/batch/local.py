"""Running a batch on this machine: one job after another in this process, or in a pool of
worker processes, each with its share of the cores as its thread count (two processes that
each take every core slow each other down many times over).

Each runner hands every finished job to `on_outcome` (which writes it) as soon as it is
done, and every step to `on_event`. On Ctrl-C the pool's processes are stopped and the
KeyboardInterrupt goes on to the caller: what finished is written already.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from nst.batch.jobs import BatchEvent, Job
from nst.batch.worker import Inputs, Outcome, Task, Worker, run_image, run_pool_job, start_pool_worker

OnEvent = Callable[[BatchEvent], None]
OnOutcome = Callable[[Job, Outcome], None]


def run_sequential(
    jobs: Iterable[Any],
    inputs: Inputs,
    *,
    device: str,
    on_event: Callable[[Any], None],
    on_outcome: Callable[[Any, Outcome], None],
    task: Task = run_image,
) -> None:
    """Every job in this process, with one session (`task` runs each: a batch's images by default)."""
    worker = Worker(inputs, device=device)
    for job in jobs:
        on_outcome(job, task(worker, job, on_event, 0.0))


def run_pool(
    jobs: Iterable[Any],
    inputs: Inputs,
    *,
    workers: int,
    threads: int,
    devices: Sequence[str],
    on_event: Callable[[Any], None],
    on_outcome: Callable[[Any, Outcome], None],
    task: Task = run_image,
) -> None:
    """The jobs over `workers` spawned processes with `threads` threads each; worker i runs
    on devices[i % len(devices)] (one GPU each on CUDA). `task` (a module-level function, sent
    by name) runs each job on its process's session. Jobs are taken from `jobs` as slots free
    up, two per worker in flight, not all at once (taking one may claim its output)."""
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    events: Any = context.Queue()
    slots: Any = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=start_pool_worker,
        initargs=(inputs, threads, tuple(devices), slots, events),
    )
    todo = iter(jobs)
    futures: dict[Future[Outcome], Any] = {}
    try:
        while True:
            while len(futures) < 2 * workers and (job := next(todo, None)) is not None:
                try:
                    futures[pool.submit(run_pool_job, job, task)] = job
                except BrokenProcessPool as exc:  # a worker died earlier: the pool takes no more
                    on_outcome(job, Outcome(job.index, error=_died(exc)))
            if not futures:
                break
            done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, on_event)
            for future in sorted(done, key=lambda f: futures[f].index):
                job = futures.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool as exc:
                    outcome = Outcome(job.index, error=_died(exc))
                except Exception as exc:  # the pool failed to run it: this output fails, not the batch
                    outcome = Outcome(job.index, error=f"{type(exc).__name__}: {exc}")
                on_outcome(job, outcome)
    except BaseException:
        _stop(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        events.close()
        slots.close()


def _died(exc: BaseException) -> str:
    return f"its worker process died ({exc or 'killed'}); run the batch again"


def _drain(events: Any, on_event: OnEvent) -> None:
    while True:
        try:
            event = events.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        on_event(event)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the processes now: a job in progress is lost
    (its output is not written), and a re-run makes it."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
