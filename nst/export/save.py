"""Reading weights and writing the exported extractor to disk, atomically."""

from __future__ import annotations

from pathlib import Path

from nst.export.onnx_graph import ExportConfig, build_onnx
from nst.fileio import atomic_path, check_writable
from nst.models.matconvnet import read_matconvnet


def export_vgg_file(weights: str | Path, output: str | Path, config: ExportConfig = ExportConfig(),
                    overwrite: bool = False, weights_sha256: str | None = None):
    """Read a `.mat`, build the extractor and write it to `output`; return its `ModelInfo`.
    `weights_sha256`, if known, spares hashing the weights file again."""
    import onnx

    from nst.runtime.model_info import model_info

    check_writable(output, overwrite)  # before the slow part
    vgg = read_matconvnet(weights, swap_kernel_axes=config.swap_kernel_axes, sha256=weights_sha256)
    model = build_onnx(vgg, config)
    with atomic_path(output, overwrite=overwrite) as tmp:
        onnx.save_model(model, str(tmp))
    return model_info(model, output)
