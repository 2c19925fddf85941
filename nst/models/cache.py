"""The cache folder: downloaded weight files and the extractors exported from them.

Layout of `$NST_HOME` (else the platform's user cache folder for "nst"):

    weights/<cache name>.mat        registry weights, verified (`.part` while downloading)
    models/<sha256[:16]>-<options>.onnx   exported extractors (+ a .json note each),
                                    keyed by the weights file's SHA-256 and the export options
    hashes.json                     SHA-256 of weight files by (path, size, mtime), so that a
                                    second run does not hash 500 MB again

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

from nst.errors import OutputError, WeightsError
from nst.fileio import atomic_path
from nst.models import registry
from nst.models.download import DEFAULT_TIMEOUT, ProgressFn, download_file, file_digests, part_path

ENV_HOME = "NST_HOME"
# Messages for the user ("downloading ...", "using cached model ..."); the CLI prints them.
NotifyFn = Callable[[str], None]

_HASH_INDEX = "hashes.json"


def cache_dir() -> Path:
    """`$NST_HOME` when set, else the platform's user cache folder for nst (not created here)."""
    home = os.environ.get(ENV_HOME, "").strip()
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nst", appauthor=False))


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
        digest = file_digests(path, ("sha256",))["sha256"]
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
    remember_sha256(path, result.digests["sha256"])
    return path


def _check_placed_file(entry: registry.WeightsFile, path: Path, notify: NotifyFn | None) -> None:
    if notify:
        notify(f"checking {path} against the {entry.name} checksum (once)")
    digests = file_digests(path, tuple(dict.fromkeys(("sha256", *entry.checksums))))
    for algo, expected in entry.checksums.items():
        if digests[algo] != expected:
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
        f"weights file not found: {weights} (give a .mat file, or one of the known weights "
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


def list_cache() -> list[CachedFile]:
    """Weight files, partial downloads and exported models in the cache, sorted by kind and name."""
    by_cache_name = {entry.cache_name: entry for entry in registry.WEIGHTS.values()}
    found: list[CachedFile] = []
    if weights_dir().is_dir():
        for path in sorted(weights_dir().iterdir()):
            if not path.is_file():
                continue
            if path.name.endswith(".part"):
                entry = by_cache_name.get(path.name[: -len(".part")])
                label = f"partial download of {entry.name}" if entry else "partial download"
                found.append(CachedFile("partial", path, path.stat().st_size, label))
            elif path.suffix == ".mat":
                entry = by_cache_name.get(path.name)
                found.append(
                    CachedFile("weights", path, path.stat().st_size, entry.description if entry else "weights")
                )
    if models_dir().is_dir():
        for path in sorted(models_dir().glob("*.onnx")):
            found.append(CachedFile("model", path, path.stat().st_size, _model_description(path)))
    return found


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


def clear_cache(what: Literal["all", "weights", "models"] = "all") -> tuple[int, int]:
    """Delete cached files (`what`: everything, only weights and partial downloads, or only
    models); return (files deleted, bytes freed). Files nst did not write are left alone."""
    targets: list[Path] = []
    if what in ("all", "weights") and weights_dir().is_dir():
        targets += [
            p for p in weights_dir().iterdir() if p.is_file() and (p.suffix == ".mat" or p.name.endswith(".part"))
        ]
    if what in ("all", "models") and models_dir().is_dir():
        for model in models_dir().glob("*.onnx"):
            targets += [model] + ([model.with_suffix(".json")] if model.with_suffix(".json").is_file() else [])
        # Leftover temporaries of an export that was killed.
        targets += [p for p in models_dir().glob(".*.part.onnx")]
    if what == "all" and _index_path().is_file():
        targets.append(_index_path())
    count = size = 0
    for path in targets:
        try:
            size += path.stat().st_size
            path.unlink()
            count += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot delete {path}: {exc.strerror or exc}") from None
    return count, size
