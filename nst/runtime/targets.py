"""The style-targets file (Contract 2 of DESIGN.md): Gram matrices computed once, reused.

`compute_style_targets` runs style images (at one or more scales) through the onnxruntime
extractor in batches; `save_targets` / `load_targets` write and read the file; stylize calls
`StyleTargets.check_model` before it uses one. `style_grams(extractor, images, sizes)` gives
the Grams of in-memory PIL images at given (height, width) sizes, for callers that have the
images already (stylize's multi-scale styles); `style_shape` computes those sizes the way
precompute does.

The file is an uncompressed `.npz` (a zip of `.npy` arrays, read with `allow_pickle=False`):
`metadata` holds UTF-8 JSON (magic, format version, model hash, layers, sizes, sources,
entries), and `entry<i>/<layer>` holds entry i's (C, C) float32 Gram of that layer.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from nst.errors import ConfigError, ImageError, ModelError, TargetsError
from nst.fileio import atomic_path
from nst.models.layers import STYLE_LAYERS

MAGIC = "nst.style-targets"
FORMAT_VERSION = 1
_METADATA_KEY = "metadata"
_ZIP_MAGIC = b"PK\x03\x04"
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

    def check_model(self, info, layers: Iterable[str] | None = None) -> None:
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
                f"the style targets have no Grams for {', '.join(missing)} "
                f"(they have {', '.join(self.layers)}); {fix}"
            )

    def grams_for(self, style: int) -> list[StyleEntry]:
        """The entries (one per scale) of style image `style`."""
        return [entry for entry in self.entries if entry.style == style]


class Extractor(Protocol):
    """What `style_grams` needs: `OrtExtractor` or anything with the same `run`."""

    info: object
    output_names: tuple[str, ...]

    def run(self, batch: np.ndarray, outputs: Iterable[str] | None = None) -> dict[str, np.ndarray]: ...


def model_style_layers(info) -> tuple[str, ...]:
    """The style layers (relu1_1 ... relu5_1) that a model (`ModelInfo`) outputs, in network order."""
    return tuple(name for name in info.layers if name in STYLE_LAYERS)


def style_shape(image_size: tuple[int, int], scale: float = 1.0, size: int | None = None,
                width: int | None = None) -> tuple[int, int]:
    """(height, width) of a style image of PIL size (w, h) once resized: its width to
    scale*width when `width` is given (the reference sizes styles relative to the content's
    width), else its long side to scale*size. Matches `nst.runtime.images.resize`."""
    w, h = image_size
    if width is not None:
        factor = round(scale * width) / w
    elif size is not None:
        factor = round(scale * size) / max(w, h)
    else:
        factor = 1.0
    return max(1, round(h * factor)), max(1, round(w * factor))


def resized_array(img, shape: tuple[int, int]) -> np.ndarray:
    """PIL RGB image -> float32 (1, 3, H, W) at `shape` (height, width), Lanczos."""
    from PIL import Image

    from nst.runtime.images import to_array

    if (img.height, img.width) != shape:
        img = img.resize((shape[1], shape[0]), Image.Resampling.LANCZOS)
    return to_array(img)  # (1, 3, H, W)


def _grams_of(extractor: Extractor, batch: np.ndarray, layers: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """One extractor call on `batch` (N, 3, H, W) -> per image {layer: (C, C) Gram}."""
    names = [f"gram_{name}" if f"gram_{name}" in extractor.output_names else name for name in layers]
    out = extractor.run(batch, names)
    per_layer = {}
    for layer, name in zip(layers, names):
        if name == layer:  # a model exported --no-grams: same normalization, here in numpy
            n, c, h, w = out[name].shape
            flat = out[name].reshape(n, c, h * w)  # (N, C, HW)
            per_layer[layer] = (flat @ flat.transpose(0, 2, 1)) / np.float32(c * h * w)  # (N, C, C)
        else:
            per_layer[layer] = out[name]  # (N, C, C)
    return [
        {layer: np.ascontiguousarray(per_layer[layer][i], dtype=np.float32) for layer in layers}
        for i in range(batch.shape[0])
    ]


def _batched(
    extractor: Extractor,
    items: Iterable[tuple[int, np.ndarray]],
    layers: Sequence[str],
    batch_size: int,
) -> Iterator[tuple[list[int], tuple[int, int], list[dict[str, np.ndarray]]]]:
    """Group (key, (1, 3, H, W) array) items by shape; run each group as soon as it holds
    `batch_size` images, and the partial groups at the end: the fewest extractor calls.
    Yields (keys, (H, W), Grams) per call. `items` may be produced lazily while a batch runs."""
    groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    for key, array in items:
        group = groups.setdefault(array.shape, [])
        group.append((key, array))
        if len(group) == batch_size:
            del groups[array.shape]
            yield _run_group(extractor, group, layers)
    for group in groups.values():
        yield _run_group(extractor, group, layers)


def _run_group(extractor: Extractor, group: list[tuple[int, np.ndarray]], layers: Sequence[str]):
    batch = np.concatenate([array for _, array in group])  # (N, 3, H, W)
    shape = (int(batch.shape[2]), int(batch.shape[3]))
    return [key for key, _ in group], shape, _grams_of(extractor, batch, layers)


def style_grams(
    extractor: Extractor,
    images: Sequence,
    sizes: Sequence[tuple[int, int]] | None = None,
    layers: Sequence[str] | None = None,
    batch_size: int = 8,
) -> list[dict[str, np.ndarray]]:
    """Grams of PIL RGB `images`, each resized to its (height, width) in `sizes` (default:
    as they are), at `layers` (default: the extractor's style layers). One dict
    {layer: (C, C) float32} per image, in order; images of equal size share a batch."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, not {batch_size}")
    sizes = list(sizes) if sizes is not None else [(img.height, img.width) for img in images]
    if len(sizes) != len(images):
        raise ConfigError(f"{len(images)} images but {len(sizes)} sizes")
    layers = tuple(layers) if layers is not None else model_style_layers(extractor.info)
    result: list[dict[str, np.ndarray]] = [{} for _ in images]
    items = ((i, resized_array(img, shape)) for i, (img, shape) in enumerate(zip(images, sizes)))
    for keys, _, grams in _batched(extractor, items, layers, batch_size):
        for key, gram in zip(keys, grams):
            result[key] = gram
    return result


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_style(path: Path, scales: Sequence[float], size: int | None, width: int | None):
    """Read, hash and resize one style image: (source, [(1, 3, H, W) per scale])."""
    from nst.runtime.images import open_image

    img = open_image(path)  # raises ImageError for a missing or broken file
    source = StyleSource(name=path.name, sha256=file_sha256(path))
    return source, [resized_array(img, style_shape(img.size, scale, size, width)) for scale in scales]


def compute_style_targets(
    model_path: str | Path,
    style_paths: Sequence[str | Path],
    size: int | None = 512,
    scales: Sequence[float] = (1.0,),
    batch_size: int = 8,
    provider: str = "auto",
    progress: Callable[[int], None] | None = None,
    width: int | None = None,
    threads: int | None = None,
    extractor: Extractor | None = None,
) -> StyleTargets:
    """Grams of every style image at every scale, computed with onnxruntime in batches.

    Each image is resized so that its long side is scale*size, or, when `width` is given,
    its width is scale*width. Images are loaded and resized in worker threads while the
    extractor runs; equal shapes share a call of up to `batch_size` images. `progress(n)` is
    called after each call with the number of (image, scale) items it finished; there are
    len(style_paths) * len(scales) in all. `extractor` reuses an open `OrtExtractor`
    (then `model_path`, `provider` and `threads` are ignored).
    """
    from nst.runtime.ort_extractor import OrtExtractor

    style_paths = [Path(p) for p in style_paths]
    scales = tuple(float(s) for s in scales)
    if not style_paths:
        raise ConfigError("no style images given; name at least one")
    if not scales or any(not math.isfinite(s) or s <= 0 for s in scales):
        raise ConfigError(f"style scales must be positive numbers, not {','.join(map(str, scales)) or 'none'}")
    if width is None and (size is None or size < 1):
        raise ConfigError(f"style size must be at least 1 px, not {size}")
    if width is not None and width < 1:
        raise ConfigError(f"style width must be at least 1 px, not {width}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, not {batch_size}")

    missing = [p for p in style_paths if not p.is_file()]
    if missing:  # before the model loads: fail early
        raise ImageError(f"image not found: {missing[0]}")

    if extractor is None:
        extractor = OrtExtractor(model_path, provider=provider, threads=threads)
    info = extractor.info
    layers = model_style_layers(info)
    if not layers:
        raise ModelError(
            f"{info.path} outputs no style layer ({', '.join(STYLE_LAYERS)}); export it with those layers"
        )

    sources: list[StyleSource | None] = [None] * len(style_paths)
    n_scales = len(scales)

    def items(pool: concurrent.futures.Executor) -> Iterator[tuple[int, np.ndarray]]:
        # Keep a few images ahead of the extractor, not all of them in memory at once.
        ahead = max(2, batch_size)
        futures: dict[int, concurrent.futures.Future] = {}
        for i in range(min(ahead, len(style_paths))):
            futures[i] = pool.submit(_load_style, style_paths[i], scales, size, width)
        for i in range(len(style_paths)):
            source, arrays = futures.pop(i).result()
            if i + ahead < len(style_paths):
                futures[i + ahead] = pool.submit(_load_style, style_paths[i + ahead], scales, size, width)
            sources[i] = source
            for k, array in enumerate(arrays):
                yield i * n_scales + k, array

    grams: dict[int, dict[str, np.ndarray]] = {}
    shapes: dict[int, tuple[int, int]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="nst-style") as pool:
        try:
            for keys, shape, results in _batched(extractor, items(pool), layers, batch_size):
                grams.update(zip(keys, results))
                shapes.update((key, shape) for key in keys)
                if progress is not None:
                    progress(len(keys))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    entries = tuple(
        StyleEntry(style=key // n_scales, scale=scales[key % n_scales], size=shapes[key], grams=grams[key])
        for key in sorted(grams)
    )
    return StyleTargets(
        weights_sha256=info.weights_sha256,
        architecture=info.architecture,
        pooling=info.pooling,
        layers=layers,
        gram_normalization=info.gram_normalization,
        sources=tuple(s for s in sources if s is not None),
        entries=entries,
        size=None if width is not None else size,
        width=width,
        scales=scales,
    )


# ---------------------------------------------------------------------------- the file


def _metadata(targets: StyleTargets) -> dict:
    return {
        "magic": MAGIC,
        "format": FORMAT_VERSION,
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


def save_targets(targets: StyleTargets, path: str | Path, overwrite: bool = False) -> Path:
    """Write `targets` to `path` atomically (the old file, if any, stays until the new is whole)."""
    arrays: dict[str, np.ndarray] = {
        _METADATA_KEY: np.frombuffer(json.dumps(_metadata(targets)).encode("utf-8"), dtype=np.uint8)
    }
    for i, entry in enumerate(targets.entries):
        for layer in targets.layers:
            if layer not in entry.grams:
                raise TargetsError(f"style entry {i} has no Gram for {layer}; cannot save incomplete targets")
            arrays[f"entry{i}/{layer}"] = np.ascontiguousarray(entry.grams[layer], dtype=np.float32)
    with atomic_path(path, overwrite=overwrite) as tmp:
        # An open file, so that numpy does not append `.npz` to the name.
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return Path(path)


def load_targets(path: str | Path) -> StyleTargets:
    """Read and validate a style-targets file; every problem is a one-line TargetsError."""
    path = Path(path)
    fix = _RECOMPUTE.format(path=path)
    if not path.is_file():
        raise TargetsError(f"style-targets file not found: {path}; create it with `nst precompute-style STYLE... -m MODEL.onnx -o {path}`")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        raise TargetsError(f"{path} is not a style-targets file; create one with `nst precompute-style`")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _METADATA_KEY not in npz.files:
                raise TargetsError(f"{path} is not a style-targets file (no nst metadata); create one with `nst precompute-style`")
            meta = _parse_metadata(npz[_METADATA_KEY], path, fix)
            arrays = {name: npz[name] for name in npz.files if name != _METADATA_KEY}
    except TargetsError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise TargetsError(f"{path} holds pickled objects, which nst never loads; {fix}") from None
        raise TargetsError(f"{path} is truncated or corrupt ({_short(exc)}); {fix}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise TargetsError(f"{path} is truncated or corrupt ({_short(exc)}); {fix}") from None
    return _targets_from(meta, arrays, path, fix)


def _short(exc: Exception) -> str:
    """An exception's text as a short single line, to quote inside a one-line error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_metadata(raw: np.ndarray, path: Path, fix: str) -> dict:
    try:
        meta = json.loads(raw.tobytes().decode("utf-8")) if raw.dtype == np.uint8 else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("magic") != MAGIC:
        raise TargetsError(f"{path} is not a style-targets file (no nst metadata); create one with `nst precompute-style`")
    if meta.get("format") != FORMAT_VERSION:
        raise TargetsError(
            f"{path} has style-targets format {meta.get('format')}, this nst reads format {FORMAT_VERSION}; {fix}"
        )
    return meta


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
