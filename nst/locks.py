"""Locks between nst processes: one process downloads or exports a cache file while the others
wait for it, and a batch claims each output it makes so that a second batch does not make it too.

They are file locks (the `filelock` package: flock on Unix, the native lock on Windows), which the
operating system releases when their process dies: a killed process never blocks the next one.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nst.errors import ConfigError, LockError, OutputError

ENV_TIMEOUT = "NST_LOCK_TIMEOUT"
# Seconds a waiting process lets another hold a lock without visible progress before giving up.
DEFAULT_TIMEOUT = 300.0
_POLL = 0.5  # seconds between looks at a held lock


def lock_timeout() -> float:
    """$NST_LOCK_TIMEOUT in seconds, else DEFAULT_TIMEOUT."""
    text = os.environ.get(ENV_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{ENV_TIMEOUT}={text!r} must be a number of seconds above 0")
    return value


def _file_lock(path: Path) -> Any:
    import filelock  # a dependency of torch too; imported here to keep `nst --help` light

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make the lock folder {path.parent} ({exc.strerror or exc})") from None
    return filelock.FileLock(str(path))


def _acquire(lock: Any, path: Path, timeout: float) -> bool:
    """Try to take `lock` for up to `timeout` seconds; whether it was taken."""
    import filelock

    for attempt in range(2):
        try:
            lock.acquire(timeout=timeout, poll_interval=min(0.05, max(timeout, 0.001)))
        except filelock.Timeout:
            return False
        except FileNotFoundError as exc:
            if attempt:
                raise OutputError(f"cannot use the lock file {path} ({exc.strerror or exc})") from None
            # Its folder went away (a batch removes its empty claims folder at the end): again.
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot use the lock file {path} ({exc.strerror or exc})") from None
        else:
            return True
    return False


@contextlib.contextmanager
def waiting_lock(
    path: Path,
    *,
    what: str,
    progress: Callable[[], object] | None = None,
    notify: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> Iterator[None]:
    """Hold the lock file `path` for the block. While another process holds it, wait: `notify`
    hears so once, and after `timeout` seconds ($NST_LOCK_TIMEOUT, else 300; math.inf: for ever)
    in which `progress()` (say, the size of the file the holder writes) did not change, raise
    LockError. `what` says what the holder does ("downloading vgg19 weights")."""
    lock = _file_lock(path)
    if not _acquire(lock, path, 0):
        limit = lock_timeout() if timeout is None else timeout
        if notify is not None:
            notify(f"waiting for another nst process that is {what} (lock {path})")
        last, since = progress() if progress else None, time.monotonic()
        while not _acquire(lock, path, _POLL if math.isinf(limit) else min(_POLL, limit)):
            now = progress() if progress else None
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= limit:
                raise LockError(
                    f"another nst process has been {what} for {limit:g} s without progress (lock {path}); "
                    f"wait for it to finish or stop it, or set {ENV_TIMEOUT}=SECONDS to wait longer"
                )
    try:
        yield
    finally:
        lock.release()


class Claim:
    """A lock taken without waiting: `take()` says whether this process now holds it;
    `release()` lets it go and removes the file."""

    def __init__(self, path: Path):
        self.path = path
        self._lock: Any = None

    def take(self) -> bool:
        lock = _file_lock(self.path)
        if not _acquire(lock, self.path, 0):
            return False
        self._lock = lock
        return True

    def release(self) -> None:
        """Remove the file, then let the lock go. A process that opened the file before it went
        and takes the lock after holds a removed file: claimants check the output after taking
        a claim, so that process finds the output made and leaves it."""
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._lock.release()
        self._lock = None
