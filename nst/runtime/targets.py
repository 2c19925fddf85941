"""The style-targets file: Gram matrices computed once (`nst.runtime.grams`), reused by stylize.

`save_targets` / `load_targets` write and read it; stylize calls `StyleTargets.check_targets`
before it uses one. The file is nst's `.npz` + JSON container (`nst.container`): its metadata holds the model
hash, layers, sizes, sources and entries, and `entry<i>/<layer>` holds entry i's (C, C)
float32 Gram of that layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nst.container import Unreadable, read_container, write_container
from nst.contract import ModelInfo
from nst.errors import TargetsError
from nst.models.layers import STYLE_LAYERS

MAGIC = "nst.style-targets"
FORMAT_VERSION = 1
_RECOMPUTE = "compute them again with `nst precompute-style STYLE... -m MODEL.onnx -o {path}`"


@dataclass(frozen=True)
class StyleSource:
    """One style image: its file name and SHA-256."""

    name: str
    sha256: str


@dataclass(frozen=True)
class StyleEntry:
    """The Grams of one style image at one scale: layer -> (C, C) float32."""

    style: int  # index into StyleTargets.sources
    scale: float  # the --style-scales factor
    size: tuple[int, int]  # (height, width) of the resized style image fed to the network
    grams: dict[str, np.ndarray]


@dataclass(frozen=True)
class StyleTargets:
    """Everything stylize needs from the style images, and what it must match."""

    weights_sha256: str  # ModelInfo.weights_sha256 of the extractor that computed the Grams
    architecture: str
    pooling: str
    layers: tuple[str, ...]  # the style layers, in network order
    gram_normalization: str
    sources: tuple[StyleSource, ...]
    entries: tuple[StyleEntry, ...] = field(default=())
    size: int | None = None  # --size: the styles' long side at scale 1 (None when `width` was used)
    width: int | None = None  # the styles' width at scale 1, when sized relative to a content image
    scales: tuple[float, ...] = (1.0,)

    def check_targets(self, info: ModelInfo, layers: Iterable[str] | None = None) -> None:
        """Raise TargetsError unless these targets were computed by a model like `info`
        (a `ModelInfo`) and hold a Gram for each of `layers` (default: the model's style layers)."""
        fix = f"compute them again with `nst precompute-style STYLE... -m {info.path}`"
        if self.weights_sha256 != info.weights_sha256:
            raise TargetsError(
                f"the style targets were computed with model weights {self.weights_sha256[:12]}, "
                f"but {info.path} has weights {info.weights_sha256[:12]}; {fix}"
            )
        if self.pooling != info.pooling:
            raise TargetsError(
                f"the style targets were computed with {self.pooling} pooling, "
                f"but {info.path} uses {info.pooling} pooling; {fix}"
            )
        if self.gram_normalization != info.gram_normalization:
            raise TargetsError(
                f"the style targets use Gram normalization {self.gram_normalization!r}, "
                f"but {info.path} uses {info.gram_normalization!r}; {fix}"
            )
        wanted = tuple(layers) if layers is not None else model_style_layers(info)
        missing = [name for name in wanted if name not in self.layers]
        if missing:
            raise TargetsError(
                f"the style targets have no Grams for {', '.join(missing)} (they have {', '.join(self.layers)}); {fix}"
            )

    def grams_for(self, style: int) -> list[StyleEntry]:
        """The entries (one per scale) of style image `style`."""
        return [entry for entry in self.entries if entry.style == style]


def model_style_layers(info: ModelInfo) -> tuple[str, ...]:
    """The style layers (relu1_1 ... relu5_1) that a model outputs, in network order."""
    return tuple(name for name in info.layers if name in STYLE_LAYERS)


def _metadata(targets: StyleTargets) -> dict:
    return {
        "weights_sha256": targets.weights_sha256,
        "architecture": targets.architecture,
        "pooling": targets.pooling,
        "layers": list(targets.layers),
        "gram_normalization": targets.gram_normalization,
        "size": targets.size,
        "width": targets.width,
        "scales": list(targets.scales),
        "sources": [{"name": s.name, "sha256": s.sha256} for s in targets.sources],
        "entries": [
            {"key": f"entry{i}", "style": e.style, "scale": e.scale, "size": list(e.size)}
            for i, e in enumerate(targets.entries)
        ],
    }


def save_targets(targets: StyleTargets, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write `targets` to `path` atomically (the old file, if any, stays until the new is whole)."""
    arrays: dict[str, np.ndarray] = {}
    for i, entry in enumerate(targets.entries):
        for layer in targets.layers:
            if layer not in entry.grams:
                raise TargetsError(f"style entry {i} has no Gram for {layer}; cannot save incomplete targets")
            arrays[f"entry{i}/{layer}"] = np.ascontiguousarray(entry.grams[layer], dtype=np.float32)
    return write_container(
        path, magic=MAGIC, version=FORMAT_VERSION, meta=_metadata(targets), arrays=arrays, overwrite=overwrite
    )


# How each way a file can be unreadable is said, with {path}, {detail} and {fix}.
_UNREADABLE = {
    "missing": "style-targets file not found: {path}; create it with "
    "`nst precompute-style STYLE... -m MODEL.onnx -o {path}`",
    "not-container": "{path} is not a style-targets file; create one with `nst precompute-style`",
    "no-metadata": "{path} is not a style-targets file (no nst metadata); create one with `nst precompute-style`",
    "pickled": "{path} holds pickled objects, which nst never loads; {fix}",
    "corrupt": "{path} is truncated or corrupt ({detail}); {fix}",
    "version": "{path} has style-targets format {detail}, this nst reads format " + str(FORMAT_VERSION) + "; {fix}",
}


def load_targets(path: str | Path) -> StyleTargets:
    """Read and validate a style-targets file; every problem is a one-line TargetsError."""
    path = Path(path)
    fix = _RECOMPUTE.format(path=path)
    try:
        meta, arrays = read_container(path, magic=MAGIC, version=FORMAT_VERSION)
    except Unreadable as exc:
        raise TargetsError(_UNREADABLE[exc.reason].format(path=path, detail=exc.detail, fix=fix)) from None
    return _targets_from(meta, arrays, path, fix)


def _targets_from(meta: dict, arrays: dict[str, np.ndarray], path: Path, fix: str) -> StyleTargets:
    try:
        layers = tuple(str(name) for name in meta["layers"])
        sources = tuple(StyleSource(name=str(s["name"]), sha256=str(s["sha256"])) for s in meta["sources"])
        entries = []
        for spec in meta["entries"]:
            grams = {}
            for layer in layers:
                key = f"{spec['key']}/{layer}"
                if key not in arrays:
                    raise TargetsError(f"{path} has no Gram for layer {layer} (entry {spec['key']}); {fix}")
                gram = arrays[key]
                if gram.dtype != np.float32 or gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
                    raise TargetsError(
                        f"{path}: Gram {key} is {gram.dtype} {gram.shape}, not a square float32 matrix; {fix}"
                    )
                grams[layer] = gram
            style = int(spec["style"])
            if not 0 <= style < len(sources):
                raise TargetsError(f"{path}: entry {spec['key']} names style {style} of {len(sources)}; {fix}")
            height, width = (int(v) for v in spec["size"])
            entries.append(StyleEntry(style=style, scale=float(spec["scale"]), size=(height, width), grams=grams))
        return StyleTargets(
            weights_sha256=str(meta["weights_sha256"]),
            architecture=str(meta["architecture"]),
            pooling=str(meta["pooling"]),
            layers=layers,
            gram_normalization=str(meta["gram_normalization"]),
            sources=sources,
            entries=tuple(entries),
            size=None if meta.get("size") is None else int(meta["size"]),
            width=None if meta.get("width") is None else int(meta["width"]),
            scales=tuple(float(s) for s in meta.get("scales", (1.0,))),
        )
    except TargetsError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise TargetsError(f"{path}: style-targets metadata is incomplete ({exc!r}); {fix}") from None
