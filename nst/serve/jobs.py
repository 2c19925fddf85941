"""A job of the web app: its inputs and options, its status, its live run, and its manifest line."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nst.runtime.config import StylizeConfig, applied_options
from nst.serve.live import LiveRun

Status = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED = ("done", "failed", "cancelled")
INPUT_NAME = re.compile(r"inputs/[0-9a-f]{32}\.[a-z]{3,4}")
MAX_ROWS = 200  # loss-history rows kept in a manifest line: enough for the curve


class JobCancelled(KeyboardInterrupt):
    """Raised by a job's step callback when it was cancelled: the run stops at the end of the
    iteration and, as after Ctrl-C, hands back its best image (`StylizeInterrupted`)."""


@dataclass(frozen=True)
class Inputs:
    """The server's copies of the images, and the names the client gave them (text only)."""

    content: Path
    styles: tuple[Path, ...]
    content_name: str
    style_names: tuple[str, ...]


@dataclass
class Job:
    """One stylization asked for through the API. The status changes under `lock`; the
    worker thread runs it, the HTTP threads read it."""

    id: str
    config: StylizeConfig
    inputs: Inputs
    sweep: str | None = None  # the sweep it belongs to
    parameters: dict[str, Any] = field(default_factory=dict)  # the swept option's value
    status: Status = "queued"
    error: str | None = None
    output: Path | None = None  # the image kept: done, or cancelled after its first iteration
    seconds: float | None = None
    device: str | None = None
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    live: LiveRun = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)
    # job_options of the config last asked for: every status poll sends them, and working them
    # out was most of a poll's cost (0.39 of 0.69 ms of the server's CPU).
    _options: tuple[StylizeConfig, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.live = LiveRun(self.config.iterations)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def on_step(self, step: Any) -> None:
        """The Stylizer's callback: record the step, stop if cancelled."""
        self.live.update(step)
        if self.cancel_requested.is_set():
            raise JobCancelled

    def summary(self, *, since: int | None = None) -> dict[str, Any]:
        """The job as the API gives it; `since`: with the loss history from that row on."""
        progress = self.live.progress(since)
        return {
            "id": self.id,
            "status": self.status,
            **progress,
            "error": self.error,
            "warnings": list(self.warnings),
            "content": self.inputs.content_name,
            "styles": list(self.inputs.style_names),
            "options": self.options(),
            "sweep": self.sweep,
            "parameters": self.parameters,
            "created": self.created,
            "seconds": self.seconds,
            "device": self.device,
            "has_image": self.output is not None or progress["frame"] is not None,
        }

    def options(self) -> dict[str, Any]:
        """`job_options` of the job's config, worked out again only when the config changes."""
        config, cached = self._options or (None, None)
        if config is not self.config or cached is None:
            cached = job_options(self.config)
            self._options = (self.config, cached)
        return cached

    def record(self, outdir: Path) -> dict[str, Any]:
        """Its manifest line: the fields of `stylize-batch`'s, and what a restart needs."""
        progress = self.live.progress(0)
        return {
            "output": self.output.name if self.output is not None else f"{self.id}.png",
            "id": self.id,
            "status": self.status,
            "content": self.inputs.content_name,
            "styles": list(self.inputs.style_names),
            "targets": None,
            "parameters": self.parameters,
            "seed": self.config.seed,
            "loss": progress["losses"].get("total"),
            "seconds": round(self.seconds, 3) if self.seconds is not None else None,
            "error": self.error,
            "worker": self.device,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "options": self.options(),
            "sweep": self.sweep,
            "created": self.created,
            "iteration": progress["iteration"],
            "warnings": list(self.warnings),
            "inputs": {
                "content": _relative(self.inputs.content, outdir),
                "styles": [_relative(p, outdir) for p in self.inputs.styles],
            },
            "history": thinned(progress["history"], MAX_ROWS),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], outdir: Path) -> Job:
        """A finished job of an earlier session, as its manifest line has it."""
        inputs = record.get("inputs") or {}
        job = cls(
            id=record["id"],
            config=StylizeConfig.from_options(record.get("options") or {}),
            inputs=Inputs(
                content=_input_path(outdir, inputs.get("content")),
                styles=tuple(_input_path(outdir, p) for p in inputs.get("styles", [])),
                content_name=str(record.get("content", "")),
                style_names=tuple(str(s) for s in record.get("styles", [])),
            ),
            sweep=record.get("sweep"),
            parameters=dict(record.get("parameters") or {}),
            status=record.get("status", "failed"),
            error=record.get("error"),
            seconds=record.get("seconds"),
            device=record.get("worker"),
            warnings=list(record.get("warnings") or []),
            created=str(record.get("created", "")),
        )
        output = outdir / f"{job.id}.png"
        job.output = output if output.is_file() else None
        job.live.restore(list(record.get("history") or []))
        return job


def job_options(config: StylizeConfig) -> dict[str, Any]:
    """The options a job ran with (`applied_options`) and how its image is written (bit depth,
    colour profile), as JSON: what the page shows and a restart reads back."""
    return {**applied_options(config), "bit_depth": config.bit_depth, "output_profile": config.output_profile}


def thinned(rows: list[dict[str, float]], most: int) -> list[dict[str, float]]:
    """At most `most` rows, evenly spaced, the first and the last kept."""
    if len(rows) <= most:
        return rows
    step = (len(rows) - 1) / (most - 1)
    return [rows[round(k * step)] for k in range(most)]


def _input_path(outdir: Path, name: Any) -> Path:
    """A manifest's input, only in the form the gallery writes (inputs/<hash>.<ext>)."""
    text = str(name or "")
    return outdir / text if INPUT_NAME.fullmatch(text) else Path()


def _relative(path: Path, outdir: Path) -> str:
    try:
        return str(path.relative_to(outdir))
    except ValueError:
        return str(path)
