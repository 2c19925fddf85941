"""An independent numpy forward pass for parity tests: explicit correlation, read straight
from the raw `.mat` structure with scipy (not through nst's reader)."""

from __future__ import annotations

import numpy as np
import scipy.io


def raw_convs(mat_path, swap: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (kernel (kh, kw, in, out) as MatConvNet stores it, flat bias)."""
    data = scipy.io.loadmat(str(mat_path))
    convs = {}
    for cell in data["layers"][0]:
        rec = cell[0][0]
        name = str(rec["name"][0])
        if str(rec["type"][0]) == "conv" and name.startswith("conv"):
            kernel = rec["weights"][0][0]
            convs[name] = (kernel.transpose(1, 0, 2, 3) if swap else kernel, rec["weights"][0][1].reshape(-1))
    return convs


def conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """out[n, o, y, x] = b[o] + sum_{i, dy, dx} K[dy, dx, i, o] * pad(x)[n, i, y + dy, x + dx]."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))).astype(np.float64)
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # (N, C, H, W, 3, 3)
    return np.einsum("nchwij,ijco->nohw", win, kernel.astype(np.float64), optimize=True) + bias[None, :, None, None]


def pool2x2(x: np.ndarray, method: str) -> np.ndarray:
    """2x2/2 pooling with ceil(h/2) outputs; a partial window uses only its real pixels."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, (h + 1) // 2, (w + 1) // 2))
    for oy in range(out.shape[2]):
        for ox in range(out.shape[3]):
            window = x[:, :, 2 * oy : 2 * oy + 2, 2 * ox : 2 * ox + 2]
            out[:, :, oy, ox] = window.max(axis=(2, 3)) if method == "max" else window.mean(axis=(2, 3))
    return out


def forward(image: np.ndarray, convs, mean_pixel, layer_names, wanted, pooling: str = "max") -> dict:
    """Features at `wanted` layers of a VGG whose layer order is `layer_names`."""
    x = image.astype(np.float64) - np.asarray(mean_pixel, dtype=np.float64).reshape(1, 3, 1, 1)
    out = {}
    for name in layer_names:
        if name.startswith("conv"):
            x = conv3x3(x, *convs[name])
        elif name.startswith("relu"):
            x = np.maximum(x, 0)
        else:
            x = pool2x2(x, pooling)
        if name in wanted:
            out[name] = x
        if len(out) == len(wanted):
            break
    return out


def gram(features: np.ndarray) -> np.ndarray:
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(0, 2, 1) / (c * h * w)


def max_rel_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max |e|: relative to the tensor's scale, so near-zero entries don't dominate."""
    return float(np.abs(np.asarray(actual, np.float64) - expected).max() / max(np.abs(expected).max(), 1e-12))
