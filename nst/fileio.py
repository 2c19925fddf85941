"""Files on disk: atomic writes (every output goes to a temporary file in its folder, is synced,
then renamed) and file digests."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from nst.errors import OutputError


def check_writable(path: str | Path, *, overwrite: bool = True) -> Path:
    """Fail early, before any work, if `path` cannot be written.

    The folder is tried for real, by creating and removing a temporary file in it:
    permissions alone do not tell (read-only mounts, /proc, full disks, ACLs).
    """
    path = _check_path(path, overwrite)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise write_error(path.parent, exc, folder=True) from None
    return path


def _check_path(path: str | Path, overwrite: bool) -> Path:
    path = Path(path)
    if not str(path).strip() or not path.name:  # '' arrives from click as Path('.')
        raise OutputError("the output path is empty; give a file name such as out.png")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    folder = path.parent
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"{blocker} is a file, not a folder; choose another output path for {path.name}")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist; create it first")
    return path


def fallback_path(path: str | Path) -> Path:
    """Where to put an output that could not be written at `path`: the temporary folder,
    under a name that says what it is and does not replace anything."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f"nst-{path.stem or 'output'}-", suffix=path.suffix or ".png")
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success sync it and rename it onto `path`.

    On any exception the temporary file is removed and `path` is left as it was; an OSError
    (a full disk, a folder that went read-only) becomes an OutputError naming `path`. Without
    `overwrite`, a file that another process put at `path` meanwhile is never replaced.
    """
    path = _check_path(path, overwrite)
    # The temporary name keeps the extension, for writers that pick a format from it.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # The bytes reach the disk before the name does: a machine that crashes after the
        # rename cannot leave an empty file under the final name.
        _sync(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it 0600
        _commit(tmp_path, path, overwrite)
        _sync_folder(path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _commit(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give `tmp` the name `path`: a rename, or without `overwrite` a hard link, which fails
    if `path` exists, so that two processes racing for one name cannot both take it."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(f"{path} exists; pass --overwrite to replace it") from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise OutputError(f"{path} exists; pass --overwrite to replace it") from None
        os.replace(tmp, path)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; some file systems cannot sync a folder)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_error(path: Path, exc: OSError, *, folder: bool = False) -> OutputError:
    """The one-line error for an OSError while writing `path` (a folder, when `folder`)."""
    where = f"in folder {path}" if folder else str(path)
    if disk_full(exc):
        what = "the disk quota is exceeded (EDQUOT)" if exc.errno == errno.EDQUOT else "the disk is full (ENOSPC)"
        return OutputError(f"cannot write {where}: {what}; free some space or choose another output path")
    return OutputError(f"cannot write {where} ({exc.strerror or exc}); choose another output path")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_digests(path: str | Path, algorithms: Sequence[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file for each of `algorithms` (hashlib names), in one read."""
    hashers = {algo: hashlib.new(algo) for algo in algorithms}
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            for hasher in hashers.values():
                hasher.update(block)
    return {algo: hasher.hexdigest() for algo, hasher in hashers.items()}


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file: what nst records of weights files, style images and sources."""
    return file_digests(path, ("sha256",))["sha256"]
