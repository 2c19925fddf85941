"""Style Grams through the onnxruntime extractor: sizing, batching, and `compute_style_targets`.

Images of equal size share an extractor call; `compute_style_targets` loads and resizes the
next images in worker threads while the extractor runs, and returns a `StyleTargets` that
`nst.runtime.targets` writes to disk. Sizes are (height, width).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from nst.contract import ModelInfo, gram, gram_output, read_model_info
from nst.errors import ConfigError, ImageError, ModelError
from nst.fileio import file_sha256
from nst.models.layers import STYLE_LAYERS
from nst.runtime.config import PrecomputeConfig
from nst.runtime.images import open_image, resized, resized_shape, to_array
from nst.runtime.ort_extractor import OrtExtractor
from nst.runtime.style_size import warn_small_style
from nst.runtime.targets import StyleEntry, StyleSource, StyleTargets, model_style_layers

if TYPE_CHECKING:
    from PIL.Image import Image

# (key, (1, 3, H, W) image) in; (keys, (H, W), one {layer: (C, C)} per key) out.
Item = tuple[int, np.ndarray]


class Extractor(Protocol):
    """What the Gram computation needs: `OrtExtractor` or anything with the same `run`."""

    info: ModelInfo
    output_names: tuple[str, ...]

    def run(self, batch: np.ndarray, outputs: Iterable[str] | None = None) -> dict[str, np.ndarray]: ...


def style_shape(
    image_size: tuple[int, int], scale: float = 1.0, *, size: int | None = None, width: int | None = None
) -> tuple[int, int]:
    """(height, width) of a style image at `scale`: its width scale x `width` (the content's,
    as the reference sizes styles), else its long side scale x `size`, else as it is."""
    return resized_shape(
        image_size, width=scale * width if width is not None else None, long_side=scale * size if size else None
    )


def resized_array(img: Image, shape: tuple[int, int]) -> np.ndarray:
    """PIL RGB image -> float32 (1, 3, H, W) at `shape` (height, width), Lanczos."""

    return to_array(resized(img, shape))  # (1, 3, H, W)


def _grams_of(extractor: Extractor, batch: np.ndarray, layers: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """One extractor call on `batch` (N, 3, H, W) -> per image {layer: (C, C) Gram}."""
    names = [gram_output(name) if gram_output(name) in extractor.output_names else name for name in layers]
    out = extractor.run(batch, names)
    # A model exported --no-grams gives features: the same normalization, here in numpy.
    per_layer = {layer: out[name] if name != layer else gram(out[name]) for layer, name in zip(layers, names)}
    return [
        {layer: np.ascontiguousarray(per_layer[layer][i], dtype=np.float32) for layer in layers}
        for i in range(batch.shape[0])
    ]


def _batched(
    extractor: Extractor,
    items: Iterable[Item],
    layers: Sequence[str],
    batch_size: int,
) -> Iterator[tuple[list[int], tuple[int, int], list[dict[str, np.ndarray]]]]:
    """Group items by shape; run each group as soon as it holds `batch_size` images, and the
    partial groups at the end: the fewest extractor calls. `items` may be produced lazily
    while a batch runs."""
    groups: dict[tuple[int, ...], list[Item]] = {}
    for key, array in items:
        group = groups.setdefault(array.shape, [])
        group.append((key, array))
        if len(group) == batch_size:
            del groups[array.shape]
            yield _run_group(extractor, group, layers)
    for group in groups.values():
        yield _run_group(extractor, group, layers)


def _run_group(extractor: Extractor, group: list[Item], layers: Sequence[str]):
    batch = np.concatenate([array for _, array in group])  # (N, 3, H, W)
    shape = (int(batch.shape[2]), int(batch.shape[3]))
    return [key for key, _ in group], shape, _grams_of(extractor, batch, layers)


def style_grams(
    extractor: Extractor,
    images: Sequence[Image],
    sizes: Sequence[tuple[int, int]] | None = None,
    *,
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
        for key, value in zip(keys, grams):
            result[key] = value
    return result


def _load_style(path: Path, scales: Sequence[float], size: int | None, width: int | None):
    """Read, hash and resize one style image: (source, [(1, 3, H, W) per scale])."""

    img = open_image(path)  # raises ImageError for a missing or broken file
    source = StyleSource(name=path.name, sha256=file_sha256(path))
    hw = (img.height, img.width)
    return source, [resized_array(img, style_shape(hw, scale, size=size, width=width)) for scale in scales]


def _check_float(info: ModelInfo) -> None:
    """An int8 graph's Grams are a few per cent off the network's; stylize would chase them."""
    if info.quantize:
        raise ModelError(
            f"{info.path} is {info.describe()}; style targets need float Grams: export without --quantize "
            "(fp16, static and Grams-only exports work): nst export-vgg WEIGHTS -o M.onnx"
        )


def compute_style_targets(
    model: str | Path | None,
    styles: Sequence[str | Path],
    *,
    config: PrecomputeConfig = PrecomputeConfig(),
    width: int | None = None,
    progress: Callable[[int], None] | None = None,
    threads: int | None = None,
    extractor: Extractor | None = None,
    notify: Callable[[str], None] | None = None,
) -> StyleTargets:
    """Grams of every style image at every scale, computed with onnxruntime in batches.

    Each image is resized so that its long side is scale * config.size, or, when `width` is
    given, its width is scale * width. Images are loaded and resized in worker threads while
    the extractor runs; equal shapes share a call of up to `config.batch_size` images.
    `progress(n)` is called after each call with the number of (image, scale) items it
    finished. `extractor` reuses an open `OrtExtractor` (then `model`, `config.provider`
    and `threads` are not used). `notify(line)` gets the provider fallback notice, if any.
    A static graph computes only styles that resize to its size; an int8 graph is refused.
    """
    style_paths = [Path(p) for p in styles]
    _check_styles(style_paths, width)
    if extractor is None:
        if model is None:
            raise ConfigError("compute_style_targets needs a model path or an open extractor")
        _check_float(read_model_info(model))  # before a session opens
        extractor = OrtExtractor(model, provider=config.provider, threads=threads, notify=notify)
    info = extractor.info
    _check_float(info)
    layers = model_style_layers(info)
    if not layers:
        raise ModelError(f"{info.path} outputs no style layer ({', '.join(STYLE_LAYERS)}); export it with those layers")
    scales = tuple(float(s) for s in config.style_scales)
    loader = _StyleLoader(style_paths, scales, size=config.size or None, width=width, ahead=config.batch_size)
    grams: dict[int, dict[str, np.ndarray]] = {}
    shapes: dict[int, tuple[int, int]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="nst-style") as pool:
        try:
            for keys, shape, results in _batched(extractor, loader.items(pool), layers, config.batch_size):
                grams.update(zip(keys, results))
                shapes.update((key, shape) for key in keys)
                if progress is not None:
                    progress(len(keys))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    n_scales = len(scales)
    entries = tuple(
        StyleEntry(style=key // n_scales, scale=scales[key % n_scales], size=shapes[key], grams=grams[key])
        for key in sorted(grams)
    )
    for entry in entries:
        warn_small_style(loader.sources[entry.style].name, entry.size, entry.scale)  # type: ignore[union-attr]
    return StyleTargets(
        weights_sha256=info.weights_sha256,
        architecture=info.architecture,
        pooling=info.pooling,
        layers=layers,
        gram_normalization=info.gram_normalization,
        sources=tuple(s for s in loader.sources if s is not None),
        entries=entries,
        size=None if width is not None else config.size or None,
        width=width,
        scales=scales,
    )


def _check_styles(paths: Sequence[Path], width: int | None) -> None:
    """Fail early, before the model loads."""
    if not paths:
        raise ConfigError("no style images given; name at least one")
    if width is not None and width < 1:
        raise ConfigError(f"style width must be at least 1 px, not {width}")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ImageError(f"image not found: {missing[0]}")


class _StyleLoader:
    """Style images read, hashed and resized in worker threads a few images ahead of the
    extractor (not all of them in memory at once); `sources` fills in as they load."""

    def __init__(
        self, paths: Sequence[Path], scales: tuple[float, ...], *, size: int | None, width: int | None, ahead: int
    ):
        self.paths, self.scales, self.size, self.width = paths, scales, size, width
        self.ahead = max(2, ahead)
        self.sources: list[StyleSource | None] = [None] * len(paths)

    def items(self, pool: concurrent.futures.Executor) -> Iterator[Item]:
        """(i * n_scales + k, image i at scale k as (1, 3, H, W)), in order."""

        def submit(i: int) -> concurrent.futures.Future:
            return pool.submit(_load_style, self.paths[i], self.scales, self.size, self.width)

        futures = {i: submit(i) for i in range(min(self.ahead, len(self.paths)))}
        for i in range(len(self.paths)):
            source, arrays = futures.pop(i).result()
            if i + self.ahead < len(self.paths):
                futures[i + self.ahead] = submit(i + self.ahead)
            self.sources[i] = source
            for k, array in enumerate(arrays):
                yield i * len(self.scales) + k, array
