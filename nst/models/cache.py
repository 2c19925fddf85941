"""The cache folder: downloaded weight files and the extractors exported from them.

Layout of `$NST_HOME` (else the platform's user cache folder for "nst"):

    weights/<cache name>.mat        registry weights, verified (`.part` while downloading)
    models/<sha256[:16]>-<options>.onnx   exported extractors (+ a .json note each),
                                    keyed by the weights file's SHA-256 and the export options
    hashes.json                     SHA-256 of weight files by (path, size, mtime), so that a
                                    second run does not hash 500 MB again
    owned.json                      the files nst itself put here: `nst cache clear` deletes
                                    only those (a .mat a user placed by hand stays)

Resolving weights (`resolve_weights`) downloads a registry entry when it is missing; the
export side (`nst.export.cached.cached_model`) composes this with the exporter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nst.errors import CacheError, OutputError, WeightsError
from nst.fileio import atomic_path, check_writable, file_digests, file_sha256
from nst.models import registry
from nst.models.download import DEFAULT_TIMEOUT, ProgressFn, digest_matches, download_file, part_path

ENV_HOME = "NST_HOME"
# Messages for the user ("downloading ...", "using cached model ..."); the CLI prints them.
NotifyFn = Callable[[str], None]

_HASH_INDEX = "hashes.json"
_OWNED = "owned.json"


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
        check_writable(folder / _OWNED)
    except (OSError, OutputError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CacheError(f"{where} cannot be used ({reason}); set NST_HOME to a writable folder") from None
    return folder


def record_owned(*paths: Path) -> None:
    """Remember that nst wrote `paths` (inside the cache), so that `clear_cache` may delete them."""
    owned = owned_files()
    owned.update(str(Path(p).resolve().relative_to(cache_dir().resolve())) for p in paths)
    try:
        with atomic_path(cache_dir() / _OWNED) as tmp:
            tmp.write_text(json.dumps(sorted(owned), indent=1))
    except OutputError as exc:
        raise CacheError(f"cannot record the cache's contents ({exc}); set NST_HOME to a writable folder") from None


def owned_files() -> set[str]:
    """Cache-relative paths of the files nst put in the cache."""
    try:
        data = json.loads((cache_dir() / _OWNED).read_text())
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


def _index_path() -> Path:
    return cache_dir() / _HASH_INDEX


def _read_index() -> dict[str, dict]:
    try:
        data = json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: hashes are recomputed, nothing is lost
    return data if isinstance(data, dict) else {}


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def remember_sha256(path: str | Path, sha256: str) -> None:
    """Record `path`'s SHA-256 against its current size and mtime."""
    path = Path(path).resolve()
    index = _read_index()
    index[str(path)] = {**_stamp(path), "sha256": sha256}
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        with atomic_path(_index_path()) as tmp:
            tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def known_sha256(path: str | Path) -> str | None:
    """The remembered SHA-256 of `path`, if its size and mtime have not changed since."""
    path = Path(path).resolve()
    entry = _read_index().get(str(path))
    if not entry or not path.is_file():
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
    if notify:
        resume = part_path(path)
        verb = f"resuming ({resume.stat().st_size} bytes already here)" if resume.is_file() else "downloading"
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


# --- listing and clearing -----------------------------------------------------------------

Kind = Literal["weights", "partial", "model"]


@dataclass(frozen=True)
class CachedFile:
    """One file in the cache, as `nst cache list` shows it."""

    kind: Kind
    path: Path
    size: int
    description: str
    owned: bool  # nst put it there (a download, an export), so `clear_cache` may delete it


def _readable_cache() -> Path:
    folder = cache_dir()
    if folder.exists() and not folder.is_dir():
        raise CacheError(f"the cache folder {folder} is a file, not a folder; point NST_HOME at a folder")
    if folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):
        raise CacheError(f"the cache folder {folder} cannot be read; set NST_HOME to a folder of yours")
    return folder


def list_cache() -> list[CachedFile]:
    """Weight files, partial downloads and exported models in the cache, sorted by kind and name."""
    _readable_cache()
    by_cache_name = {entry.cache_name: entry for entry in registry.WEIGHTS.values()}
    owned = owned_files()
    found: list[CachedFile] = []

    def add(kind: Kind, path: Path, description: str, mine: bool) -> None:
        found.append(CachedFile(kind, path, path.stat().st_size, description, mine))

    for path in sorted(weights_dir().iterdir()) if weights_dir().is_dir() else ():
        if not path.is_file():
            continue
        entry = by_cache_name.get(path.name.removesuffix(".part"))
        if path.name.endswith(".part"):
            add(
                "partial", path, f"partial download of {entry.name}" if entry else "partial download", entry is not None
            )
        elif path.suffix in (".mat", ".pth", ".safetensors", ".onnx") or entry is not None:
            add("weights", path, entry.description if entry else "weights", _relative(path) in owned)
    for path in sorted(models_dir().glob("*.onnx")) if models_dir().is_dir() else ():
        add("model", path, _model_description(path), _relative(path) in owned)
    return found


def _relative(path: Path) -> str:
    return str(path.resolve().relative_to(cache_dir().resolve()))


def _model_description(path: Path) -> str:
    try:
        note = json.loads(path.with_suffix(".json").read_text())
        opts = note["options"]
        return (
            f"{note['architecture']} from {note['weights']}; layers {','.join(opts['layers'])}; "
            f"{opts['pooling']} pooling{'; grams' if opts['grams'] else ''}"
            f"{'; swapped kernel axes' if opts['swap_kernel_axes'] else ''}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "exported model"


@dataclass(frozen=True)
class Cleared:
    """What `clear_cache` did: files deleted, bytes freed, and the files it left (not nst's)."""

    count: int
    size: int
    left: tuple[Path, ...]


def clear_cache(what: Literal["all", "weights", "models"] = "all") -> Cleared:
    """Delete what nst put in the cache (`what`: everything, only weights and partial
    downloads, or only models). Files nst did not write, such as a `.mat` placed by hand,
    are left alone and listed in the result."""
    _readable_cache()
    kinds = {"all": ("weights", "partial", "model"), "weights": ("weights", "partial"), "models": ("model",)}[what]
    targets: list[Path] = []
    left: list[Path] = []
    for item in list_cache():
        if item.kind not in kinds:
            continue
        if not item.owned:
            left.append(item.path)
            continue
        targets.append(item.path)
        note = item.path.with_suffix(".json")
        if item.kind == "model" and note.is_file():
            targets.append(note)
    if "model" in kinds and models_dir().is_dir():
        targets += models_dir().glob(".*.part.onnx")  # the temporaries of an export that was killed
    if what == "all":
        targets += [path for path in (_index_path(),) if path.is_file()]
    count = size = 0
    for path in targets:
        try:
            size += path.stat().st_size
            path.unlink()
            count += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CacheError(f"cannot delete {path}: {exc.strerror or exc}") from None
    remaining = owned_files() - {_relative(p) for p in targets}
    if (cache_dir() / _OWNED).is_file():
        with atomic_path(cache_dir() / _OWNED) as tmp:
            tmp.write_text(json.dumps(sorted(remaining), indent=1))
    return Cleared(count, size, tuple(left))
