"""`VGGWeights` + requested layers -> an ONNX feature extractor, as `nst.contract` defines it.

No torch here: the graph is written node by node with `onnx.helper`, so that any runtime
can read it. The graph ends after the deepest requested layer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nst.contract import (
    GRAM_NORMALIZATION,
    INPUT_CONVENTION,
    INPUT_NAME,
    MEAN_PIXEL,
    ModelInfo,
    gram_output,
    param_name,
    write_metadata,
)
from nst.errors import ConfigError, LayerError
from nst.models.layers import DEFAULT_LAYERS, STYLE_LAYERS, Pooling, check_layers, truncated_table
from nst.models.weights import VGGWeights

OPSET = 17


@dataclass(frozen=True)
class ExportConfig:
    """Options of `nst export-vgg`; each field is one CLI option."""

    layers: tuple[str, ...] = DEFAULT_LAYERS
    pooling: Pooling = "max"
    grams: bool = True
    swap_kernel_axes: bool = False


def gram_layers(layers: Iterable[str]) -> tuple[str, ...]:
    """The requested layers that get a Gram output: the style layers (relu1_1 ... relu5_1)."""
    return tuple(name for name in layers if name in STYLE_LAYERS)


def weights_digest(weights: VGGWeights, layer_names: Iterable[str]) -> str:
    """SHA-256 over the conv tensors the graph uses: identifies the network, not the file."""
    digest = hashlib.sha256()
    digest.update(weights.mean_pixel.astype(np.float32).tobytes())
    for name in layer_names:
        if name in weights.convs:
            kernel, bias = weights.convs[name]
            digest.update(name.encode())
            digest.update(kernel.tobytes())
            digest.update(bias.tobytes())
    return digest.hexdigest()


def build_onnx(weights: VGGWeights, config: ExportConfig = ExportConfig()):
    """Build the truncated extractor as an `onnx.ModelProto`, checked with full shape inference."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if config.pooling not in ("max", "avg"):
        raise ConfigError(f"pooling must be 'max' or 'avg', not {config.pooling!r}")
    layers = check_layers(weights.architecture, config.layers)
    table = truncated_table(weights.architecture, layers)
    grams = gram_layers(layers) if config.grams else ()

    initializers = [numpy_helper.from_array(weights.mean_pixel.reshape(1, 3, 1, 1).astype(np.float32), MEAN_PIXEL)]
    nodes = [helper.make_node("Sub", [INPUT_NAME, MEAN_PIXEL], ["preprocessed"], name="preprocess")]
    previous = "preprocessed"
    for layer in table:
        if layer.kind == "conv":
            kernel, bias = weights.convs[layer.name]
            expected = (layer.out_channels, layer.in_channels, 3, 3)
            if kernel.shape != expected:
                raise LayerError(f"{layer.name}: kernel shape {kernel.shape}, expected {expected}")
            weight, bias_name = param_name(layer.name, "weight"), param_name(layer.name, "bias")
            initializers.append(numpy_helper.from_array(kernel, weight))
            initializers.append(numpy_helper.from_array(bias, bias_name))
            nodes.append(
                helper.make_node(
                    "Conv",
                    [previous, weight, bias_name],
                    [layer.name],
                    name=layer.name,
                    kernel_shape=[3, 3],
                    pads=[1, 1, 1, 1],
                    strides=[1, 1],
                )
            )
        elif layer.kind == "relu":
            nodes.append(helper.make_node("Relu", [previous], [layer.name], name=layer.name))
        else:
            # ceil_mode: odd sizes give ceil(h/2) rows, the partial window holding only real
            # pixels, like the reference's TF 'SAME' pooling.
            op = "MaxPool" if config.pooling == "max" else "AveragePool"
            extra: dict[str, int] = {} if op == "MaxPool" else {"count_include_pad": 0}
            nodes.append(
                helper.make_node(
                    op,
                    [previous],
                    [layer.name],
                    name=layer.name,
                    kernel_shape=[2, 2],
                    strides=[2, 2],
                    ceil_mode=1,
                    **extra,  # type: ignore[arg-type]
                )
            )
        previous = layer.name

    if grams:
        initializers += [
            numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "gram.flat_shape"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "gram.chw_start"),
            numpy_helper.from_array(np.array([4], dtype=np.int64), "gram.chw_end"),
        ]
    for name in grams:
        nodes += _gram_nodes(helper, TensorProto, name)

    channels = {layer.name: layer.out_channels for layer in table if layer.kind == "conv"}
    outputs = []
    level = 0
    for layer in table:
        if layer.kind == "conv":
            current_channels = channels[layer.name]
        if layer.kind == "pool":
            level += 1
        if layer.name in layers:
            outputs.append(
                helper.make_tensor_value_info(
                    layer.name, TensorProto.FLOAT, ["N", current_channels, f"H{level}", f"W{level}"]
                )
            )
    for name in grams:
        c = _channels_at(table, name)
        outputs.append(helper.make_tensor_value_info(gram_output(name), TensorProto.FLOAT, ["N", c, c]))

    graph = helper.make_graph(
        nodes,
        f"{weights.architecture}_nst",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="nst",
        doc_string=f"{weights.architecture} feature extractor for neural style transfer. {INPUT_CONVENTION}.",
    )
    model.ir_version = 8  # opset 17's IR version, readable by older runtimes too
    conv_names = [layer.name for layer in table if layer.kind == "conv"]
    info = ModelInfo(
        path=Path(),
        architecture=weights.architecture,
        layers=layers,
        grams=grams,
        pooling=config.pooling,
        mean_pixel=weights.mean_pixel,
        weights_sha256=weights_digest(weights, conv_names),
        source_sha256=weights.source_sha256,
        kernel_axes=weights.kernel_axes,
        gram_normalization=GRAM_NORMALIZATION,
    )
    write_metadata(model, info)
    onnx.checker.check_model(model, full_check=True)
    return model


def _channels_at(table, name: str) -> int:
    channels = 3
    for layer in table:
        if layer.kind == "conv":
            channels = layer.out_channels
        if layer.name == name:
            return channels
    raise LayerError(f"layer {name} is not in the graph")


def _gram_nodes(helper, TensorProto, name: str) -> list:
    """gram_<name> = F F^T / (C*H*W), F = features reshaped to (N, C, H*W)."""
    out = gram_output(name)
    p = out + "."
    return [
        helper.make_node("Reshape", [name, "gram.flat_shape"], [p + "flat"], name=p + "flat"),  # (N, C, HW)
        helper.make_node("Transpose", [p + "flat"], [p + "flat_t"], name=p + "flat_t", perm=[0, 2, 1]),
        helper.make_node("MatMul", [p + "flat", p + "flat_t"], [p + "ftf"], name=p + "ftf"),  # (N, C, C)
        helper.make_node("Shape", [name], [p + "shape"], name=p + "shape"),
        helper.make_node("Slice", [p + "shape", "gram.chw_start", "gram.chw_end"], [p + "chw"], name=p + "chw"),
        helper.make_node("ReduceProd", [p + "chw"], [p + "size_i"], name=p + "size_i", keepdims=0),
        helper.make_node("Cast", [p + "size_i"], [p + "size"], name=p + "size", to=TensorProto.FLOAT),
        helper.make_node("Div", [p + "ftf", p + "size"], [out], name=out),
    ]
