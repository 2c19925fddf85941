"""What `nst cache list` shows and `nst cache clear` deletes: the weights, partial downloads and
exported models in the cache folder, and which of them nst put there (only those are deleted)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nst.errors import CacheError
from nst.fileio import atomic_path
from nst.models import registry
from nst.models.cache import (
    OWNED,
    cache_dir,
    index_is_ours,
    index_lock,
    index_path,
    models_dir,
    owned_files,
    relative_name,
    weights_dir,
)

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
        try:
            size = path.stat().st_size
        except OSError:  # a link whose target went away
            return
        if path.is_symlink():  # nst writes no links: one is the user's, and its target stays
            description, mine = f"{description}; a link to {os.path.realpath(path)}", False
        found.append(CachedFile(kind, path, size, description, mine))

    for path in sorted(weights_dir().iterdir()) if weights_dir().is_dir() else ():
        if not path.is_file():
            continue
        entry = by_cache_name.get(path.name.removesuffix(".part"))
        if path.name.endswith(".part"):
            add(
                "partial", path, f"partial download of {entry.name}" if entry else "partial download", entry is not None
            )
        elif path.suffix in (".mat", ".pth", ".safetensors", ".onnx") or entry is not None:
            add("weights", path, entry.description if entry else "weights", relative_name(path) in owned)
    for path in sorted(models_dir().glob("*.onnx")) if models_dir().is_dir() else ():
        add("model", path, _model_description(path), relative_name(path) in owned)
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
    if what == "all" and index_path().is_file():
        (targets if index_is_ours() else left).append(index_path())
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
    with index_lock():
        remaining = owned_files() - {relative_name(p) for p in targets}
        if (cache_dir() / OWNED).is_file():
            with atomic_path(cache_dir() / OWNED) as tmp:
                tmp.write_text(json.dumps(sorted(remaining), indent=1))
    return Cleared(count, size, tuple(left))
