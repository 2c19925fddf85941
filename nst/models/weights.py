"""`VGGWeights`: one in-memory form of a VGG network's convolution weights, whatever the file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VGGWeights:
    """The convolutions of a VGG network, ready for export.

    `convs` maps conv names, in network order, to (kernel, bias): kernel is PyTorch's
    (out, in, kh, kw) float32, bias is flat (out,) float32. `mean_pixel` is the RGB mean the
    network was trained with, subtracted from 0-255 pixels before conv1_1 (a file of another
    input convention has it folded into conv1_1 and the mean: `nst.models.convention`).
    `file_format`, `layout` and `layout_source` say what was read and how its input
    convention was known, so later steps can tell these weights apart.
    """

    architecture: str
    convs: dict[str, tuple[np.ndarray, np.ndarray]]
    mean_pixel: np.ndarray  # (3,) float32, RGB
    source_sha256: str = ""
    kernel_axes: str = "hw"  # "hw": MatConvNet's (H, W) kept; "wh": spatially swapped (reference compat)
    file_format: str = "mat"  # mat | pth | safetensors | onnx
    layout: str = "matconvnet"  # matconvnet | torchvision | caffe | onnx (a classifier's own preprocessing)
    layout_source: str = "format"  # how the layout was known: format | hash | keys | preprocessing | option
