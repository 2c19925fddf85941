"""Reader for VGG classifiers saved as ONNX (the ONNX Model Zoo's vgg16/vgg19 and the like): the
3x3 convolutions' initializers in graph order, and the graph's own preprocessing, if any.

Preprocessing is the chain of Sub/Add/Mul/Div nodes with constant operands between the image
input and the first Conv; it folds into one per-channel `(x - mean) / std`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nst.errors import WeightsError
from nst.models.layers import ARCHITECTURES, conv_layers

_AFFINE_OPS = ("Sub", "Add", "Mul", "Div")
_PASS_THROUGH = ("Identity",)


@dataclass(frozen=True)
class Preprocessing:
    """The graph's `(x - mean) / std` per channel, in its input's own channel order and units."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class OnnxConvs:
    """The convolutions of an ONNX VGG classifier, as the graph holds them."""

    architecture: str
    convs: dict[str, tuple[np.ndarray, np.ndarray]]
    preprocessing: Preprocessing | None


def read_onnx_classifier(path: str | Path) -> OnnxConvs:
    """The VGG-16/19 convolutions of an ONNX graph (classifier layers skipped) and its preprocessing."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, missing external data
        raise WeightsError(f"cannot read {path} as an ONNX model ({exc}); is it complete?") from None
    if any(prop.key == "nst.format" for prop in model.metadata_props):
        raise WeightsError(f"{path} is an nst extractor already; use it as it is: -m {path}")
    graph = model.graph
    constants = _constants(graph)
    if any(node.op_type == "BatchNormalization" for node in graph.node):
        raise WeightsError(f"{path} is a batch-normalised VGG; nst reads plain VGG-16/19 weights")
    convs = [node for node in graph.node if node.op_type == "Conv"]
    architecture = next((a for a in ARCHITECTURES if len(conv_layers(a)) == len(convs)), None)
    if architecture is None:
        raise WeightsError(f"{path} has {len(convs)} convolutions; a VGG-16 classifier has 13 and a VGG-19 16")
    weights = {}
    for layer, node in zip(conv_layers(architecture), convs):
        weights[layer.name] = _conv(node, layer, constants, path)
    return OnnxConvs(architecture, weights, _preprocessing(graph, constants, convs[0], path))


def _constants(graph: Any) -> dict[str, Any]:
    """Initializers and Constant node outputs by name, as TensorProtos (decoded when used)."""
    found: dict[str, Any] = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                found[node.output[0]] = value
    return found


def _array(constants: dict[str, Any], name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    proto = constants.get(name)
    return None if proto is None else np.asarray(numpy_helper.to_array(proto))


def _conv(node: Any, layer: Any, constants: dict[str, Any], path: Path) -> tuple[np.ndarray, np.ndarray]:
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute if a.name != "auto_pad"}
    where = f"{path}: Conv node {node.name or node.output[0]} ({layer.name})"
    settings = (attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1]), attrs.get("group", 1))
    if settings != ([1, 1], [1, 1], 1) or attrs.get("pads", [1, 1, 1, 1]) != [1, 1, 1, 1]:
        raise WeightsError(f"{where} is not a VGG convolution (3x3, stride 1, padding 1): {attrs}")
    kernel = _array(constants, node.input[1])
    if kernel is None:
        raise WeightsError(f"{where} takes its kernel {node.input[1]} from another node, not an initializer")
    expected = (layer.out_channels, layer.in_channels, 3, 3)
    if kernel.shape != expected:
        raise WeightsError(f"{where}: initializer {node.input[1]} has shape {kernel.shape}, expected {expected}")
    bias = _array(constants, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    bias = np.zeros(layer.out_channels, np.float32) if bias is None else bias.reshape(-1)
    if bias.shape != (layer.out_channels,):
        raise WeightsError(
            f"{where}: initializer {node.input[2]} has shape {bias.shape}, expected ({layer.out_channels},)"
        )
    return np.ascontiguousarray(kernel, np.float32), np.ascontiguousarray(bias, np.float32)


def _preprocessing(graph: Any, constants: dict[str, Any], first_conv: Any, path: Path) -> Preprocessing | None:
    """Fold the Sub/Add/Mul/Div chain from the image input to the first Conv into a*x + b."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    images = [i.name for i in graph.input if i.name not in constants]
    if len(images) != 1:
        raise WeightsError(f"{path} has {len(images)} non-constant inputs; a VGG classifier takes one image")
    scale, shift = np.ones(3), np.zeros(3)
    current, steps = images[0], 0
    while True:
        nodes = consumers.get(current, [])
        if len(nodes) != 1:
            raise WeightsError(f"{path}: {current} feeds {len(nodes)} nodes before conv1_1; nst reads a plain chain")
        node = nodes[0]
        if node is first_conv:
            break
        if node.op_type in _PASS_THROUGH:
            current = node.output[0]
            continue
        if node.op_type not in _AFFINE_OPS:
            raise WeightsError(
                f"{path}: the image passes through {node.op_type} before conv1_1; nst folds only "
                "Sub/Add/Mul/Div preprocessing into the export"
            )
        scale, shift = _apply(node, current, constants, scale, shift, path)
        current, steps = node.output[0], steps + 1
    if not steps:
        return None
    if (scale <= 0).any():
        raise WeightsError(f"{path}: the preprocessing scales a channel by {scale.min():g}; nst needs positive scales")
    std, mean = 1.0 / scale, -shift / scale  # a*x + b = (x - mean) / std
    return Preprocessing(tuple(float(v) for v in mean), tuple(float(v) for v in std))  # type: ignore[arg-type]


def _apply(node: Any, current: str, constants: dict[str, Any], scale, shift, path: Path):
    other = node.input[1] if node.input[0] == current else node.input[0]
    value = _array(constants, other)
    if value is None or value.size not in (1, 3):
        raise WeightsError(f"{path}: {node.op_type} node {node.name} before conv1_1 has no per-channel constant")
    c = np.broadcast_to(value.astype(np.float64).reshape(-1), (3,))
    x_first = node.input[0] == current
    if node.op_type == "Add":
        return scale, shift + c
    if node.op_type == "Sub":
        return (scale, shift - c) if x_first else (-scale, c - shift)
    if node.op_type == "Mul":
        return scale * c, shift * c
    if not x_first:
        raise WeightsError(f"{path}: Div node {node.name} divides a constant by the image; that is not a normalization")
    return scale / c, shift / c
