"""Joining (or starting) the Ray cluster of a batch: a TCP check of the address first, so that
nothing listening there is one line within seconds (Ray itself retries a GCS address for
minutes and a Ray Client address for half a minute), and Ray's own log lines and warnings kept
out of the user's terminal while it connects."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from nst.batch.execution import RAY_LOCAL
from nst.errors import ConfigError

CONNECT_TIMEOUT = 5.0  # seconds for the TCP check: a host that does not answer in that time is not a cluster
CLIENT_ATTEMPTS = 3  # tries of a Ray Client (ray://) connection whose session the server failed to start
CLIENT_RETRY_WAIT = 2.0  # seconds before the second try, twice that before the third


def cluster_address(address: str | None) -> tuple[str, int] | None:
    """(host, port) of a cluster address (ray://HOST:PORT, HOST:PORT; RAY_LOCAL and None
    mean $RAY_ADDRESS), or None when there is none to check (a local instance, auto)."""
    if address in (None, RAY_LOCAL):
        address = os.environ.get("RAY_ADDRESS", "").strip() or None
    if address is None or address == "auto":
        return None
    try:
        parts = urlsplit(address if "://" in address else f"//{address}")
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname and port else None


def check_reachable(address: str | None) -> None:
    """ConfigError, at once, when nothing accepts a TCP connection at the cluster's address."""
    target = cluster_address(address)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else _reason(exc)
        where = address if address not in (None, RAY_LOCAL) else f"$RAY_ADDRESS ({os.environ.get('RAY_ADDRESS')})"
        raise ConfigError(
            f"--ray: no Ray cluster answers at {where} ({reason}); start one there (ray start --head) "
            "or check the address and port"
        ) from None


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "host not found"
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def connect(ray: Any, address: str | None) -> None:
    """`ray.init` for `address` (None or RAY_LOCAL: a new local instance, or $RAY_ADDRESS's
    cluster), quietly; a failure is a one-line ConfigError, with whatever Ray started stopped."""
    check_reachable(address)
    local = address in (None, RAY_LOCAL)
    # A new local instance, quiet and without a dashboard; Ray refuses those options when it
    # joins a cluster (an address, or $RAY_ADDRESS).
    fresh = local and not os.environ.get("RAY_ADDRESS")
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR"} if fresh else {}
    # Ray Client's server starts a process for each client, and on a busy head that start can
    # fail ("Initialization failure from server"); a second try usually finds it ready.
    attempts = CLIENT_ATTEMPTS if str(address).startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        try:
            with _quiet():
                ray.init(address=None if local else address, **options)
            return
        except Exception as exc:  # no cluster there, a version mismatch, a node that did not start
            with contextlib.suppress(Exception):
                ray.shutdown()  # whatever it started
            if isinstance(exc, ConnectionAbortedError) and attempt < attempts:
                time.sleep(CLIENT_RETRY_WAIT * attempt)
                continue
            target = "$RAY_ADDRESS" if local else address
            where = "start a local Ray instance" if fresh else f"join the Ray cluster at {target}"
            raise ConfigError(f"--ray: could not {where} ({first_line(exc)})") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Ray's INFO lines ("Connecting to existing Ray cluster ...") and its UserWarnings, held
    back while it connects: what goes wrong is said in nst's one line. Every logger's, for the
    moment of the call: ray.init sets up its own loggers' levels as it runs."""
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
