"""A sweep: the same inputs run once per value of one option, shown as a contact-sheet strip
(like `stylize-batch --sweep ... --contact-sheet`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from nst.batch.sheet import contact_sheet

if TYPE_CHECKING:
    from nst.serve.gallery import Gallery
    from nst.serve.jobs import Job


@dataclass
class Sweep:
    """The jobs of one sweep, in the order of the option's values."""

    id: str
    option: str
    job_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, sweep_id: str, parameters: dict[str, Any]) -> Sweep:
        return cls(sweep_id, next(iter(parameters), ""))

    def summary(self, jobs: list[Job]) -> dict[str, Any]:
        return {
            "id": self.id,
            "option": self.option,
            "values": [job.parameters.get(self.option) for job in jobs],
            "jobs": [job.summary() for job in jobs],
            "finished": all(job.finished for job in jobs),
        }


@dataclass(frozen=True)
class Cell:
    """One result as `contact_sheet` reads it (a BatchResult's fields that it uses)."""

    output: Path
    content: PurePosixPath  # a name, not a file: only its stem is read (the row label)
    status: str
    row: int
    column: int
    parameters: dict[str, Any]


def sheet(sweep: Sweep, jobs: list[Job], gallery: Gallery) -> Path | None:
    """The sweep's contact sheet, made once all its jobs finished (None before); a job that
    failed or stopped before its first image is a grey cell."""
    if not all(job.finished for job in jobs):
        return None
    path = gallery.sheet_path(sweep.id)
    if not path.exists():
        cells = [
            Cell(
                output=job.output if job.output is not None else path.with_name("missing.png"),
                content=PurePosixPath(job.inputs.content_name or "content"),
                status="ok" if job.output is not None else "failed",
                row=0,
                column=column,
                parameters=job.parameters,
            )
            for column, job in enumerate(jobs)
        ]
        styles = ", ".join(jobs[0].inputs.style_names) if jobs else ""
        gallery.save(contact_sheet(cells, style=styles), path)
    return path
