"""`nst export-vgg`: MatConvNet weights -> truncated ONNX extractor."""

from __future__ import annotations

import time
from pathlib import Path

import click

from nst.cli.options import CommaList, choice
from nst.export.onnx_graph import ExportConfig
from nst.models import registry
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
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def export_vgg(
    weights: Path,
    output: Path,
    layers: tuple[str, ...],
    pooling: Pooling,
    grams: bool,
    swap_kernel_axes: bool,
    overwrite: bool,
) -> None:
    """Convert MatConvNet VGG-16/19 WEIGHTS (.mat) into an ONNX feature extractor.

    WEIGHTS may also name known weights (vgg19, vgg19-2015, vgg16): they are downloaded
    into the cache first (see `nst download-weights`).
    """
    from nst.export.save import export_vgg_file

    config = ExportConfig(layers=layers, pooling=pooling, grams=grams, swap_kernel_axes=swap_kernel_axes)
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
    gram_text = f" + {len(info.grams)} grams" if info.grams else ""
    click.echo(
        f"exported {info.architecture} ({info.pooling} pooling; {len(info.layers)} layers{gram_text}: "
        f"{','.join(info.layers)}) to {output}, {size_mb:.1f} MB in {time.perf_counter() - start:.1f} s"
    )
