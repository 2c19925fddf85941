"""A batch's manifest (`OUTDIR/manifest.jsonl`): one JSON line per output made, failed or found.

Each line is appended with one `write` to a file opened for appending, and synced, so a
batch killed at any moment leaves whole lines; a line cut short by a crash of the machine
itself is dropped when the manifest is next opened. A re-run appends lines for the outputs it
makes; the last line for an output is its current state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nst.errors import OutputError

MANIFEST = "manifest.jsonl"


class Manifest:
    """The manifest of the batch in `folder`, as read when opened, and appended to."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST
        self.records: dict[str, dict[str, Any]] = {}  # output name -> its last line
        try:
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise OutputError(f"cannot read {self.path} ({exc.strerror or exc})") from None
        if data and not data.endswith(b"\n"):  # cut short: keep the whole lines
            self._truncate(data.rfind(b"\n") + 1)
            data = data[: data.rfind(b"\n") + 1]
        for line in data.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("output"), str):
                self.records[record["output"]] = record

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, allow_nan=False, default=str) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path} ({exc.strerror or exc})") from None
        self.records[record["output"]] = record

    def _truncate(self, size: int) -> None:
        try:
            os.truncate(self.path, size)
        except OSError as exc:
            raise OutputError(f"cannot repair {self.path} ({exc.strerror or exc})") from None
