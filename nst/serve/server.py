"""Running the app with uvicorn on a socket bound first, so that a port in use is one line
before anything starts; in the foreground (`nst serve`) or in a thread (`--preview`)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from nst.errors import ConfigError

GRACEFUL_SHUTDOWN = 10.0  # seconds open streams get to end once the jobs are stopped


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port or --host"
        ) from None
    return sock


def url(host: str, port: int, token: str | None = None) -> str:
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


class Server(uvicorn.Server):
    """uvicorn's server, telling its owner when it listens (`on_ready`), when it starts to shut
    down (`on_stop`, in the event loop: stop the jobs, so that their event streams end rather
    than hold the shutdown) and when a second Ctrl-C asks not to wait (`on_force`, called in
    the signal handler)."""

    def __init__(
        self,
        app: Any,
        *,
        on_ready: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
        on_force: Callable[[], None] | None = None,
    ):
        super().__init__(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN),
            )
        )
        self.on_ready, self.on_stop, self.on_force = on_ready, on_stop, on_force

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.on_stop is not None:
            self.on_stop()
        await super().shutdown(sockets=sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit and self.on_force is not None:
            self.on_force()
        super().handle_exit(sig, frame)
