"""Reader for MatConvNet's `imagenet-vgg-verydeep-{16,19}.mat` (both published versions).

Layers and normalization fields are found by their names, never by position: see
docs/MATFORMAT.md for the structure this reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nst.errors import WeightsError
from nst.fileio import file_sha256
from nst.models.layers import ARCHITECTURES, conv_layers
from nst.models.weights import VGGWeights

# MatConvNet kernels are (H, W, in, out); PyTorch wants (out, in, H, W).
MATCONVNET_TO_TORCH = (3, 2, 0, 1)
# anishathalye/neural-style reads them as (W, H, in, out); its spatially transposed filters
# are offered only as an explicit compatibility switch (see its issue #180).
MATCONVNET_TO_TORCH_SWAPPED = (3, 2, 1, 0)


def _text(value: Any) -> str:
    """A MATLAB char array as loadmat returns it (array(['conv1_1'], dtype='<U7')) -> str."""
    arr = np.asarray(value)
    if arr.dtype.kind == "U" and arr.size:
        return str(arr.reshape(-1)[0])
    if arr.dtype == object and arr.size:
        return _text(arr.reshape(-1)[0])
    return ""


def _struct(value: Any) -> np.void | None:
    """Unwrap loadmat's (1, 1) struct arrays (and cells holding one) to a structured record."""
    while isinstance(value, np.ndarray):
        if value.dtype.names is not None:
            return value.reshape(-1)[0] if value.size else None
        if value.dtype != object or value.size != 1:
            return None
        value = value.reshape(-1)[0]
    return value if isinstance(value, np.void) and value.dtype.names else None


def _field(record: np.void, name: str) -> Any:
    return record[name] if name in (record.dtype.names or ()) else None


def _load(path: Path) -> dict[str, Any]:
    import scipy.io

    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        return scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError... for bad files
        raise WeightsError(
            f"cannot read {path} as a MatConvNet .mat file (not a .mat, or truncated: {exc}); "
            "download it again or pass the right file"
        ) from None


def _layer_records(data: dict[str, Any], path: Path) -> dict[str, np.void]:
    layers = data.get("layers")
    if layers is None:
        raise WeightsError(
            f"{path} has no 'layers' variable, so it is not a MatConvNet network file "
            f"(variables found: {', '.join(k for k in data if not k.startswith('__')) or 'none'})"
        )
    records: dict[str, np.void] = {}
    for cell in np.asarray(layers, dtype=object).reshape(-1):
        record = _struct(cell)
        if record is None:
            continue
        name = _text(_field(record, "name"))
        if name:
            records[name] = record
    if not records:
        raise WeightsError(f"{path}: 'layers' holds no named layer records")
    return records


def _detect_architecture(records: dict[str, np.void], path: Path) -> str:
    found = {name for name, rec in records.items() if _text(_field(rec, "type")) == "conv"}
    for arch in ARCHITECTURES:
        expected = {layer.name for layer in conv_layers(arch)}
        if expected <= found and not {n for n in found if n.startswith("conv")} - expected:
            return arch
    convs = sorted(n for n in found if n.startswith("conv"))
    raise WeightsError(
        f"{path}: unknown architecture; its conv layers are {', '.join(convs) or 'none'}, "
        f"which match neither {' nor '.join(ARCHITECTURES)}"
    )


def _mean_pixel(data: dict[str, Any], path: Path) -> np.ndarray:
    normalization = _struct(data.get("normalization"))  # old (2015) version
    if normalization is None:
        meta = _struct(data.get("meta"))  # new (2016) version
        normalization = _struct(_field(meta, "normalization")) if meta is not None else None
    average = _field(normalization, "averageImage") if normalization is not None else None
    average = np.asarray(average) if average is not None else np.empty(0)
    if average.size < 3 or average.shape[-1] != 3 or not np.issubdtype(average.dtype, np.number):
        raise WeightsError(f"{path}: no mean pixel (normalization.averageImage of shape (..., 3) is missing)")
    # Old version: a (224, 224, 3) image constant per channel; new: (1, 1, 3).
    return average.reshape(-1, 3).mean(axis=0).astype(np.float32)


def _conv_weights(record: np.void, name: str, in_ch: int, out_ch: int, order: tuple, path: Path):
    cell = _field(record, "weights")
    cell = np.asarray(cell, dtype=object).reshape(-1) if cell is not None else np.empty(0)
    if cell.size != 2:
        raise WeightsError(f"{path}: layer {name} has no (kernel, bias) weights cell")
    kernel = np.asarray(cell[0])
    bias = np.asarray(cell[1])
    expected_kernel = (3, 3, in_ch, out_ch)
    if kernel.shape != expected_kernel:
        raise WeightsError(f"{path}: layer {name} kernel has shape {kernel.shape}, expected {expected_kernel}")
    # Old version stores the bias as (1, out), new as (out, 1).
    if bias.size != out_ch or bias.ndim > 2 or (bias.ndim == 2 and 1 not in bias.shape):
        raise WeightsError(
            f"{path}: layer {name} bias has shape {bias.shape}, expected ({out_ch},) as (1, {out_ch}) or ({out_ch}, 1)"
        )
    kernel = np.ascontiguousarray(kernel.transpose(order), dtype=np.float32)  # (out, in, 3, 3)
    return kernel, np.ascontiguousarray(bias.reshape(-1), dtype=np.float32)


def read_matconvnet(path: str | Path, *, swap_kernel_axes: bool = False, sha256: str | None = None) -> VGGWeights:
    """Read a MatConvNet VGG-16/19 `.mat` file into `VGGWeights` (fc and softmax skipped).

    `swap_kernel_axes=True` reproduces anishathalye/neural-style, which swaps the kernels'
    two spatial axes; the default keeps MatConvNet's (H, W) order (docs/MATFORMAT.md).
    `sha256`: the file's hash when the caller already knows it (the cache does), to save
    reading 510 MB again.
    """
    path = Path(path)
    data = _load(path)
    records = _layer_records(data, path)
    arch = _detect_architecture(records, path)
    order = MATCONVNET_TO_TORCH_SWAPPED if swap_kernel_axes else MATCONVNET_TO_TORCH
    convs = {
        layer.name: _conv_weights(records[layer.name], layer.name, layer.in_channels, layer.out_channels, order, path)
        for layer in conv_layers(arch)
    }
    return VGGWeights(
        architecture=arch,
        convs=convs,
        mean_pixel=_mean_pixel(data, path),
        source_sha256=sha256 or file_sha256(path),
        kernel_axes="wh" if swap_kernel_axes else "hw",
    )
