"""How shots run on stylize-batch's workers: in this process, in local worker processes or on Ray, one
`Stylizer` session per process, each shot whole on one of them, its frames in order. The frames come
back encoded in `frame` events, which the caller writes."""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

from nst.batch.cluster import Remote
from nst.batch.worker import Outcome, Worker, run_guarded, worker_name
from nst.errors import NSTError
from nst.video.driver import FrameEvent, Report, Shot, run_shot, with_frames
from nst.video.reading import iter_frames

if TYPE_CHECKING:
    import numpy as np


def run_shot_task(worker: Worker, shot: Shot, report: Report, every: float = 0.0) -> Outcome:
    """One shot on a process's session (a batch `Task`): its frames reported as they are made; a frame
    that fails ends the shot, its error returned. Ctrl-C goes on to the caller."""
    outcome = Outcome(shot.index, worker=worker_name())
    start = time.perf_counter()
    try:
        run_shot(
            worker.session,
            shot,
            styles=worker.inputs.styles,
            targets=worker.targets,
            target_path=worker.inputs.targets,
            report=_spaced(report, every),
        )
    except NSTError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # a bug or a library's failure outside a frame: the shot fails, in one line
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _spaced(report: Report, every: float) -> Report:
    """`report`, with step events at most one per `every` seconds (Ray's queue); the others all."""
    if every <= 0:
        return report
    last = [0.0]

    def spaced(event: FrameEvent) -> None:
        now = time.perf_counter()
        if event.kind == "step" and now - last[0] < every and event.iteration != event.iterations:
            return
        last[0] = now
        report(event)

    return spaced


def _shot_frames(shot: Shot) -> tuple[np.ndarray, ...]:
    """On the driver: the shot's frames, for a Ray worker that cannot read the clip's file."""
    return tuple(itertools.islice(iter_frames(shot.source, size=shot.size), shot.start, shot.stop))


def _run_remote(worker: Worker, shot: Shot, frames: tuple[np.ndarray, ...], report: Any) -> Outcome:
    return run_guarded(worker, with_frames(shot, frames), report, every=0.5, task=run_shot_task)


SHOTS = Remote(payload=_shot_frames, run=_run_remote)
