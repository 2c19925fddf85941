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
    ModelInfo,
    input_convention,
    write_metadata,
)
from nst.errors import ConfigError, option_name
from nst.export.graph_nodes import GraphBuilder, layer_shapes
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
            raise ConfigError(f"{option_name(name)} must be one of {', '.join(allowed)}, not {getattr(config, name)!r}")
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
        raise ConfigError(
            f"{option_name('weights_layout')} must be auto, torchvision or caffe, not {config.weights_layout!r}"
        )
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
    from onnx import helper

    check_config(config)
    if config.opset > max_opset():
        raise ConfigError(f"--opset {config.opset}: the installed onnx supports opsets {MIN_OPSET} to {max_opset()}")
    layers, grams = graph_layers(weights.architecture, config)
    table = truncated_table(weights.architecture, layers)
    features = layers if config.outputs != "grams" else ()
    graph = GraphBuilder(
        precision=config.precision,
        io=config.io,
        pooling=config.pooling,
        static=config.static,
        shapes=layer_shapes(table, config.static),
    )
    graph.preprocess(weights.mean_pixel)
    graph.network(table, weights)
    graph.feature_outputs(features)
    graph.gram_outputs(grams, features)
    batch, height, width = config.static or ("N", "H", "W")
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            f"{weights.architecture}_nst",
            [helper.make_tensor_value_info(INPUT_NAME, graph.io, [batch, 3, height, width])],
            graph.outputs(features, grams),
            initializer=graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", config.opset)],
        producer_name="nst",
        doc_string=f"{weights.architecture} feature extractor for neural style transfer. "
        f"{input_convention(config.io, config.static)}.",
    )
    # The oldest IR version that carries this opset (8 for 17): readable by the most runtimes.
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    write_metadata(model, _model_info(weights, config, table, layers, grams))
    check_graph(model)
    return model


def _model_info(
    weights: VGGWeights, config: ExportConfig, table: tuple[Layer, ...], layers: tuple[str, ...], grams: tuple[str, ...]
) -> ModelInfo:
    """What the graph says about itself (its nst.* metadata)."""
    return ModelInfo(
        path=Path(),
        architecture=weights.architecture,
        layers=layers,
        grams=grams,
        pooling=config.pooling,
        mean_pixel=weights.mean_pixel,
        weights_sha256=weights_digest(weights, [layer.name for layer in table if layer.kind == "conv"]),
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


def check_graph(model) -> None:
    """onnx.checker with full checks, and shape inference in strict mode (raises on any error)."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
