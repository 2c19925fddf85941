"""`--quantize int8`: static QDQ quantization of a float extractor with onnxruntime.quantization.

The convolutions get int8 weights (per output channel, symmetric) and uint8 activations
(per tensor, MinMax ranges from calibration images); ReLU and max pooling run on the
quantized tensors, so onnxruntime fuses each DequantizeLinear -> Conv -> QuantizeLinear into
one integer convolution. The Gram arithmetic stays float32.

Two measured choices (benchmarks/deploy.py, docs/DEPLOY.md) keep the Grams close to the float
graph's: the int8 rounding of the weights, not of the activations, is most of the error, and
it is coherent over the image, so (1) each quantized conv's bias is corrected by the mean
shift its rounded weights cause on the calibration images (Nagel et al. 2019, "Data-Free
Quantization", section 4.2, with empirical means), and (2) the first convolution (27 weights
per filter, on raw pixels) and the block-5 convolutions (the deepest, 2.5 % of the work each)
stay float.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nst.contract import INPUT_NAME, model_info, write_metadata
from nst.errors import ConfigError, ImageError

if TYPE_CHECKING:
    import onnx

# The repository's example images: the default calibration set.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CALIBRATION_SIZE = 512  # long side cap of a calibration image in a dynamic graph (precompute's default size)
MAX_CALIBRATION_IMAGES = 64
WEIGHT_LEVELS = 127  # int8 symmetric: -127 ... 127, as onnxruntime quantizes weights


def calibration_paths(folder: Path | None) -> list[Path]:
    """The images of `folder` (default: the examples), sorted; at least one."""
    folder = Path(folder) if folder is not None else EXAMPLES
    if not folder.is_dir():
        hint = "" if folder != EXAMPLES else " (the examples folder is not installed with nst)"
        raise ConfigError(f"calibration folder {folder} not found{hint}; pass --calibrate DIR with a few images")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise ConfigError(f"no images (.jpg, .png, ...) in {folder} to calibrate with; pass --calibrate DIR")
    return paths[:MAX_CALIBRATION_IMAGES]


def calibration_batches(
    paths: Sequence[Path], *, static: tuple[int, int, int] | None = None, dtype: type = np.float32
) -> list[np.ndarray]:
    """(N, 3, H, W) 0-255 batches: each image with its long side at most CALIBRATION_SIZE
    (batch 1), or, for a static graph, cropped to fill its H x W, N images a batch."""
    from PIL import Image, ImageOps

    arrays = []
    for path in paths:
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise ImageError(f"cannot read calibration image {path} ({exc})") from None
        if static:
            rgb = ImageOps.fit(rgb, (static[2], static[1]), Image.Resampling.LANCZOS)  # cover, centre crop
        elif max(rgb.size) > CALIBRATION_SIZE:
            rgb.thumbnail((CALIBRATION_SIZE, CALIBRATION_SIZE), Image.Resampling.LANCZOS)
        arrays.append(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1)[None])  # (1, 3, H, W)
    if not static:
        return [a.astype(dtype) for a in arrays]
    n = static[0]
    cycled = [arrays[i % len(arrays)] for i in range(-(-len(arrays) // n) * n)]  # whole batches of n
    return [np.concatenate(cycled[i : i + n]).astype(dtype) for i in range(0, len(cycled), n)]


def float_convs(model: onnx.ModelProto) -> list[str]:
    """The convolutions kept float: the first, and those of block 5."""
    convs = [node.name for node in model.graph.node if node.op_type == "Conv"]
    return [name for name in convs if name == convs[0] or name.startswith("conv5_")]


def quantize_int8(model: onnx.ModelProto, *, calibrate: Path | None = None) -> onnx.ModelProto:
    """The int8 QDQ graph of float extractor `model` (an `nst` float32 export, any io, static
    or dynamic), calibrated on the images of `calibrate` (default: the examples)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    info = model_info(model, "the graph")
    paths = calibration_paths(calibrate)
    batches = calibration_batches(paths, static=info.static, dtype=np.float16 if info.io == "fp16" else np.float32)
    keep_float = float_convs(model)
    corrected = bias_corrected(model, batches, skip=keep_float)
    relus = {n.input[0]: n.name for n in model.graph.node if n.op_type == "Relu"}
    exclude = keep_float + [relus[name] for name in keep_float if name in relus]
    with tempfile.TemporaryDirectory(prefix="nst-int8-") as tmp, quiet_quantizer():
        output = Path(tmp) / "int8.onnx"
        quantize_static(
            corrected,
            output,
            calibration_reader(batches),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "Relu", "MaxPool"],
            nodes_to_exclude=exclude,
            per_channel=True,
            activation_type=QuantType.QUInt8,  # after ReLU: all 256 levels on [0, max]
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"DedicatedQDQPair": True},  # the Grams read their own dequantized copy
        )
        quantized = onnx.load(str(output))
    names = ", ".join(p.name for p in paths[:4]) + (", ..." if len(paths) > 4 else "")
    where = "examples" if calibrate is None else str(calibrate)
    sizing = "static shape" if info.static else f"long side at most {CALIBRATION_SIZE} px"
    calibration = (
        f"MinMax ranges from {len(paths)} images in {where} ({names}), {sizing}; int8 per-channel symmetric "
        f"weights, uint8 per-tensor activations, QDQ; conv biases corrected for the weights' rounding; "
        f"float: {', '.join(keep_float)} and the Grams"
    )
    del quantized.metadata_props[:]  # the quantizer adds its own keys
    quantized.producer_name = model.producer_name
    write_metadata(quantized, dataclasses.replace(info, quantize="int8", calibration=calibration))
    return quantized


def bias_corrected(
    model: onnx.ModelProto, batches: Sequence[np.ndarray], *, skip: Sequence[str] = ()
) -> onnx.ModelProto:
    """A copy of `model` whose conv biases (but those in `skip`) absorb the mean output shift
    that int8 rounding of their weights causes: b -= sum_{i,kh,kw} (Q(W) - W) * E[x_i], with
    E[x_i] the mean of the conv's input channel i over `batches`."""
    import onnx
    from onnx import numpy_helper

    convs = [node for node in model.graph.node if node.op_type == "Conv" and node.name not in skip]
    means = _input_means(model, batches, [node.input[0] for node in convs])
    corrected = onnx.ModelProto()
    corrected.CopyFrom(model)
    tensors = {t.name: t for t in corrected.graph.initializer}
    for node in convs:
        weight = numpy_helper.to_array(tensors[node.input[1]])
        bias = numpy_helper.to_array(tensors[node.input[2]])
        shift = (rounded_weights(weight) - weight).sum(axis=(2, 3)) @ means[node.input[0]]  # (out,)
        tensors[node.input[2]].CopyFrom(numpy_helper.from_array((bias - shift).astype(np.float32), node.input[2]))
    return corrected


def rounded_weights(weight: np.ndarray) -> np.ndarray:
    """`weight` (out, in, kh, kw) after onnxruntime's per-channel symmetric int8 quantization."""
    absmax = np.abs(weight).max(axis=(1, 2, 3), keepdims=True).astype(np.float64)
    scale = (2 * absmax / (2 * WEIGHT_LEVELS)).astype(np.float32)
    scale[scale == 0] = 1
    return np.clip(np.rint(weight / scale), -WEIGHT_LEVELS, WEIGHT_LEVELS) * scale


def _input_means(model: onnx.ModelProto, batches: Sequence[np.ndarray], tensors: list[str]) -> dict[str, np.ndarray]:
    """Mean over batches, images and pixels of each named float tensor: {name: (C,)}."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in tensors if name not in known
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    sums: dict[str, np.ndarray] = {}
    for batch in batches:
        for name, value in zip(tensors, session.run(tensors, {INPUT_NAME: batch})):
            sums[name] = sums.get(name, 0) + value.astype(np.float64).mean(axis=(0, 2, 3))
    return {name: value / len(batches) for name, value in sums.items()}


def calibration_reader(batches: Sequence[np.ndarray]):
    """An onnxruntime CalibrationDataReader over `batches`."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    return Reader()


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger (pre-processing, ...); the
    library must not print, so it is muted while the quantizer runs."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
