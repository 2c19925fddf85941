"""The container of nst's own data files (style targets, run states): an uncompressed `.npz`
whose `metadata` array holds UTF-8 JSON (with a magic string and a format version) and whose
other arrays are plain numeric arrays, always read with `allow_pickle=False`.

Each format keeps its own names, version and checks; this module owns the bytes on disk.
Problems are raised as `Unreadable` with a reason, which each format words for its users.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nst.fileio import atomic_path

METADATA = "metadata"
_ZIP_MAGIC = b"PK\x03\x04"

Reason = Literal["missing", "not-container", "no-metadata", "pickled", "corrupt", "version"]


class Unreadable(Exception):
    """Why a container could not be read: `reason`, and `detail` (a short text, or the
    version found for "version")."""

    def __init__(self, reason: Reason, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def write_container(
    path: str | Path,
    *,
    magic: str,
    version: int,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    overwrite: bool = True,
) -> Path:
    """Write `meta` (JSON, under `magic` and `version`) and `arrays` atomically to `path`."""
    header = {"magic": magic, "format": version, **meta}
    payload = {METADATA: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8), **arrays}
    # An open file, so that numpy does not append `.npz` to the name.
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        np.savez(f, **payload)  # type: ignore[arg-type]
    return Path(path)


def read_container(path: str | Path, *, magic: str, version: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, arrays) of the container at `path`, checked for `magic` and `version`."""
    path = Path(path)
    if not path.is_file():
        raise Unreadable("missing")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise Unreadable("corrupt", _short(exc)) from None
    if head != _ZIP_MAGIC:
        raise Unreadable("not-container")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if METADATA not in npz.files:
                raise Unreadable("no-metadata")
            meta = _metadata(npz[METADATA])
            arrays = {name: npz[name] for name in npz.files if name != METADATA}
    except Unreadable:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise Unreadable("pickled") from None
        raise Unreadable("corrupt", _short(exc)) from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise Unreadable("corrupt", _short(exc)) from None
    if meta.get("magic") != magic:
        raise Unreadable("no-metadata")
    if meta.get("format") != version:
        raise Unreadable("version", str(meta.get("format")))
    return meta, arrays


def read_metadata(path: str | Path, *, magic: str, version: int) -> dict[str, Any] | None:
    """The metadata of the container at `path` without reading its arrays (a run state's can
    be hundreds of MB), or None when it is not a whole, readable container of this kind."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = _metadata(npz[METADATA])
    except (Unreadable, ValueError, zipfile.BadZipFile, OSError, EOFError, KeyError):
        return None
    return meta if meta.get("magic") == magic and meta.get("format") == version else None


def _metadata(raw: np.ndarray) -> dict[str, Any]:
    try:
        meta = json.loads(raw.tobytes().decode("utf-8")) if raw.dtype == np.uint8 else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not isinstance(meta, dict):
        raise Unreadable("no-metadata")
    return meta


def _short(exc: BaseException) -> str:
    """An exception's text as a short single line, to quote inside a one-line error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."
