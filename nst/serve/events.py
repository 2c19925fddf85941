"""Server-Sent Events of a job: its progress at most 5 times a second, ending with `done`."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nst.serve.jobs import Job

INTERVAL = 0.2  # seconds between two events at least: 5 a second
HEARTBEAT = 15.0  # a comment line this often keeps proxies and the browser from closing the stream


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(finite(data), allow_nan=False)}\n\n".encode()


def finite(data: Any) -> Any:
    """`data` with inf and nan as null: JSON has neither, and JavaScript's parser refuses them."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


async def job_events(job: Job, *, interval: float = INTERVAL) -> AsyncIterator[bytes]:
    """`progress` whenever the job moved (its status or its iteration), then `done` once it
    finished (done, failed or cancelled). Each event carries the loss history rows the stream
    has not sent yet; a reconnected stream starts again from the first row."""
    sent = 0  # history rows sent
    seen: tuple[str, int] | None = None
    beat = time.monotonic()
    while True:
        finished = job.finished  # read first: a finished job's summary is then complete
        now = (job.status, job.live.version)
        if finished or now != seen:
            summary = job.summary(since=sent)
            sent += len(summary["history"])
            seen = now
            yield sse("done" if finished else "progress", summary)
            if finished:
                return
            beat = time.monotonic()
        elif time.monotonic() - beat > HEARTBEAT:
            yield b": keep-alive\n\n"
            beat = time.monotonic()
        await asyncio.sleep(interval)
