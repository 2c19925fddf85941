"""`nst export-vgg`: VGG weights (.mat, .pth, .safetensors, ONNX classifier) -> truncated ONNX extractor."""

from __future__ import annotations

import time
from pathlib import Path

import click

from nst.cli.options import CommaList, Opset, Shape, choice
from nst.contract import ModelInfo
from nst.export.onnx_graph import MIN_OPSET, ExportConfig, ExportPrecision, IOType, Outputs, Quantize
from nst.models import registry
from nst.models.convention import LayoutChoice
from nst.models.layers import Pooling

_DEFAULTS = ExportConfig()


@click.command("export-vgg")
@click.argument("weights", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True, help="The ONNX file to write."
)
@click.option(
    "--layers",
    type=CommaList(),
    default=",".join(_DEFAULTS.layers),
    show_default=True,
    help="Layers to output (comma-separated); the graph ends after the deepest.",
)
@click.option(
    "--pooling", type=choice(Pooling), default=_DEFAULTS.pooling, show_default=True, help="Pooling between blocks."
)
@click.option(
    "--grams/--no-grams",
    default=_DEFAULTS.grams,
    show_default=True,
    help="Also output gram_<layer> for the style layers relu1_1 ... relu5_1.",
)
@click.option(
    "--swap-kernel-axes",
    is_flag=True,
    default=_DEFAULTS.swap_kernel_axes,
    help="Swap the kernels' spatial axes like anishathalye/neural-style (compatibility; "
    "MatConvNet's own order is the default).",
)
@click.option(
    "--opset",
    type=Opset(),
    default=_DEFAULTS.opset,
    show_default=True,
    help=f"ONNX opset, {MIN_OPSET} to the installed onnx's newest (onnxruntime reads what it supports).",
)
@click.option(
    "--precision",
    type=choice(ExportPrecision),
    default=_DEFAULTS.precision,
    show_default=True,
    help="The convolutions' weights and arithmetic (Grams are float32 in every graph).",
)
@click.option(
    "--io",
    type=choice(IOType),
    default=_DEFAULTS.io,
    show_default=True,
    help="Element type of the input and outputs; the graph casts to --precision inside.",
)
@click.option(
    "--static",
    type=Shape(3),
    metavar="NxHxW",
    help="Fix the batch and image size (TensorRT, CoreML, NPUs).  [default: dynamic]",
)
@click.option(
    "--outputs",
    type=choice(Outputs),
    default=_DEFAULTS.outputs,
    show_default=True,
    help="all: features and Grams; grams: only the Grams (the graph ends at the deepest style layer).",
)
@click.option(
    "--quantize",
    type=choice(Quantize),
    help="Static QDQ quantization of the convolutions with onnxruntime (Grams stay float).",
)
@click.option(
    "--calibrate",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of images to calibrate --quantize with.  [default: the repository's examples/]",
)
@click.option(
    "--weights-layout",
    type=choice(LayoutChoice),
    default=_DEFAULTS.weights_layout,
    show_default=True,
    help="The input a .pth/.safetensors/.onnx file expects: torchvision (RGB, normalized by mean and std) or "
    "caffe (BGR 0-255 minus the mean); auto: from a known file's hash, its keys or its preprocessing.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def export_vgg(
    weights: Path,
    output: Path,
    layers: tuple[str, ...],
    pooling: Pooling,
    grams: bool,
    swap_kernel_axes: bool,
    opset: int,
    precision: ExportPrecision,
    io: IOType,
    static: tuple[int, int, int] | None,
    outputs: Outputs,
    quantize: Quantize | None,
    calibrate: Path | None,
    weights_layout: LayoutChoice,
    overwrite: bool,
) -> None:
    """Convert VGG-16/19 WEIGHTS into an ONNX feature extractor: MatConvNet's .mat, a PyTorch
    .pth or .safetensors state dict (torchvision's or a Caffe conversion), or an ONNX VGG
    classifier.

    WEIGHTS may also name known weights (vgg19, vgg19-2015, vgg16, vgg19-torchvision,
    vgg19-caffe, ...): they are downloaded into the cache first (see `nst download-weights`).
    """
    from nst.export.save import export_vgg_file

    config = ExportConfig(
        layers=layers,
        pooling=pooling,
        grams=grams,
        swap_kernel_axes=swap_kernel_axes,
        opset=opset,
        precision=precision,
        io=io,
        static=static,
        outputs=outputs,
        quantize=quantize,
        calibrate=calibrate,
        weights_layout=weights_layout,
    )
    if not weights.exists() and registry.is_known(str(weights)):  # a registry name: download to the cache
        from nst.cli.cache_cmd import download_bar, echo_step
        from nst.fileio import check_writable
        from nst.models.cache import ensure_weights

        check_writable(output, overwrite=overwrite)  # before a 500 MB download, not after
        with download_bar(registry.get(str(weights)).file_name) as progress:
            weights = ensure_weights(str(weights), progress=progress, notify=echo_step)
    start = time.perf_counter()
    info = export_vgg_file(weights, output, config, overwrite=overwrite)
    size_mb = output.stat().st_size / 1e6
    if info.feature_outputs:
        what = f"{len(info.layers)} layers" + (f" + {len(info.grams)} grams" if info.grams else "")
    else:
        what = f"{len(info.grams)} grams only"
    deploy = ""
    if info.is_deployment or info.opset != _DEFAULTS.opset:
        deploy = f" as {info.describe()} (opset {info.opset}, {info.io} input and outputs)"
    click.echo(
        f"exported {info.architecture} ({_source(info)}{info.pooling} pooling; {what}: {','.join(info.layers)}) "
        f"to {output}{deploy}, {size_mb:.1f} MB in {time.perf_counter() - start:.1f} s"
    )


_KNOWN_BY = {
    "hash": "known by its hash",
    "keys": "detected from its keys",
    "preprocessing": "detected from its preprocessing nodes",
    "option": "as --weights-layout says",
}


def _source(info: ModelInfo) -> str:
    """'from a .pth in Caffe's layout, detected from its keys; ' ('' for a .mat)."""
    if info.weights_format == "mat":
        return ""
    layout = {"torchvision": "torchvision's layout", "caffe": "Caffe's layout", "onnx": "its own preprocessing"}
    what = layout.get(info.weights_layout, info.weights_layout)
    return f"from a .{info.weights_format} in {what}, {_KNOWN_BY.get(info.layout_source, info.layout_source)}; "
