"""The nodes of an extractor graph: its sections (preprocessing, the network, feature and Gram
outputs) written node by node with `onnx.helper`, for `nst.export.onnx_graph.build_onnx`."""

from __future__ import annotations

import numpy as np

from nst.contract import INPUT_NAME, MEAN_PIXEL, gram_output, param_name
from nst.errors import LayerError
from nst.models.layers import Layer
from nst.models.weights import VGGWeights


class GraphBuilder:
    """The nodes and initializers of one extractor graph, added section by section."""

    def __init__(
        self, *, precision: str, io: str, pooling: str, static: tuple[int, int, int] | None, shapes: dict[str, tuple]
    ):
        from onnx import TensorProto

        self.precision, self.pooling, self.static, self.shapes = precision, pooling, static, shapes
        self.compute = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
        self.io = TensorProto.FLOAT16 if io == "fp16" else TensorProto.FLOAT
        self.weight_dtype = np.float16 if precision == "fp16" else np.float32
        # Internal tensors carry the layer's name when they are in the outputs' type; otherwise
        # the name is the output's, cast (relu4_2 = Cast(relu4_2.fp16)).
        self.suffix = "" if self.compute == self.io else "." + precision
        self.nodes: list = []
        self.initializers: list = []
        self.previous = INPUT_NAME  # the tensor the next section reads

    def tensor(self, name: str) -> str:
        return name + self.suffix

    def preprocess(self, mean_pixel: np.ndarray) -> None:
        """image (fp16 input cast up) - mean pixel, in float32 whatever the precision: fp16
        pixels near 255 are 1/8 apart; then cast to the compute type."""
        from onnx import TensorProto, helper, numpy_helper

        self.initializers.append(numpy_helper.from_array(mean_pixel.reshape(1, 3, 1, 1).astype(np.float32), MEAN_PIXEL))
        pixels = INPUT_NAME
        if self.io == TensorProto.FLOAT16:
            self.nodes.append(
                helper.make_node("Cast", [INPUT_NAME], ["image.fp32"], name="image.fp32", to=TensorProto.FLOAT)
            )
            pixels = "image.fp32"
        self.nodes.append(helper.make_node("Sub", [pixels, MEAN_PIXEL], ["preprocessed"], name="preprocess"))
        self.previous = "preprocessed"
        if self.precision == "fp16":
            self.nodes.append(
                helper.make_node(
                    "Cast", ["preprocessed"], ["preprocessed.fp16"], name="preprocessed.fp16", to=self.compute
                )
            )
            self.previous = "preprocessed.fp16"

    def network(self, table: tuple[Layer, ...], weights: VGGWeights) -> None:
        """Every layer of `table` in order, with each conv's weights as initializers."""
        from onnx import helper, numpy_helper

        for layer in table:
            self.nodes.append(_layer_node(helper, layer, self.previous, self.tensor(layer.name), self.pooling))
            if layer.kind == "conv":
                kernel, bias = weights.convs[layer.name]
                expected = (layer.out_channels, layer.in_channels, 3, 3)
                if kernel.shape != expected:
                    raise LayerError(f"{layer.name}: kernel shape {kernel.shape}, expected {expected}")
                for kind, value in (("weight", kernel), ("bias", bias)):
                    self.initializers.append(
                        numpy_helper.from_array(value.astype(self.weight_dtype), param_name(layer.name, kind))
                    )
            self.previous = self.tensor(layer.name)

    def feature_outputs(self, features: tuple[str, ...]) -> None:
        """Features computed in another type than the outputs' are cast to it."""
        from onnx import helper

        if self.suffix:
            for name in features:
                self.nodes.append(
                    helper.make_node("Cast", [self.tensor(name)], [name], name=name + ".cast", to=self.io)
                )

    def gram_outputs(self, grams: tuple[str, ...], features: tuple[str, ...]) -> None:
        """gram_<layer> for each of `grams`, always in float32: the sum of H*W products
        overflows fp16's 65504."""
        from onnx import TensorProto, helper, numpy_helper

        static = self.static
        if grams and not static:
            self.initializers += [
                numpy_helper.from_array(np.array([1], dtype=np.int64), "gram.chw_start"),
                numpy_helper.from_array(np.array([4], dtype=np.int64), "gram.chw_end"),
            ]
        if grams:
            self.initializers.append(numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "gram.flat_shape"))
        for name in grams:
            if self.compute == TensorProto.FLOAT:
                source = self.tensor(name)
            elif name in features and self.io == TensorProto.FLOAT:
                source = name  # the float32 output, cast once
            else:
                source = gram_output(name) + ".features"
                self.nodes.append(
                    helper.make_node("Cast", [self.tensor(name)], [source], name=source, to=TensorProto.FLOAT)
                )
            out = gram_output(name)
            result = out if self.io == TensorProto.FLOAT else out + ".fp32"
            scale = None
            if static:
                _, c, h, w = self.shapes[name]
                scale = f"gram.scale.{name}"
                value = np.array(1 / np.sqrt(c * h * w), dtype=np.float32)
                self.initializers.append(numpy_helper.from_array(value, scale))
            self.nodes += _gram_nodes(helper, TensorProto, source, result, scale)
            if result != out:
                self.nodes.append(helper.make_node("Cast", [result], [out], name=out, to=self.io))

    def outputs(self, features: tuple[str, ...], grams: tuple[str, ...]) -> list:
        from onnx import helper

        batch = self.static[0] if self.static else "N"
        return [helper.make_tensor_value_info(name, self.io, list(self.shapes[name])) for name in features] + [
            helper.make_tensor_value_info(
                gram_output(name), self.io, [batch, self.shapes[name][1], self.shapes[name][1]]
            )
            for name in grams
        ]


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


def layer_shapes(table: tuple[Layer, ...], static: tuple[int, int, int] | None) -> dict[str, tuple]:
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
