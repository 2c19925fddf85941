"""A batch's manifest (`OUTDIR/manifest.jsonl`): one JSON line per output made, failed or found.

Each line is appended with one `write` to a file opened for appending, and synced, so a
batch killed at any moment leaves whole lines; a line cut short by a crash of the machine
itself, or by a full disk, is dropped. A re-run appends lines for the outputs it makes; the
last line for an output is its current state. Batches that share the folder take turns through
a lock on the manifest itself, so that one never cuts off a line another is appending.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nst.errors import OutputError
from nst.fileio import write_error

MANIFEST = "manifest.jsonl"


class Manifest:
    """The manifest of the batch in `folder`, as read when opened, and appended to."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST
        self.records: dict[str, dict[str, Any]] = {}  # output name -> its last line
        self.reload()

    def reload(self) -> Manifest:
        """Read the lines as they are now (another batch may have added some)."""
        if not self.path.exists():
            return self
        with _locked(self.path, os.O_RDWR) as fd:
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                raise OutputError(f"cannot read {self.path} ({exc.strerror or exc})") from None
            if data and not data.endswith(b"\n"):  # cut short: keep the whole lines
                data = data[: data.rfind(b"\n") + 1]
                self._truncate(fd, len(data))
        for line in data.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("output"), str):
                self.records[record["output"]] = record
        return self

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, allow_nan=False, default=str) + "\n").encode()
        with _locked(self.path, os.O_WRONLY | os.O_APPEND) as fd:
            _write_line(fd, line, os.fstat(fd).st_size, self.path)
        self.records[record["output"]] = record

    def _truncate(self, fd: int, size: int) -> None:
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            raise OutputError(f"cannot repair {self.path} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def _locked(path: Path, flags: int) -> Iterator[int]:
    """`path` opened with `flags` (created if missing) and locked: a file lock on the manifest
    itself (flock), so that no lock file is left beside it. Closing it releases the lock."""
    try:
        fd = os.open(path, flags | os.O_CREAT, 0o666)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        try:
            import fcntl
        except ImportError:  # Windows: each line is still one write; a repair is not guarded
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _write_line(fd: int, line: bytes, size: int, path: Path) -> None:
    """Append `line` whole, or not at all: a full disk that takes part of it gets it cut off
    again (the file was `size` bytes), so the manifest never holds half a line."""
    try:
        if os.write(fd, line) != len(line):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise write_error(path, exc) from None
