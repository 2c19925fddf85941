"""The job queue: jobs run in the order they came, one at a time per device (the CPU, or each
GPU), in worker threads that keep their Stylizer sessions across jobs (the network loaded
once, style Grams cached). A job that fails records its error; the server goes on."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from nst.errors import NSTError, NSTWarning, OutputError
from nst.runtime.config import StylizeConfig
from nst.runtime.icc import output_profile
from nst.runtime.record import Encoding
from nst.serve.jobs import Job, Status
from nst.serve.sweep import Sweep

if TYPE_CHECKING:
    from nst.runtime.images import Rendered
    from nst.runtime.stylize import Stylizer
    from nst.serve.gallery import Gallery

log = logging.getLogger("nst.serve")


class Sessions:
    """One device's Stylizer sessions, one per pooling; they share the network's weights."""

    def __init__(self, base: Stylizer):
        self.base = base
        self.device = base.device
        self._by_pooling: dict[str, Stylizer] = {base.model.pooling: base}

    def get(self, config: StylizeConfig) -> Stylizer:
        from nst.runtime.stylize import Stylizer  # loads torch; importing the web app does not

        pooling = config.pooling or self.base.model.pooling
        if pooling not in self._by_pooling:
            # config.pooling is not None here: None means the base session's own pooling.
            self._by_pooling[pooling] = Stylizer(
                self.base.model, device=self.device, config=StylizeConfig(pooling=config.pooling)
            )
        return self._by_pooling[pooling]


class JobQueue:
    """Every job of this session and the gallery's earlier ones, by id; the sweeps; and the
    worker threads, one per session in `sessions`."""

    def __init__(self, sessions: Sequence[Stylizer], gallery: Gallery):
        self.gallery = gallery
        self.jobs: dict[str, Job] = {}
        self.sweeps: dict[str, Sweep] = {}
        self._lock = threading.Lock()  # jobs and sweeps: added by HTTP threads, read by all
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._workers = [
            threading.Thread(target=self._work, args=(Sessions(s),), name=f"nst-serve-{s.device}", daemon=True)
            for s in sessions
        ]
        self._model = sessions[0] if sessions else None  # the sessions share one network
        self.restore()

    def restore(self) -> None:
        """The finished jobs and sweeps recorded in the gallery's manifest."""
        for record in self.gallery.records():
            try:
                job = Job.from_record(record, self.gallery.outdir)
            except (NSTError, KeyError, TypeError, ValueError) as exc:  # a line of another version
                log.warning("skipped job %s of the manifest: %s", record.get("id"), exc)
                continue
            self.jobs[job.id] = job
            if job.sweep is not None:
                self.sweeps.setdefault(job.sweep, Sweep.of(job.sweep, job.parameters)).job_ids.append(job.id)

    def start(self) -> None:
        route_warnings()
        for worker in self._workers:
            worker.start()

    def submit(self, jobs: Sequence[Job], sweep: Sweep | None = None) -> None:
        """Queue `jobs`, their loss scale `auto` resolved for the model as `nst stylize` does:
        the page, the manifest and the PNG show the scale and weights each job runs with."""
        for job in jobs:
            job.config = self.resolve(job.config)
        with self._lock:
            for job in jobs:
                self.jobs[job.id] = job
            if sweep is not None:
                self.sweeps[sweep.id] = sweep
        for job in jobs:
            self._pending.put(job)

    def resolve(self, config: StylizeConfig) -> StylizeConfig:
        """`config` with loss scale `auto` resolved for the sessions' model (`Stylizer.resolve`)."""
        return self._model.resolve(config) if self._model is not None else config

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return sorted(self.jobs.values(), key=lambda job: job.id)

    def sweep(self, sweep_id: str) -> tuple[Sweep, list[Job]] | None:
        with self._lock:
            sweep = self.sweeps.get(sweep_id)
            return (sweep, [self.jobs[i] for i in sweep.job_ids]) if sweep is not None else None

    def cancel(self, job: Job, *, reason: str | None = None) -> bool:
        """Stop `job`: a queued one at once, a running one at the end of its iteration, with
        its best image kept. False when it had finished already."""
        with job.lock:
            if job.finished:
                return False
            job.cancel_requested.set()
            queued = job.status == "queued"
            if queued:
                job.status, job.error = "cancelled", reason
        if queued:
            self._record(job)
        return True

    def stop(self) -> None:
        """Cancel every job: queued ones at once, running ones at the end of their iteration
        (their workers save them, then end)."""
        for job in self.all():
            self.cancel(job, reason="the server stopped before it started")
        for _ in self._workers:
            self._pending.put(None)

    def join(self) -> None:
        """Wait for the workers to end (each after its job's iteration and save)."""
        for worker in self._workers:
            worker.join()

    def _work(self, sessions: Sessions) -> None:
        while True:
            job = self._pending.get()
            if job is None:
                return
            with job.lock:
                if job.status != "queued" or job.cancel_requested.is_set():
                    continue
                job.status, job.device = "running", str(sessions.device)
            try:
                self._run(job, sessions)
            except BaseException as exc:  # never lose the worker: the next job must run
                log.exception("job %s", job.id)
                self._finish(job, None, "failed", f"{type(exc).__name__}: {exc}", 0.0)

    def _run(self, job: Job, sessions: Sessions) -> None:
        from nst.runtime.run import StylizeDiverged, StylizeInterrupted  # loads torch, as above

        start = time.perf_counter()
        image: Rendered | None = None
        encoding: Encoding | None = None
        status: Status = "done"
        error = None
        try:
            session = sessions.get(job.config)
            encoding = job_encoding(job, session)  # a profile the output cannot take fails before any work
            with collected_warnings(job.warnings):
                image = session.render(
                    job.inputs.content, styles=job.inputs.styles, config=job.config, callback=job.on_step
                )
        except StylizeInterrupted as stop:
            image, status = stop.rendered, "cancelled"
        except KeyboardInterrupt:  # cancelled before its first iteration ended
            status = "cancelled"
        except StylizeDiverged as stop:
            image, status, error = stop.rendered, "failed", str(stop)
        except NSTError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # a library's failure or a bug: this job's, not the server's
            log.exception("job %s failed", job.id)
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        self._finish(job, image, status, error, time.perf_counter() - start, encoding)

    def _finish(
        self,
        job: Job,
        image: Rendered | None,
        status: Status,
        error: str | None,
        seconds: float,
        encoding: Encoding | None = None,
    ) -> None:
        """Save the image as `nst stylize` would (its parameters, bit depth and colour profile),
        record the job, then say it finished (in that order: whoever sees the status finds the file)."""
        if image is not None and encoding is not None:
            try:
                job.output = self.gallery.save(image, self.gallery.result_path(job.id), encoding=encoding)
            except OutputError as exc:
                status, error = "failed", str(exc)
        job.seconds = seconds
        with job.lock:
            job.status, job.error = status, error
        job.live.release()
        self._record(job)

    def _record(self, job: Job) -> None:
        try:
            self.gallery.record(job.record(self.gallery.outdir))
        except OutputError as exc:  # the image is saved; only its line is missing
            log.error("%s", exc)


def job_encoding(job: Job, session: Stylizer) -> Encoding:
    """How `nst stylize` would write the job's result: its provenance (`nst:parameters`, with
    the inputs named as the client named them), the job's bit depth, and the sRGB tag or the
    content's own profile (`output_profile`)."""
    config = job.config
    text = session.provenance(config, content=job.inputs.content_name, styles=job.inputs.style_names)
    profile = output_profile(config.output_profile, job.inputs.content, bit_depth=config.bit_depth)
    return Encoding(text, config.bit_depth, profile)


# --- NSTWarnings of a job go to that job (shown on the page), not to the server's console -----

_sink = threading.local()


def _show(
    message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None
) -> None:
    sink = getattr(_sink, "warnings", None)
    if sink is not None and issubclass(category, NSTWarning):
        sink.append(str(message))
        return
    _previous(message, category, filename, lineno, file, line)


_previous = warnings.showwarning


def route_warnings() -> None:
    """Send the NSTWarnings raised in a worker thread to its job (each time, not once per
    place). warnings.catch_warnings would do it, but it is not thread-safe."""
    global _previous
    if warnings.showwarning is not _show:
        _previous = warnings.showwarning
        warnings.showwarning = _show
    if not any(f[0] == "always" and f[2] is NSTWarning for f in warnings.filters):
        warnings.filterwarnings("always", category=NSTWarning)


@contextlib.contextmanager
def collected_warnings(into: list[str]) -> Iterator[None]:
    _sink.warnings = into
    try:
        yield
    finally:
        _sink.warnings = None
