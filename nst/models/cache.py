"""The cache folder: downloaded weight files and the extractors exported from them.

Layout of `$NST_HOME` (else the platform's user cache folder for "nst"):

    weights/<cache name>.mat        registry weights, verified (`.part` while downloading)
    models/<sha256[:16]>-<options>.onnx   exported extractors (+ a .json note each),
                                    keyed by the weights file's SHA-256 and the export options
    hashes.json                     SHA-256 of weight files by (path, size, mtime), so that a
                                    second run does not hash 500 MB again
    owned.json                      the files nst itself put here: `nst cache clear` deletes
                                    only those (a .mat a user placed by hand stays)
    locks/                          one lock file per download or export, so that processes
                                    that start at once download and export each file once

Resolving weights (`resolve_weights`) downloads a registry entry when it is missing; the
export side (`nst.export.cached.cached_model`) composes this with the exporter.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from nst.errors import CacheError, NSTError, OutputError, WeightsError
from nst.fileio import atomic_path, check_writable, file_digests, file_sha256
from nst.locks import waiting_lock
from nst.models import registry
from nst.models.download import DEFAULT_TIMEOUT, ProgressFn, digest_matches, download_file, part_path

ENV_HOME = "NST_HOME"
# Messages for the user ("downloading ...", "using cached model ..."); the CLI prints them.
NotifyFn = Callable[[str], None]

_HASH_INDEX = "hashes.json"
OWNED = "owned.json"


def cache_dir() -> Path:
    """`$NST_HOME` when set, else the platform's user cache folder for nst (not created here)."""
    home = os.environ.get(ENV_HOME, "").strip()
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nst", appauthor=False))


def usable_cache_dir() -> Path:
    """`cache_dir()`, created if missing; a CacheError says why it cannot be used."""
    folder = cache_dir()
    where = f"NST_HOME={folder}" if os.environ.get(ENV_HOME, "").strip() else f"the cache folder {folder}"
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise CacheError(f"{where} cannot be used: {blocker} is a file; point NST_HOME at a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        check_writable(folder / OWNED)
    except (OSError, OutputError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CacheError(f"{where} cannot be used ({reason}); set NST_HOME to a writable folder") from None
    return folder


def record_owned(*paths: Path) -> None:
    """Remember that nst wrote `paths` (inside the cache), so that `clear_cache` may delete them."""
    try:
        with index_lock():
            owned = owned_files()
            owned.update(name for name in map(relative_name, paths) if name is not None)
            with atomic_path(cache_dir() / OWNED) as tmp:
                tmp.write_text(json.dumps(sorted(owned), indent=1))
    except OutputError as exc:
        raise CacheError(f"cannot record the cache's contents ({exc}); set NST_HOME to a writable folder") from None


def lock_path(name: str) -> Path:
    """The lock file that processes sharing the cache take before they make `name`."""
    return cache_dir() / "locks" / f"{name}.lock"


def index_lock() -> contextlib.AbstractContextManager[None]:
    # owned.json and hashes.json are read, changed and written: one process at a time.
    return waiting_lock(lock_path("index"), what="updating the cache's index")


def owned_files() -> set[str]:
    """Cache-relative paths of the files nst put in the cache."""
    try:
        data = json.loads((cache_dir() / OWNED).read_text())
    except (OSError, ValueError):
        return set()
    return {str(p) for p in data} if isinstance(data, list) else set()


def weights_dir() -> Path:
    return cache_dir() / "weights"


def models_dir() -> Path:
    return cache_dir() / "models"


def weights_path(name: str | None = None) -> Path:
    """Where registry weights `name` (None: the default) live in the cache."""
    return weights_dir() / registry.get(name).cache_name


# --- file hashes, remembered ---------------------------------------------------------------


def index_path() -> Path:
    return cache_dir() / _HASH_INDEX


def _read_index() -> dict[str, dict]:
    try:
        data = json.loads(index_path().read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: hashes are recomputed, nothing is lost
    return data if isinstance(data, dict) else {}


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def remember_sha256(path: str | Path, sha256: str) -> None:
    """Record `path`'s SHA-256 against its current size and mtime (unless a hashes.json that
    nst did not write is in the way: that costs a re-hash, never the user's file)."""
    path = Path(path).resolve()
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        with index_lock():
            if index_path().exists() and not index_is_ours():
                return
            index = _read_index()
            index[str(path)] = {**_stamp(path), "sha256": sha256}
            with atomic_path(index_path()) as tmp:
                tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        record_owned(index_path())
    except (OSError, NSTError):
        pass  # a read-only cache only costs a re-hash next time


def index_is_ours() -> bool:
    """Whether hashes.json is nst's: recorded as written by nst, or shaped as nst writes it."""
    if _HASH_INDEX in owned_files():
        return True
    try:
        data = json.loads(index_path().read_text())
    except (OSError, ValueError):
        return False
    entries = data.values() if isinstance(data, dict) and data else [None]
    return all(isinstance(e, dict) and {"size", "mtime_ns", "sha256"} <= set(e) for e in entries)


def known_sha256(path: str | Path) -> str | None:
    """The remembered SHA-256 of `path`, if its size and mtime have not changed since."""
    path = Path(path).resolve()
    entry = _read_index().get(str(path))
    if not isinstance(entry, dict) or not path.is_file():
        return None
    return entry.get("sha256") if {**entry, **_stamp(path)} == entry else None


def source_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file: remembered when unchanged, else computed and remembered."""
    digest = known_sha256(path)
    if digest is None:
        digest = file_sha256(path)
        remember_sha256(path, digest)
    return digest


# --- weights ------------------------------------------------------------------------------


def ensure_weights(
    name: str | None = None,
    *,
    progress: ProgressFn | None = None,
    notify: NotifyFn | None = None,
    timeout: float | None = None,
) -> Path:
    """The cached file of registry weights `name` (None: vgg19), downloaded and verified if needed.

    A file found in the cache that nst did not download (placed by hand) is checked once
    against the registry's checksums. Raises DownloadError or WeightsError.
    """
    entry = registry.get(name)
    path = weights_dir() / entry.cache_name
    if path.is_file():
        if known_sha256(path) is None:
            _check_placed_file(entry, path, notify)
        return path
    usable_cache_dir()  # before a 500 MB download: say now if the cache cannot take it
    urls = entry.download_urls()
    part = part_path(path)
    # Processes that start at once: one downloads, the others wait while its .part grows.
    with waiting_lock(
        lock_path(f"weights-{entry.cache_name}"),
        what=f"downloading the {entry.name} weights",
        progress=lambda: part.stat().st_size if part.is_file() else None,
        notify=notify,
    ):
        if path.is_file():
            return path
        if notify:
            verb = f"resuming ({part.stat().st_size} bytes already here)" if part.is_file() else "downloading"
            notify(f"{verb} {entry.name} weights ({entry.file_name}) from {urls[0]} to {path}")
        result = download_file(
            urls,
            path,
            entry.checksums,
            size=entry.size,
            progress=progress,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        )
        record_owned(path)
        remember_sha256(path, result.digests["sha256"])
    return path


def _check_placed_file(entry: registry.WeightsFile, path: Path, notify: NotifyFn | None) -> None:
    if notify:
        notify(f"checking {path} against the {entry.name} checksum (once)")
    digests = file_digests(path, tuple(dict.fromkeys(("sha256", *entry.checksums))))
    for algo, expected in entry.checksums.items():
        if not digest_matches(digests[algo], expected):
            raise WeightsError(
                f"{path} is not the {entry.name} weights file ({algo} {digests[algo]}, expected {expected}); "
                "delete it to download it again, or pass the file you want with --weights PATH"
            )
    remember_sha256(path, digests["sha256"])


def resolve_weights(
    weights: str | Path | None,
    *,
    progress: ProgressFn | None = None,
    notify: NotifyFn | None = None,
) -> Path:
    """A local `.mat` path as it is; a registry name (or None: vgg19) via `ensure_weights`.

    An existing file wins over a registry name of the same spelling.
    """
    if weights is None:
        return ensure_weights(None, progress=progress, notify=notify)
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if registry.is_known(str(weights)):
        return ensure_weights(str(weights), progress=progress, notify=notify)
    raise WeightsError(
        f"weights file not found: {weights} (give a .mat, .pth, .safetensors or .onnx file, or one of the known weights "
        f"{', '.join(registry.names())}, which are downloaded)"
    )


def relative_name(path: Path) -> str | None:
    """`path` relative to the cache, its folders resolved but not itself (a link stays a
    link), or None when it lies outside the cache."""
    path = Path(path)
    try:
        return str((path.parent.resolve() / path.name).relative_to(cache_dir().resolve()))
    except ValueError:
        return None
