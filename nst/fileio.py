"""Atomic file writes: every output goes to a temporary file in its folder, then is renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nst.errors import OutputError


def check_writable(path: str | Path, *, overwrite: bool = True) -> Path:
    """Fail early, before any work, if `path` cannot be written."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"folder {folder} is not writable; choose another output path")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    On any exception the temporary file is removed and `path` is left as it was.
    """
    path = check_writable(path, overwrite=overwrite)
    # The temporary name keeps the extension, for writers that pick a format from it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if path.exists() and not overwrite:  # appeared while we worked
            raise OutputError(f"{path} exists; pass --overwrite to replace it")
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it 0600
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
