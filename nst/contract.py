"""The ONNX extractor contract: what an exported graph takes, gives, and says about itself.

The exporter writes it, and the PyTorch mirror, the onnxruntime extractor and the targets
code read it; this module is their one common definition (docs/ONNX_CONTRACT.md describes
it for other runtimes). No torch and no onnx at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from nst.errors import ModelError

if TYPE_CHECKING:
    import onnx

# Version of the graph layout and metadata below; a reader refuses other versions.
FORMAT_VERSION = "1"
INPUT_NAME = "image"
INPUT_CONVENTION = "image: float32 [N, 3, H, W], RGB, 0-255; the mean pixel is subtracted in the graph"
GRAM_PREFIX = "gram_"
# The Gram normalization of the graph's gram_* outputs and of `gram()` below.
GRAM_NORMALIZATION = "G = F F^T / (C*H*W)"
# The initializer holding the RGB mean pixel, shaped (1, 3, 1, 1).
MEAN_PIXEL = "mean_pixel"
_PREFIX = "nst."


def input_convention(io: str = "fp32", static: tuple[int, int, int] | None = None) -> str:
    """The `nst.input` line of a graph whose input is `io` (fp32 | fp16), of fixed (N, H, W) `static`."""
    dtype = {"fp32": "float32", "fp16": "float16"}[io]
    shape = f"[{static[0]}, 3, {static[1]}, {static[2]}]" if static else "[N, 3, H, W]"
    return INPUT_CONVENTION.replace("float32 [N, 3, H, W]", f"{dtype} {shape}")


def gram_output(layer: str) -> str:
    """The graph output holding `layer`'s Gram matrix: gram_relu1_1."""
    return GRAM_PREFIX + layer


def param_name(layer: str, part: str) -> str:
    """Initializer (and mirror `state_dict`) name of a conv's weight or bias: conv1_1.weight."""
    return f"{layer}.{part}"


Array = TypeVar("Array")  # numpy.ndarray or torch.Tensor


def gram(features: Array) -> Array:
    """Gram matrices of (N, C, H, W) features: G = F F^T / (C*H*W), shape (N, C, C).

    The one definition of the normalization, for numpy arrays and torch tensors alike; the
    graph's gram_* outputs compute the same. It follows anishathalye/neural-style, which
    divides by the feature map's size C*H*W; the paper (Gatys et al. 2015, eq. 3-5) uses
    the raw F F^T and folds 1/(4 N^2 M^2) into the loss.
    """
    array: Any = features
    n, c, h, w = array.shape
    flat = array.reshape(n, c, h * w)  # (N, C, HW)
    size = c * h * w
    if isinstance(flat, np.ndarray):
        result: Any = (flat @ flat.transpose(0, 2, 1)) / np.asarray(size, dtype=flat.dtype)
        return result
    import torch

    return torch.bmm(flat, flat.transpose(1, 2)) / size  # (N, C, C)


@dataclass(frozen=True)
class ModelInfo:
    """What an exported extractor says about itself, from its `nst.*` metadata_props."""

    path: Path
    architecture: str  # vgg19 | vgg16
    layers: tuple[str, ...]  # feature outputs, in network order
    grams: tuple[str, ...]  # layers with a gram_<layer> output
    pooling: str  # max | avg
    mean_pixel: np.ndarray  # (3,) float32, RGB
    weights_sha256: str  # digest of the conv tensors the graph holds: identifies the network
    source_sha256: str  # SHA-256 of the weights file (.mat) it was exported from
    kernel_axes: str  # hw (MatConvNet's order) | wh (the reference's swapped kernels)
    gram_normalization: str
    # Deployment choices (`nst export-vgg --opset/--precision/--io/--static/--outputs/--quantize`);
    # the defaults are a plain float32 export's.
    opset: int = 17
    precision: str = "fp32"  # the convolutions' weights and arithmetic: fp32 | fp16
    io: str = "fp32"  # element type of the input and the outputs: fp32 | fp16
    static: tuple[int, int, int] | None = None  # fixed (N, H, W); None: dynamic
    outputs: str = "all"  # all (features and Grams) | features | grams
    gram_precision: str = "fp32"  # the Gram arithmetic (float32 in every graph: F F^T overflows fp16)
    quantize: str = ""  # "" | int8 (static QDQ)
    calibration: str = ""  # how an int8 graph's activation ranges were calibrated
    # What the weights file was (nst.models.readers); the defaults are a .mat's.
    weights_format: str = "mat"  # mat | pth | safetensors | onnx
    # The file's input convention, folded into conv1_1: matconvnet | torchvision | caffe | onnx
    weights_layout: str = "matconvnet"
    layout_source: str = "format"  # how that was known: format | hash | keys | preprocessing | option

    @property
    def feature_outputs(self) -> tuple[str, ...]:
        """The layers whose features are graph outputs (`layers` less a Grams-only graph's)."""
        return () if self.outputs == "grams" else self.layers

    @property
    def is_deployment(self) -> bool:
        """True for a graph exported with any deployment option (fp16, int8, static, Grams only)."""
        return bool(self.quantize or self.static or self.outputs == "grams" or "fp16" in (self.precision, self.io))

    def describe(self) -> str:
        """For messages: 'an int8 deployment graph', 'a static 1x3x256x256 fp16 deployment graph'."""
        words = [f"static {self.static[0]}x3x{self.static[1]}x{self.static[2]}"] if self.static else []
        words.append(self.quantize or ("float32" if self.precision == "fp32" else self.precision))
        if self.outputs == "grams":
            words.append("Grams-only")
        text = " ".join(words) + (" deployment graph" if self.is_deployment else " graph")
        return ("an " if text.startswith(("int8", "fp16")) else "a ") + text

    def to_props(self) -> dict[str, str]:
        """The metadata_props an exporter writes for this model."""
        static = "x".join(str(v) for v in self.static) if self.static else "dynamic"
        return {
            _PREFIX + "format": FORMAT_VERSION,
            _PREFIX + "architecture": self.architecture,
            _PREFIX + "layers": ",".join(self.layers),
            _PREFIX + "grams": ",".join(self.grams),
            _PREFIX + "gram_normalization": self.gram_normalization,
            _PREFIX + "mean_pixel": ",".join(f"{v:.6f}" for v in self.mean_pixel.tolist()),
            _PREFIX + "pooling": self.pooling,
            _PREFIX + "input": input_convention(self.io, self.static),
            _PREFIX + "kernel_axes": self.kernel_axes,
            _PREFIX + "source_sha256": self.source_sha256,
            _PREFIX + "weights_sha256": self.weights_sha256,
            _PREFIX + "opset": str(self.opset),
            _PREFIX + "precision": self.precision,
            _PREFIX + "io": self.io,
            _PREFIX + "static": static,
            _PREFIX + "outputs": self.outputs,
            _PREFIX + "gram_precision": self.gram_precision,
            _PREFIX + "quantize": self.quantize or "none",
            _PREFIX + "calibration": self.calibration,
            _PREFIX + "weights_format": self.weights_format,
            _PREFIX + "weights_layout": self.weights_layout,
            _PREFIX + "layout_source": self.layout_source,
        }


def write_metadata(model: onnx.ModelProto, info: ModelInfo) -> None:
    """Set `info` as the model's nst metadata_props."""
    from onnx import helper

    helper.set_model_props(model, info.to_props())


def load_onnx(path: str | Path, load_weights: bool = True) -> onnx.ModelProto:
    """`onnx.load` with a clear error for a missing or corrupt file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}; create one with `nst export-vgg WEIGHTS -o {path}`")
    try:
        return onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(
            f"cannot read {path} as an ONNX model ({exc}); export it again with `nst export-vgg`"
        ) from None


def model_info(model: Any, path: str | Path) -> ModelInfo:
    """Parse and check the nst metadata of a loaded `ModelProto`."""
    props = {p.key[len(_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(_PREFIX)}
    if "format" not in props:
        raise ModelError(
            f"{path} is an ONNX model but not an nst extractor (no nst.* metadata); export one with `nst export-vgg`"
        )
    if props["format"] != FORMAT_VERSION:
        raise ModelError(
            f"{path} has nst format {props['format']}, this nst reads format {FORMAT_VERSION}; export it again"
        )

    missing = [key for key in _REQUIRED if key not in props]
    if missing:
        raise ModelError(f"{path}: nst metadata is incomplete (no nst.{missing[0]}); export it again")

    def split(key: str) -> tuple[str, ...]:
        return tuple(v for v in props[key].split(",") if v)

    try:
        mean = np.array([float(v) for v in split("mean_pixel")], dtype=np.float32)
    except ValueError:
        mean = np.empty(0, dtype=np.float32)
    if mean.shape != (3,) or not split("layers"):
        raise ModelError(f"{path}: nst metadata is incomplete (layers or mean pixel); export it again")
    try:
        static = None if props["static"] == "dynamic" else tuple(int(v) for v in props["static"].split("x"))
        opset = int(props["opset"])
    except ValueError:
        raise ModelError(f"{path}: nst metadata is corrupt (opset or static shape); export it again") from None
    if static is not None and len(static) != 3:
        raise ModelError(f"{path}: nst.static must be NxHxW, not {props['static']!r}; export it again")
    return ModelInfo(
        path=Path(path),
        architecture=props["architecture"],
        layers=split("layers"),
        grams=split("grams"),
        pooling=props["pooling"],
        mean_pixel=mean,
        weights_sha256=props["weights_sha256"],
        source_sha256=props["source_sha256"],
        kernel_axes=props["kernel_axes"],
        gram_normalization=props["gram_normalization"],
        opset=opset,
        precision=props["precision"],
        io=props["io"],
        static=static,  # three ints, checked above
        outputs=props["outputs"],
        gram_precision=props["gram_precision"],
        quantize="" if props["quantize"] == "none" else props["quantize"],
        calibration=props["calibration"],
        weights_format=props["weights_format"],
        weights_layout=props["weights_layout"],
        layout_source=props["layout_source"],
    )


# Every nst.* key `ModelInfo.to_props` writes: a file of this format version holds them all.
_REQUIRED = (
    "architecture",
    "layers",
    "grams",
    "gram_normalization",
    "mean_pixel",
    "pooling",
    "kernel_axes",
    "source_sha256",
    "weights_sha256",
    "opset",
    "precision",
    "io",
    "static",
    "outputs",
    "gram_precision",
    "quantize",
    "calibration",
    "weights_format",
    "weights_layout",
    "layout_source",
)


def read_model_info(path: str | Path) -> ModelInfo:
    """The metadata of the extractor at `path` (its weights are not loaded)."""
    return model_info(load_onnx(path, load_weights=False), path)
