"""What an exported extractor says about itself: the `nst.*` metadata of an ONNX file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nst.errors import ModelError


@dataclass(frozen=True)
class ModelInfo:
    """The metadata that `nst export-vgg` writes into `metadata_props`."""

    path: Path
    architecture: str
    layers: tuple[str, ...]
    grams: tuple[str, ...]
    pooling: str
    mean_pixel: np.ndarray  # (3,) float32
    weights_sha256: str
    source_sha256: str
    kernel_axes: str
    gram_normalization: str


def load_onnx(path: str | Path, load_weights: bool = True):
    """`onnx.load` with a clear error for a missing or corrupt file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}; create one with `nst export-vgg WEIGHTS -o {path}`")
    try:
        return onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(f"cannot read {path} as an ONNX model ({exc}); export it again with `nst export-vgg`") from None


def model_info(model, path: str | Path) -> ModelInfo:
    """Parse and check the nst metadata of a loaded `ModelProto`."""
    props = {p.key: p.value for p in model.metadata_props}
    if "nst.format" not in props:
        raise ModelError(f"{path} is an ONNX model but not an nst extractor (no nst.* metadata); export one with `nst export-vgg`")
    if props["nst.format"] != "1":
        raise ModelError(f"{path} has nst format {props['nst.format']}, this nst reads format 1; export it again")

    def split(key: str) -> tuple[str, ...]:
        return tuple(v for v in props.get(key, "").split(",") if v)

    try:
        mean = np.array([float(v) for v in split("nst.mean_pixel")], dtype=np.float32)
    except ValueError:
        mean = np.empty(0, dtype=np.float32)
    if mean.shape != (3,) or not split("nst.layers"):
        raise ModelError(f"{path}: nst metadata is incomplete (layers or mean pixel); export it again")
    return ModelInfo(
        path=Path(path),
        architecture=props.get("nst.architecture", ""),
        layers=split("nst.layers"),
        grams=split("nst.grams"),
        pooling=props.get("nst.pooling", "max"),
        mean_pixel=mean,
        weights_sha256=props.get("nst.weights_sha256", ""),
        source_sha256=props.get("nst.source_sha256", ""),
        kernel_axes=props.get("nst.kernel_axes", "hw"),
        gram_normalization=props.get("nst.gram_normalization", ""),
    )
