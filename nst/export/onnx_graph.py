"""`VGGWeights` + requested layers -> an ONNX feature extractor, as `nst.contract` defines it.

No torch here: the graph is written node by node with `onnx.helper`, so that any runtime
can read it. The graph ends after the deepest layer it outputs (or whose Gram it outputs).
The deployment options (opset, fp16, fp16 input/outputs, a static shape, Grams only) change
the graph here; int8 quantization is a pass over the finished float graph (`nst.export.quantize`).
"""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nst.contract import (
    GRAM_NORMALIZATION,
    INPUT_NAME,
    MEAN_PIXEL,
    ModelInfo,
    gram_output,
    input_convention,
    param_name,
    write_metadata,
)
from nst.errors import ConfigError, LayerError
from nst.models.convention import LayoutChoice
from nst.models.layers import DEFAULT_LAYERS, STYLE_LAYERS, Layer, Pooling, check_layers, truncated_table
from nst.models.weights import VGGWeights

OPSET = 17  # the default; any opset from MIN_OPSET to the installed onnx's newest works
MIN_OPSET = 13  # Conv, Relu, pooling, MatMul, Cast and per-channel QuantizeLinear all exist from 13

ExportPrecision = Literal["fp32", "fp16"]
IOType = Literal["fp32", "fp16"]
Outputs = Literal["all", "features", "grams"]
Quantize = Literal["int8"]


@dataclass(frozen=True)
class ExportConfig:
    """Options of `nst export-vgg`; each field is one CLI option."""

    layers: tuple[str, ...] = DEFAULT_LAYERS
    pooling: Pooling = "max"
    grams: bool = True
    swap_kernel_axes: bool = False
    opset: int = OPSET
    precision: ExportPrecision = "fp32"  # the convolutions' weights and arithmetic
    io: IOType = "fp32"  # the input's and outputs' element type (casts inside the graph)
    static: tuple[int, int, int] | None = None  # fixed (N, H, W); None: dynamic
    outputs: Outputs = "all"
    quantize: Quantize | None = None
    calibrate: Path | None = None  # --quantize int8's calibration images; None: the examples folder
    weights_layout: LayoutChoice = "auto"  # a .pth/.safetensors/.onnx file's input convention; auto: detect

    def __post_init__(self) -> None:
        check_config(self)


def max_opset() -> int:
    """The newest default-domain opset of the installed onnx."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def check_config(config: ExportConfig) -> None:
    """Raise ConfigError for an option value or a combination that cannot make a graph."""
    if config.pooling not in ("max", "avg"):
        raise ConfigError(f"pooling must be 'max' or 'avg', not {config.pooling!r}")
    for name, alias in (("precision", ExportPrecision), ("io", IOType), ("outputs", Outputs)):
        allowed = typing.get_args(alias)
        if getattr(config, name) not in allowed:
            raise ConfigError(f"--{name} must be one of {', '.join(allowed)}, not {getattr(config, name)!r}")
    if config.quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8, not {config.quantize!r}")
    if isinstance(config.opset, bool) or not isinstance(config.opset, int) or config.opset < MIN_OPSET:
        raise ConfigError(
            f"--opset must be an integer from {MIN_OPSET} to the installed onnx's newest, not {config.opset!r}"
        )
    if config.static is not None and (
        len(config.static) != 3 or not all(isinstance(v, int) and 1 <= v <= 30_000 for v in config.static)
    ):
        raise ConfigError(f"--static must be NxHxW with each value from 1 to 30000, not {config.static!r}")
    if config.outputs == "grams" and not config.grams:
        raise ConfigError("--outputs grams with --no-grams leaves the graph no output; drop one of them")
    if config.quantize and config.precision != "fp32":
        raise ConfigError("--quantize int8 quantizes a float32 graph; drop --precision fp16")
    if config.weights_layout not in ("auto", "torchvision", "caffe"):
        raise ConfigError(f"--weights-layout must be auto, torchvision or caffe, not {config.weights_layout!r}")
    if config.calibrate is not None and not config.quantize:
        raise ConfigError("--calibrate chooses the images of --quantize int8; add --quantize int8 or drop it")


def gram_layers(layers: Iterable[str]) -> tuple[str, ...]:
    """The requested layers that get a Gram output: the style layers (relu1_1 ... relu5_1)."""
    return tuple(name for name in layers if name in STYLE_LAYERS)


def weights_digest(weights: VGGWeights, layer_names: Iterable[str]) -> str:
    """SHA-256 over the conv tensors the graph uses: identifies the network, not the file
    (nor the precision it is stored in: an fp16 or int8 export of it has the same digest)."""
    digest = hashlib.sha256()
    digest.update(weights.mean_pixel.astype(np.float32).tobytes())
    for name in layer_names:
        if name in weights.convs:
            kernel, bias = weights.convs[name]
            digest.update(name.encode())
            digest.update(kernel.tobytes())
            digest.update(bias.tobytes())
    return digest.hexdigest()


def graph_layers(architecture: str, config: ExportConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(layers, grams): the layers the graph computes, in network order, and those with a Gram
    output. A Grams-only graph keeps only its Gram layers, and so ends at the deepest of them."""
    layers = check_layers(architecture, config.layers)
    grams = gram_layers(layers) if config.grams and config.outputs != "features" else ()
    if config.outputs == "grams":
        if not grams:
            raise ConfigError(
                f"--outputs grams needs a style layer ({', '.join(STYLE_LAYERS)}) among --layers {','.join(layers)}"
            )
        layers = grams
    return layers, grams


def build_onnx(weights: VGGWeights, config: ExportConfig = ExportConfig()):
    """Build the truncated float extractor as an `onnx.ModelProto`, checked with full checks
    and strict shape inference. (`--quantize int8` is applied by `nst.export.quantize`.)"""
    from onnx import TensorProto, helper, numpy_helper

    check_config(config)
    if config.opset > max_opset():
        raise ConfigError(f"--opset {config.opset}: the installed onnx supports opsets {MIN_OPSET} to {max_opset()}")
    layers, grams = graph_layers(weights.architecture, config)
    table = truncated_table(weights.architecture, layers)
    features = layers if config.outputs != "grams" else ()
    compute = TensorProto.FLOAT16 if config.precision == "fp16" else TensorProto.FLOAT
    io = TensorProto.FLOAT16 if config.io == "fp16" else TensorProto.FLOAT
    weight_dtype = np.float16 if config.precision == "fp16" else np.float32
    # Internal tensors carry the layer's name when they are in the outputs' type; otherwise the
    # name is the output's, cast (relu4_2 = Cast(relu4_2.fp16)).
    suffix = "" if compute == io else "." + config.precision

    def tensor(name: str) -> str:
        return name + suffix

    # The mean is subtracted in float32 whatever the precision: fp16 pixels near 255 are 1/8 apart.
    initializers = [numpy_helper.from_array(weights.mean_pixel.reshape(1, 3, 1, 1).astype(np.float32), MEAN_PIXEL)]
    nodes = []
    pixels = INPUT_NAME
    if config.io == "fp16":
        nodes.append(helper.make_node("Cast", [INPUT_NAME], ["image.fp32"], name="image.fp32", to=TensorProto.FLOAT))
        pixels = "image.fp32"
    nodes.append(helper.make_node("Sub", [pixels, MEAN_PIXEL], ["preprocessed"], name="preprocess"))
    previous = "preprocessed"
    if config.precision == "fp16":
        nodes.append(helper.make_node("Cast", [previous], ["preprocessed.fp16"], name="preprocessed.fp16", to=compute))
        previous = "preprocessed.fp16"
    for layer in table:
        nodes.append(_layer_node(helper, layer, previous, tensor(layer.name), config.pooling))
        if layer.kind == "conv":
            kernel, bias = weights.convs[layer.name]
            expected = (layer.out_channels, layer.in_channels, 3, 3)
            if kernel.shape != expected:
                raise LayerError(f"{layer.name}: kernel shape {kernel.shape}, expected {expected}")
            initializers.append(numpy_helper.from_array(kernel.astype(weight_dtype), param_name(layer.name, "weight")))
            initializers.append(numpy_helper.from_array(bias.astype(weight_dtype), param_name(layer.name, "bias")))
        previous = tensor(layer.name)
    for name in features:
        if suffix:
            nodes.append(helper.make_node("Cast", [tensor(name)], [name], name=name + ".cast", to=io))

    if grams and not config.static:
        initializers += [
            numpy_helper.from_array(np.array([1], dtype=np.int64), "gram.chw_start"),
            numpy_helper.from_array(np.array([4], dtype=np.int64), "gram.chw_end"),
        ]
    if grams:
        initializers.append(numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "gram.flat_shape"))
    shapes = _shapes(table, config.static)
    for name in grams:
        # The Gram is float32 in every graph: the sum of H*W products overflows fp16's 65504.
        if compute == TensorProto.FLOAT:
            source = tensor(name)
        elif name in features and io == TensorProto.FLOAT:
            source = name  # the float32 output, cast once
        else:
            source = gram_output(name) + ".features"
            nodes.append(helper.make_node("Cast", [tensor(name)], [source], name=source, to=TensorProto.FLOAT))
        out = gram_output(name)
        result = out if io == TensorProto.FLOAT else out + ".fp32"
        if config.static:
            _, c, h, w = shapes[name]
            scale = f"gram.scale.{name}"
            initializers.append(numpy_helper.from_array(np.array(1 / np.sqrt(c * h * w), dtype=np.float32), scale))
            nodes += _gram_nodes(helper, TensorProto, source, result, scale)
        else:
            nodes += _gram_nodes(helper, TensorProto, source, result, None)
        if result != out:
            nodes.append(helper.make_node("Cast", [result], [out], name=out, to=io))

    batch, height, width = config.static or ("N", "H", "W")
    outputs = [helper.make_tensor_value_info(name, io, list(shapes[name])) for name in features]
    outputs += [
        helper.make_tensor_value_info(gram_output(name), io, [batch, shapes[name][1], shapes[name][1]])
        for name in grams
    ]
    graph = helper.make_graph(
        nodes,
        f"{weights.architecture}_nst",
        [helper.make_tensor_value_info(INPUT_NAME, io, [batch, 3, height, width])],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", config.opset)],
        producer_name="nst",
        doc_string=f"{weights.architecture} feature extractor for neural style transfer. "
        f"{input_convention(config.io, config.static)}.",
    )
    # The oldest IR version that carries this opset (8 for 17): readable by the most runtimes.
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
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
        opset=config.opset,
        precision=config.precision,
        io=config.io,
        static=config.static,
        outputs=config.outputs if grams or config.outputs == "grams" else "features",
        weights_format=weights.file_format,
        weights_layout=weights.layout,
        layout_source=weights.layout_source,
    )
    write_metadata(model, info)
    check_graph(model)
    return model


def check_graph(model) -> None:
    """onnx.checker with full checks, and shape inference in strict mode (raises on any error)."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)


def _layer_node(helper, layer: Layer, previous: str, output: str, pooling: str):
    if layer.kind == "conv":
        weight, bias = param_name(layer.name, "weight"), param_name(layer.name, "bias")
        return helper.make_node(
            "Conv", [previous, weight, bias], [output], name=layer.name, kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        )
    if layer.kind == "relu":
        return helper.make_node("Relu", [previous], [output], name=layer.name)
    # ceil_mode: odd sizes give ceil(h/2) rows, the partial window holding only real
    # pixels, like the reference's TF 'SAME' pooling.
    extra = {"count_include_pad": 0} if pooling == "avg" else {}
    op = "MaxPool" if pooling == "max" else "AveragePool"
    return helper.make_node(
        op, [previous], [output], name=layer.name, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, **extra
    )


def _shapes(table: tuple[Layer, ...], static: tuple[int, int, int] | None) -> dict[str, tuple]:
    """Each layer's output shape: (N, C, h, w) numbers for a static graph, named dims otherwise."""
    shapes: dict[str, tuple] = {}
    channels, level = 3, 0
    h, w = (static[1], static[2]) if static else (0, 0)
    for layer in table:
        if layer.kind == "conv":
            channels = layer.out_channels
        elif layer.kind == "pool":
            level += 1
            h, w = (h + 1) // 2, (w + 1) // 2  # ceil_mode
        if static:
            shapes[layer.name] = (static[0], channels, h, w)
        else:
            shapes[layer.name] = ("N", channels, f"H{level}", f"W{level}")
    return shapes


def _gram_nodes(helper, TensorProto, name: str, out: str, scale: str | None) -> list:
    """out = (F / sqrt(C*H*W)) (F / sqrt(C*H*W))^T = F F^T / (C*H*W), F = `name`'s features
    as (N, C, H*W). `scale`: the initializer holding 1 / sqrt(C*H*W) (a static graph); None:
    computed from the features' shape.

    Scaling before the product keeps its terms small, and keeps a float multiply between an
    int8 graph's DequantizeLinear and the MatMul: onnxruntime would otherwise fuse them into
    an integer matmul, whose int32 sum overflows at 512 px (measured: 100 % error on relu1_1).
    """
    p = out + "."
    nodes = []
    if scale is None:
        scale = p + "scale"
        nodes += [
            helper.make_node("Shape", [name], [p + "shape"], name=p + "shape"),
            helper.make_node("Slice", [p + "shape", "gram.chw_start", "gram.chw_end"], [p + "chw"], name=p + "chw"),
            # No axes: reduce all, the same in opset 13 (axes an attribute) and 18+ (an input).
            helper.make_node("ReduceProd", [p + "chw"], [p + "size_i"], name=p + "size_i", keepdims=0),
            helper.make_node("Cast", [p + "size_i"], [p + "size"], name=p + "size", to=TensorProto.FLOAT),
            helper.make_node("Sqrt", [p + "size"], [p + "root"], name=p + "root"),
            helper.make_node("Reciprocal", [p + "root"], [scale], name=scale),
        ]
    return [
        *nodes,
        helper.make_node("Mul", [name, scale], [p + "scaled"], name=p + "scaled"),  # F / sqrt(CHW)
        helper.make_node("Reshape", [p + "scaled", "gram.flat_shape"], [p + "flat"], name=p + "flat"),  # (N, C, HW)
        helper.make_node("Transpose", [p + "flat"], [p + "flat_t"], name=p + "flat_t", perm=[0, 2, 1]),
        helper.make_node("MatMul", [p + "flat", p + "flat_t"], [out], name=out),  # (N, C, C)
    ]
