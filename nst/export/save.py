"""Reading weights and writing the exported extractor to disk, atomically."""

from __future__ import annotations

from pathlib import Path

from nst.contract import ModelInfo, model_info
from nst.export.onnx_graph import ExportConfig, build_onnx, check_graph
from nst.export.quantize import calibration_paths, quantize_int8
from nst.fileio import atomic_path, check_writable
from nst.models.readers import read_weights


def export_vgg_file(
    weights: str | Path,
    output: str | Path,
    config: ExportConfig = ExportConfig(),
    *,
    overwrite: bool = False,
    source_sha256: str | None = None,
) -> ModelInfo:
    """Read weights (.mat, .pth, .safetensors or an ONNX classifier), build the extractor
    (quantized, with `config.quantize`) and write it to `output`; return its `ModelInfo`.
    `source_sha256`, the weights file's hash if known, spares hashing it again."""
    import onnx

    check_writable(output, overwrite=overwrite)  # before the slow part
    if config.quantize == "int8":
        calibration_paths(config.calibrate)  # a missing calibration folder fails before the weights are read
    vgg = read_weights(
        weights, layout=config.weights_layout, swap_kernel_axes=config.swap_kernel_axes, sha256=source_sha256
    )
    model = build_onnx(vgg, config)
    if config.quantize == "int8":
        model = quantize_int8(model, calibrate=config.calibrate)
        check_graph(model)
    with atomic_path(output, overwrite=overwrite) as tmp:
        onnx.save_model(model, str(tmp))
    return model_info(model, output)
