"""Outputs a batch is making, claimed so that a second batch started on the same folder does not
make them too: one lock file per output in OUTDIR/.nst-claims/, taken when the output's run
starts and removed once it is written (the folder too, once empty). A killed batch's claims go
with its process (the operating system releases its locks), so the next batch makes what it left."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from nst.batch.jobs import Job
from nst.locks import Claim, waiting_lock

CLAIMS = ".nst-claims"  # in the output folder


class Claims:
    """The outputs this process holds in `outdir`, by file name."""

    def __init__(self, outdir: Path):
        self.folder = outdir / CLAIMS
        self._held: dict[str, Claim] = {}

    def _path(self, output: str) -> Path:
        return self.folder / f"{output}.claim"

    def take(self, output: str) -> bool:
        """Claim `output` unless another process holds it; whether this one now does."""
        claim = Claim(self._path(output))
        if not claim.take():
            return False
        self._held[output] = claim
        return True

    def release(self, output: str) -> None:
        claim = self._held.pop(output, None)
        if claim is not None:
            claim.release()

    def release_all(self) -> None:
        """Let every claim go, and remove the folder unless another process has claims in it."""
        for output in list(self._held):
            self.release(output)
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def wait(self, output: str) -> None:
        """Until the process that holds `output` lets it go (it wrote it, or it stopped)."""
        path = self._path(output)
        with waiting_lock(path, what=f"making {output}", timeout=math.inf), contextlib.suppress(OSError):
            path.unlink()  # held, as Claim.release removes it


class ClaimedJobs:
    """`jobs` as a runner takes them, each claimed as it is taken (so that claims are held only
    by runs in progress). A job another process holds is set aside in `deferred`; one whose
    output exists by then (`made`) goes to `on_made` instead of the runner."""

    def __init__(
        self, jobs: Sequence[Job], claims: Claims, *, made: Callable[[Job], bool], on_made: Callable[[Job], None]
    ):
        self.jobs, self.claims, self.made, self.on_made = jobs, claims, made, on_made
        self.deferred: list[Job] = []

    def __len__(self) -> int:
        return len(self.jobs)  # at most this many: what runners size their pools by

    def __iter__(self) -> Iterator[Job]:
        for job in self.jobs:
            if not self.claims.take(job.output):
                self.deferred.append(job)
            elif self.made(job):
                self.claims.release(job.output)
                self.on_made(job)
            else:
                yield job


def run_claimed(
    jobs: Sequence[Job],
    claims: Claims,
    run: Callable[[ClaimedJobs], None],
    *,
    made: Callable[[Job], bool],
    on_made: Callable[[Job], None],
    on_busy: Callable[[int], None],
) -> None:
    """Run `jobs` in passes: each pass runs the jobs this process can claim; then it waits for
    the claims another process held (holding none itself, so two batches never wait for each
    other) and makes what that process did not (it was stopped before writing them)."""
    pending = list(jobs)
    while pending:
        claimed = ClaimedJobs(pending, claims, made=made, on_made=on_made)
        run(claimed)
        if claimed.deferred:
            on_busy(len(claimed.deferred))
        pending = []
        for job in claimed.deferred:
            claims.wait(job.output)
            if made(job):
                on_made(job)
            else:
                pending.append(job)


def made_since(path: Path, since: float | None) -> bool:
    """Whether `path` exists (and was written at `since` or later, when given): made by
    another batch on the same folder while this one ran."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return False
    return since is None or mtime >= since - 1.0  # file systems' clocks are coarse


def busy_message(count: int, outdir: Path) -> str:
    return (
        f"another nst process is making {count} output(s) in {outdir}; this batch waits for it and "
        "makes any it leaves unmade"
    )
