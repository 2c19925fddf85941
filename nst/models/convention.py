"""Input conventions of VGG weight files, and folding one into conv1_1 so that every export
takes the ONNX contract's input: RGB 0-255, the mean pixel subtracted inside the graph.

A network trained on `x_c = (p_c - mean_c) / std_c`, where `p` holds its own channel order
and pixel range (white = 1 or 255), computes conv1_1 on `s_c * (rgb[order_c] - m[order_c])`
with `s_c = white / (255 * std_c)` and `m[order_c] = 255 * mean_c / white`. So conv1_1's input
channel c is multiplied by s_c and moved to RGB position order_c, and `m` is the mean pixel;
the bias is unchanged (the affine map's offset is all in the mean) and so is zero padding,
since 0 in `x` is the mean pixel in both spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # numpy loads when a convention is folded, not at `nst --help`
    import numpy as np

WeightsLayout = Literal["torchvision", "caffe"]
# What `--weights-layout` accepts: auto detects (known hashes, keys, ONNX preprocessing).
LayoutChoice = Literal["auto", "torchvision", "caffe"]
LAYOUTS: tuple[str, ...] = ("torchvision", "caffe")


@dataclass(frozen=True)
class InputConvention:
    """What conv1_1 of a weights file expects: `(p - mean) / std` per channel, `p` in `order`
    and scaled so that white is `white`; `mean` and `std` are in that order and scale."""

    name: str  # torchvision | caffe | matconvnet | onnx (a graph's own preprocessing)
    order: Literal["rgb", "bgr"]
    white: float  # 1.0 or 255.0
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def describe(self) -> str:
        """'RGB 0-1, (x - mean) / std', for messages."""
        scaled = "" if self.std == (1.0, 1.0, 1.0) else " / std"
        return f"{self.order.upper()} 0-{self.white:g}, (x - mean){scaled}"


# torchvision's ImageNet normalization (torchvision.transforms.Normalize in its model docs).
TORCHVISION = InputConvention("torchvision", "rgb", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# The Caffe models' mean pixel, in their BGR order (jcjohnson/pytorch-vgg's README).
CAFFE = InputConvention("caffe", "bgr", 255.0, (103.939, 116.779, 123.68))
CONVENTIONS: dict[str, InputConvention] = {"torchvision": TORCHVISION, "caffe": CAFFE}


def fold_convention(kernel: np.ndarray, convention: InputConvention) -> tuple[np.ndarray, np.ndarray]:
    """conv1_1's (out, 3, kh, kw) kernel for the contract's RGB 0-255 input, and the (3,) RGB
    mean pixel that the graph subtracts (module docstring)."""
    import numpy as np

    if kernel.ndim != 4 or kernel.shape[1] != 3:
        raise ValueError(f"conv1_1 kernel must be (out, 3, kh, kw), not {kernel.shape}")
    std = np.asarray(convention.std, dtype=np.float64)
    mean = np.asarray(convention.mean, dtype=np.float64)
    scale = convention.white / (255.0 * std)  # s_c, per source channel
    folded = kernel.astype(np.float64) * scale[None, :, None, None]
    pixel = 255.0 * mean / convention.white  # m, per source channel
    if convention.order == "bgr":  # source channel c reads RGB channel 2 - c
        folded, pixel = folded[:, ::-1], pixel[::-1]
    return np.ascontiguousarray(folded, dtype=np.float32), pixel.astype(np.float32)
