"""Every weights format nst reads, to one `VGGWeights`: the reader by file type, the input
convention detected (or given), and that convention folded into conv1_1 and the mean pixel.

Detection, in order: `--weights-layout` when given; a known file's hash (the registry);
what the keys or the graph say (jcjohnson/pytorch-vgg's classifier keys; an ONNX graph's
preprocessing). Weight statistics cannot tell torchvision from Caffe: both conv1_1 kernels
hold values of 0.3-0.8 and biases under 1.4 (the published VGG-16s'), since each network
was trained for its own input scale. So where nothing tells, the reader refuses in one
line that names the option, rather than guessing a convention that would silently give
wrong features.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from nst.errors import ConfigError, WeightsError
from nst.fileio import file_sha256
from nst.models import registry
from nst.models.convention import CONVENTIONS, InputConvention, LayoutChoice, fold_convention
from nst.models.matconvnet import read_matconvnet
from nst.models.onnx_classifier import Preprocessing, read_onnx_classifier
from nst.models.pytorch import load_pth
from nst.models.safetensors import load_safetensors
from nst.models.state_dict import read_state_dict
from nst.models.weights import VGGWeights

SUFFIXES: dict[str, str] = {".mat": "mat", ".pth": "pth", ".pt": "pth", ".safetensors": "safetensors", ".onnx": "onnx"}
_OPTION = "--weights-layout torchvision (RGB, normalized by mean and std) or --weights-layout caffe (BGR 0-255)"


def weights_format(path: str | Path) -> str:
    """mat | pth | safetensors | onnx, from the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise WeightsError(f"cannot tell the format of {path}; nst reads {', '.join(SUFFIXES)} weights files")
    return SUFFIXES[suffix]


def read_weights(
    path: str | Path,
    *,
    layout: LayoutChoice = "auto",
    swap_kernel_axes: bool = False,
    sha256: str | None = None,
) -> VGGWeights:
    """Read VGG-16/19 weights of any supported format into `VGGWeights` for the ONNX contract
    (RGB 0-255 in, the mean pixel subtracted in the graph). `layout` overrides detection;
    `sha256` is the file's hash when the caller knows it."""
    path = Path(path)
    fmt = weights_format(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if fmt == "mat":
        if layout != "auto":
            raise ConfigError(
                "--weights-layout is for .pth, .safetensors and .onnx files; a MatConvNet .mat has its own "
                "convention (RGB 0-255 minus its mean pixel)"
            )
        return read_matconvnet(path, swap_kernel_axes=swap_kernel_axes, sha256=sha256)
    if swap_kernel_axes:
        raise ConfigError(
            f"--swap-kernel-axes reproduces neural-style's reading of .mat files; it does not apply to {path.name}"
        )
    digest = sha256 or file_sha256(path)
    if fmt == "onnx":
        graph = read_onnx_classifier(path)
        architecture, convs = graph.architecture, graph.convs
        convention, source = onnx_convention(graph.preprocessing, layout, path)
    else:
        found = read_state_dict(load_pth(path) if fmt == "pth" else load_safetensors(path), path)
        architecture, convs = found.architecture, found.convs
        convention, source = state_dict_convention(digest, found.layout_hint, layout, path)
    known = registry.find_sha256(digest)
    if known is not None and known.architecture != architecture:
        raise WeightsError(f"{path} has the hash of {known.name} ({known.architecture}) but holds {architecture}")
    kernel, bias = convs["conv1_1"]
    folded, mean_pixel = fold_convention(kernel, convention)
    return VGGWeights(
        architecture=architecture,
        convs={**convs, "conv1_1": (folded, bias)},
        mean_pixel=mean_pixel,
        source_sha256=digest,
        file_format=fmt,
        layout=convention.name,
        layout_source=source,
    )


def state_dict_convention(
    digest: str, hint: str | None, layout: LayoutChoice, path: Path
) -> tuple[InputConvention, str]:
    """(convention, how it was known) of a state dict: the option, else its hash, else its keys."""
    if layout != "auto":
        return CONVENTIONS[layout], "option"
    known = registry.find_sha256(digest)
    if known is not None and known.layout in CONVENTIONS:
        return CONVENTIONS[known.layout], "hash"
    if hint is not None:
        return CONVENTIONS[hint], "keys"
    raise WeightsError(
        f"cannot tell whether {path.name} expects torchvision's or Caffe's input (its keys and shapes fit both, "
        f"and its hash is not a known file's); pass {_OPTION}"
    )


def onnx_convention(pre: Preprocessing | None, layout: LayoutChoice, path: Path) -> tuple[InputConvention, str]:
    """(convention, how it was known) of an ONNX classifier. Without preprocessing nodes the
    option names the whole convention; with them, the graph's mean and std are kept and the
    channel order and range come from the option, else from constants that match a known one."""
    if pre is None:
        if layout == "auto":
            raise WeightsError(f"{path.name} has no preprocessing nodes that tell its input convention; pass {_OPTION}")
        return CONVENTIONS[layout], "option"
    if layout != "auto":
        base = CONVENTIONS[layout]
        return InputConvention("onnx", base.order, base.white, pre.mean, pre.std), "option"
    for base in (*CONVENTIONS.values(), _MATCONVNET_RGB):
        atol = 0.01 if base.white == 1.0 else 1.0  # the pixel range's: 1 % of 0-1, 1 level of 0-255
        if np.allclose(pre.mean, base.mean, atol=atol) and np.allclose(pre.std, base.std, rtol=0.05):
            return replace(base, name="onnx", mean=pre.mean, std=pre.std), "preprocessing"
    raise WeightsError(
        f"{path.name} subtracts {_fmt(pre.mean)} and divides by {_fmt(pre.std)} before conv1_1, which is no known "
        f"convention; pass {_OPTION} to say what its input is"
    )


# Caffe's mean in RGB order on RGB 0-255 input (MatConvNet's convention, as some exports keep it).
_MATCONVNET_RGB = InputConvention("matconvnet", "rgb", 255.0, (123.68, 116.779, 103.939))


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
