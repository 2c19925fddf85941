"""Export of VGG weights to an ONNX feature extractor (no torch needed)."""

from nst.export.onnx_graph import ExportConfig, build_onnx

__all__ = ["ExportConfig", "build_onnx"]
