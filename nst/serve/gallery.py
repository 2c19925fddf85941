"""The gallery in `--outdir`: each finished job's PNG and its manifest line, and the uploaded
images, so that results and their parameters survive a restart.

Every name on disk is the server's: a job id it generated, or the hash of an upload's bytes.
What the client called a file is kept only as text, in the manifest and the PNG's parameters.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import warnings
from pathlib import Path
from typing import Any

from nst.batch.manifest import MANIFEST, Manifest
from nst.errors import ImageError, OutputError
from nst.fileio import atomic_path, check_writable
from nst.runtime.images import OutputImage, open_image
from nst.runtime.record import Encoding

JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
INPUTS = "inputs"
MAX_NAME = 120  # characters of a client's file name kept for display


def new_job_id() -> str:
    """Sortable by creation time, unguessable enough for one machine's gallery."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def display_name(name: str | None, fallback: str) -> str:
    """A client's file name as text to show: its last component, printable, not too long."""
    text = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:MAX_NAME] or fallback


class Gallery:
    """The results folder: `<job id>.png`, `sweep-<id>.png`, `inputs/<sha256>.<ext>` and
    `manifest.jsonl` (one line per finished job, the last line of a job wins)."""

    def __init__(self, outdir: Path):
        if outdir.exists() and not outdir.is_dir():
            raise OutputError(f"{outdir} is a file; give a folder for the results (--outdir)")
        try:
            (outdir / INPUTS).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create folder {outdir} ({exc.strerror or exc}); choose another --outdir"
            ) from None
        check_writable(outdir / MANIFEST)
        self.outdir = outdir
        self.manifest = Manifest(outdir)

    def store_upload(self, data: bytes, *, name: str) -> Path:
        """Check that `data` is an image the CLI would read (header, pixel limit, a full
        decode) and keep it under the hash of its bytes. ImageError names it by `name`."""
        digest = hashlib.sha256(data).hexdigest()[:32]
        path = self.outdir / INPUTS / (digest + _sniff(data))
        if path.exists():  # the same bytes came before, and were checked then
            return path
        with atomic_path(path, overwrite=True) as tmp:
            tmp.write_bytes(data)

            def named(text: str) -> str:  # the upload's name, not the temporary's
                return text.replace(f"'{tmp}'", repr(name)).replace(str(tmp), repr(name))

            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    open_image(tmp)
            except ImageError as exc:
                raise ImageError(named(str(exc))) from None
            for warning in caught:  # an unusable colour profile, say
                warnings.warn(named(str(warning.message)), warning.category, stacklevel=2)
        return path

    def result_path(self, job_id: str) -> Path:
        return self.outdir / f"{_checked(job_id)}.png"

    def sheet_path(self, sweep_id: str) -> Path:
        return self.outdir / f"sweep-{_checked(sweep_id)}.png"

    def save(self, image: OutputImage, path: Path, *, encoding: Encoding | None = None) -> Path:
        """Write `image` (atomically) as `encoding` says: a result with its provenance, bit
        depth and colour profile; without one (a contact sheet), 8-bit sRGB with no text."""
        (encoding or Encoding({})).save(image, path, overwrite=True)
        return path

    def record(self, record: dict[str, Any]) -> None:
        self.manifest.append(record)

    def records(self) -> list[dict[str, Any]]:
        """The jobs of earlier sessions, oldest first (lines that are not this app's are left out)."""
        found = [r for r in self.manifest.records.values() if JOB_ID.fullmatch(str(r.get("id", "")))]
        return sorted(found, key=lambda r: r["id"])


def _checked(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):  # never a client's string in a path, even by mistake
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


def _sniff(data: bytes) -> str:
    """The extension for `data`, from its magic bytes ('.img' when unknown: the decoder decides)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if data[:4] == b"GIF8":
        return ".gif"
    return ".bmp" if data[:2] == b"BM" else ".img"
