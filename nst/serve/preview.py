"""`nst stylize --preview [PORT]`: the web app's live view of one CLI run, read-only, served
from a thread while the run goes on in the main one."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst.serve.gallery import new_job_id
from nst.serve.jobs import Inputs, Job, Status

if TYPE_CHECKING:
    from nst.runtime.config import StylizeConfig
    from nst.runtime.loop import Step

INTERRUPTED = 130  # the exit status of a run stopped by Ctrl-C (nst.cli.INTERRUPTED)
LINGER = 0.6  # seconds the page gets, after the run, to receive `done` (three event intervals)


class Preview:
    """The live view of one run at `url`: pass `callback` to the Stylizer, call `finish` when
    the run ends and `close` before the process exits."""

    def __init__(self, job: Job, *, host: str, port: int):
        # starlette and uvicorn load only when a preview starts, not with `nst stylize`
        from nst.serve.app import create_app
        from nst.serve.server import Server, bind, url

        self.job = job
        sock = bind(host, port)
        self.url = url(host, sock.getsockname()[1])
        app = create_app(_OneRun(job), info={"mode": "preview", "model": None, "devices": []})
        self._server = Server(app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="nst-preview", daemon=True
        )
        self._thread.start()

    def callback(self, step: Step) -> None:
        self.job.on_step(step)

    def following(self, callback: Callable[[Step], None]) -> Callable[[Step], None]:
        """`callback`, then this view's: a run's own step callback that also feeds the page."""

        def both(step: Step) -> None:
            callback(step)
            self.callback(step)

        return both

    def finish(self, status: Status, *, error: str | None = None) -> None:
        """The run ended: the page shows `status` (done, failed, cancelled) and the best image."""
        with self.job.lock:
            self.job.status, self.job.error = status, error

    def close(self) -> None:
        """Let open pages receive the end, then stop serving."""
        if self.job.finished:
            time.sleep(LINGER)
        self._server.should_exit = True
        self._thread.join(timeout=5)


class _OneRun:
    def __init__(self, job: Job):
        self.job = job

    def get(self, job_id: str) -> Job | None:
        return self.job if job_id == self.job.id else None

    def all(self) -> list[Job]:
        return [self.job]


def start_preview(
    port: int, *, config: StylizeConfig, content: Any, styles: Sequence[Any], host: str = "127.0.0.1"
) -> Preview:
    """Serve the live view of a run with `config` on `content` and `styles` (paths, shown by
    name) at http://host:port/ (port 0: a free one). ConfigError when the port is taken."""
    names = tuple(Path(str(s)).name for s in styles)
    inputs = Inputs(Path(str(content)), tuple(Path(str(s)) for s in styles), Path(str(content)).name, names)
    return Preview(Job(new_job_id(), config, inputs, status="running"), host=host, port=port)


@contextlib.contextmanager
def previewing(port: int, *, config: StylizeConfig, content: Any, styles: Sequence[Any]) -> Iterator[Preview]:
    """`start_preview` for the length of a CLI run: the page shows how it ended (done; cancelled
    by Ctrl-C, exit status 130; failed, with the error) and the server stops after it."""
    preview = start_preview(port, config=config, content=content, styles=styles)
    try:
        yield preview
    except (KeyboardInterrupt, SystemExit) as stop:
        interrupted = isinstance(stop, KeyboardInterrupt) or stop.code == INTERRUPTED
        preview.finish("cancelled" if interrupted else "failed")
        raise
    except BaseException as exc:
        preview.finish("failed", error=str(exc))
        raise
    else:
        preview.finish("done")
    finally:
        preview.close()
