"""Synthetic MatConvNet VGG files: the real file's structure with seeded random weights.

The real `imagenet-vgg-verydeep-19.mat` is 510 MB and cannot be fetched in tests; these
files copy its structure (docs/MATFORMAT.md: field order, nesting, dtypes, bias and
averageImage shapes) so that code reading them reads the real file too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from nst.models.layers import layer_table

MEAN_PIXEL = (123.68, 116.779, 103.939)

# (name, kernel shape) of the classifier layers; a style-transfer reader skips them.
_FC_LAYERS = (("fc6", (7, 7, 512, 4096)), ("fc7", (1, 1, 4096, 4096)), ("fc8", (1, 1, 4096, 1000)))


def _record(fields: list[tuple[str, object]]) -> np.ndarray:
    """A (1, 1) MATLAB struct with fields in the given order."""
    rec = np.empty((1, 1), dtype=[(name, object) for name, _ in fields])
    for name, value in fields:
        rec[0, 0][name] = value
    return rec


def _cell(*items: object) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def _empty_cell() -> np.ndarray:
    return np.empty((0, 0), dtype=object)


def random_conv(rng: np.random.Generator, kh: int, kw: int, cin: int, cout: int):
    """He-initialised (kh, kw, in, out) kernel and small biases, so activations stay O(1)."""
    std = np.sqrt(2.0 / (kh * kw * cin))
    kernel = (rng.standard_normal((kh, kw, cin, cout), dtype=np.float32) * std).astype(np.float32)
    bias = (rng.standard_normal(cout, dtype=np.float32) * 0.01).astype(np.float32)
    return kernel, bias


def write_synthetic_mat(
    path: str | Path,
    arch: str = "vgg19",
    version: Literal["old", "new"] = "new",
    seed: int = 0,
    fc: Literal["none", "small", "full"] = "small",
    scales: dict[str, float] | None = None,
    mean_pixel: tuple[float, float, float] = MEAN_PIXEL,
) -> Path:
    """Write a random-weight MatConvNet VGG file with the real structure; return its path.

    `fc`: "full" writes the classifier with its real shapes (~500 MB for VGG-19), "small"
    keeps the fc records but with tiny kernels (readers skip them), "none" leaves them out.
    `scales`: conv name -> s_k; layer k's kernel is multiplied by s_k and its bias by
    s_1 * ... * s_k, so that every activation after it scales by that product (ReLU and max
    pooling commute with positive scales): the same network, at other activation scales.
    `mean_pixel`: the RGB mean stored in the file (another network's, for parity tests).
    """
    rng = np.random.default_rng(seed)
    layers: list[np.ndarray] = []
    product = 1.0
    for layer in layer_table(arch):
        if layer.kind == "conv":
            kernel, bias = random_conv(rng, 3, 3, layer.in_channels, layer.out_channels)
            if scales:
                product *= scales.get(layer.name, 1.0)
                kernel = (kernel * np.float32(scales.get(layer.name, 1.0))).astype(np.float32)
                bias = (bias * np.float32(product)).astype(np.float32)
            layers.append(_conv_record(layer.name, kernel, bias, pad=1, version=version))
        elif layer.kind == "relu":
            layers.append(_relu_record(layer.name, version))
        else:
            layers.append(_pool_record(layer.name, version))
    if fc != "none":
        for i, (name, shape) in enumerate(_FC_LAYERS):
            if fc == "small":
                shape = (1, 1, 2, 2)
            kernel = np.zeros(shape, dtype=np.float32)
            bias = np.zeros(shape[3], dtype=np.float32)
            layers.append(_conv_record(name, kernel, bias, pad=0, version=version))
            if i < 2:
                layers.append(_relu_record(f"relu{6 + i}", version))
        layers.append(_softmax_record(version))

    cells = np.empty((1, len(layers)), dtype=object)
    for i, rec in enumerate(layers):
        cells[0, i] = rec

    variables = _file_variables(cells, version, mean_pixel)

    import scipy.io

    path = Path(path)
    scipy.io.savemat(str(path), variables, do_compression=False, oned_as="row")
    return path


def _file_variables(cells: np.ndarray, version: str, mean_pixel: tuple[float, float, float]) -> dict:
    """The .mat's top-level variables around the layer `cells`: the normalization (the mean
    pixel) and classes, where each MatConvNet version keeps them."""
    classes = _record([("name", _class_cell("n")), ("description", _class_cell("class "))])
    if version == "old":
        average = np.tile(np.array(mean_pixel, dtype=np.float64), (224, 224, 1))  # (224, 224, 3)
        normalization = _record(
            [
                ("averageImage", average),
                ("keepAspect", np.array([[1]], dtype=np.uint8)),
                ("border", np.array([[32.0, 32.0]])),
                ("imageSize", np.array([[224.0, 224.0, 3.0]])),
                ("interpolation", "bilinear"),
            ]
        )
        return {"layers": cells, "classes": classes, "normalization": normalization}
    average = np.array(mean_pixel, dtype=np.float64).reshape(1, 1, 3)
    normalization = _record(
        [
            ("imageSize", np.array([[224, 224, 3, 10]], dtype=np.uint16)),
            ("keepAspect", np.array([[1]], dtype=np.uint8)),
            ("averageImage", average),
            ("border", np.array([[32, 32]], dtype=np.uint8)),
            ("cropSize", np.array([[0.875]])),
            ("interpolation", "bilinear"),
        ]
    )
    meta = _record([("inputs", _empty_cell()), ("classes", classes), ("normalization", normalization)])
    return {"layers": cells, "meta": meta}


def _class_cell(prefix: str, count: int = 1000) -> np.ndarray:
    return _cell(*[f"{prefix}{i:08d}" for i in range(count)])


def _conv_record(name: str, kernel: np.ndarray, bias: np.ndarray, pad: int, version: str):
    kh, kw, cin, cout = kernel.shape
    if version == "old":
        return _record(
            [
                ("weights", _cell(kernel, bias.reshape(1, -1))),  # bias (1, out)
                ("pad", np.full((1, 4), float(pad))),
                ("type", "conv"),
                ("name", name),
                ("stride", np.array([[1.0, 1.0]])),
            ]
        )
    # MATLAB stores whole-number doubles compactly: size/pad/stride load as uint8/uint16.
    return _record(
        [
            ("name", name),
            ("type", "conv"),
            ("weights", _cell(kernel, bias.reshape(-1, 1))),  # bias (out, 1)
            ("size", np.array([[kh, kw, cin, cout]], dtype=np.uint16)),
            ("pad", np.full((1, 4), pad, dtype=np.uint8)),
            ("stride", np.array([[1, 1]], dtype=np.uint8)),
            ("precious", np.array([[0]], dtype=np.uint8)),
            ("dilate", np.array([[1]], dtype=np.uint8)),
            ("opts", _empty_cell()),
        ]
    )


def _relu_record(name: str, version: str):
    if version == "old":
        return _record([("type", "relu"), ("name", name)])
    return _record(
        [
            ("name", name),
            ("type", "relu"),
            ("leak", np.array([[0]], dtype=np.uint8)),
            ("weights", _empty_cell()),
            ("precious", np.array([[0]], dtype=np.uint8)),
        ]
    )


def _pool_record(name: str, version: str):
    if version == "old":
        return _record(
            [
                ("name", name),
                ("stride", np.array([[2.0, 2.0]])),
                ("pad", np.zeros((1, 4))),
                ("type", "pool"),
                ("method", "max"),
                ("pool", np.array([[2.0, 2.0]])),
            ]
        )
    return _record(
        [
            ("name", name),
            ("type", "pool"),
            ("method", "max"),
            ("pool", np.array([[2, 2]], dtype=np.uint8)),
            ("stride", np.array([[2, 2]], dtype=np.uint8)),
            ("pad", np.array([[0, 1, 0, 1]], dtype=np.uint8)),
            ("weights", _empty_cell()),
            ("precious", np.array([[0]], dtype=np.uint8)),
            ("opts", _empty_cell()),
        ]
    )


def _softmax_record(version: str):
    if version == "old":
        return _record([("type", "softmax"), ("name", "prob")])
    return _record(
        [
            ("name", "prob"),
            ("type", "softmax"),
            ("weights", _empty_cell()),
            ("precious", np.array([[0]], dtype=np.uint8)),
        ]
    )
