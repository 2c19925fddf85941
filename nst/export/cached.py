"""The cached extractor: weights (registry name or `.mat`) + export options -> an `.onnx` in the cache.

This composes `nst.models.cache` (where things live, downloads) with the exporter, so that
`nst stylize` without `-m` needs one call, and a second run downloads and exports nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from nst.contract import FORMAT_VERSION
from nst.errors import ConfigError
from nst.export.onnx_graph import ExportConfig
from nst.export.save import export_vgg_file
from nst.fileio import atomic_path
from nst.locks import waiting_lock
from nst.models.cache import (
    NotifyFn,
    lock_path,
    models_dir,
    record_owned,
    resolve_weights,
    source_sha256,
    usable_cache_dir,
)
from nst.models.convention import LayoutChoice
from nst.models.download import ProgressFn
from nst.models.layers import Pooling


def options_key(config: ExportConfig) -> str:
    """A short hash of the export options and the graph format: equal keys, equal graphs."""
    options = {"format": FORMAT_VERSION, **dataclasses.asdict(config)}
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]


def cached_model_path(source_sha256: str, config: ExportConfig) -> Path:
    """Where the extractor of these weights (by file SHA-256) and options lives in the cache."""
    return models_dir() / f"{source_sha256[:16]}-{options_key(config)}.onnx"


def cached_model(
    weights: str | Path | None = None,
    config: ExportConfig = ExportConfig(),
    *,
    progress: ProgressFn | None = None,
    notify: NotifyFn | None = None,
) -> Path:
    """Path of the cached ONNX extractor for `weights` and `config`, creating it if needed.

    `weights`: None (the default registry weights, vgg19), a registry name ("vgg19",
    "vgg19-2015", "vgg16", "vgg19-torchvision", ...), or a local weights file (.mat, .pth,
    .safetensors, or an ONNX classifier). Missing registry weights are downloaded
    into the cache (`progress(bytes_done, total)` is called while they are); a missing model
    is exported into the cache atomically. `notify(message)` receives one line per step.
    Raises DownloadError, WeightsError, LayerError, ConfigError.
    """
    source = resolve_weights(weights, progress=progress, notify=notify)
    digest = source_sha256(source)
    model = cached_model_path(digest, config)
    if not model.is_file():
        usable_cache_dir()
        # Processes that start at once: one exports, the others wait and then use its file.
        written = lambda: sum(p.stat().st_size for p in model.parent.glob(f".{model.stem}.*"))  # noqa: E731
        with waiting_lock(
            lock_path(f"model-{model.stem}"), what=f"exporting {model.name}", progress=written, notify=notify
        ):
            if not model.is_file():
                _export(source, digest, model, config, notify)
                return model
    if notify:
        notify(f"using cached model {model}")
    return model


def _export(source: Path, digest: str, model: Path, config: ExportConfig, notify: NotifyFn | None) -> None:
    if notify:
        notify(f"exporting {source} to {model} (once; later runs reuse it)")
    model.parent.mkdir(parents=True, exist_ok=True)
    info = export_vgg_file(source, model, config, overwrite=True, source_sha256=digest)
    note = {
        "weights": str(source),
        "source_sha256": info.source_sha256,
        "architecture": info.architecture,
        "options": dataclasses.asdict(config),
        "format": FORMAT_VERSION,
    }
    with atomic_path(model.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(note, indent=1))
    record_owned(model, model.with_suffix(".json"))


def resolve_model(
    model: str | Path | None,
    *,
    weights: str | Path | None = None,
    pooling: Pooling | None = None,
    layout: LayoutChoice = "auto",
    progress: ProgressFn | None = None,
    notify: NotifyFn | None = None,
) -> Path:
    """The extractor to use: `model` as given, else the cached model of `weights` (default
    vgg19), downloaded and exported on first use, with `pooling` (default max) and the
    weights' input convention `layout` (auto: detected)."""
    if model is not None:
        if layout != "auto":
            raise ConfigError(
                "--weights-layout describes --weights; an exported model (-m) has its convention folded in"
            )
        return Path(model)
    config = ExportConfig(pooling=pooling or "max", weights_layout=layout)
    return cached_model(weights, config, progress=progress, notify=notify)
