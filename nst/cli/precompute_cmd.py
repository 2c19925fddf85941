"""`nst precompute-style`: style images -> a style-targets file of Grams, for `nst stylize`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from nst.cli.options import choice, comma_list, ranged
from nst.runtime.config import PrecomputeConfig, Provider

_DEFAULTS = PrecomputeConfig()


@click.command("precompute-style")
@click.argument("styles", metavar="STYLE...", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-m",
    "--model",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The ONNX extractor (from `nst export-vgg`).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The style-targets file to write.",
)
@click.option(
    "--size",
    type=ranged("size", int),
    default=_DEFAULTS.size,
    show_default=True,
    help="Each style image's long side in px (times each scale).",
)
@click.option(
    "--style-scales",
    type=comma_list("style_scales"),
    default=",".join(map(str, _DEFAULTS.style_scales)),
    show_default=True,
    help="Scale factors (comma-separated); one set of Grams per style and scale.",
)
@click.option(
    "--batch-size",
    type=ranged("batch_size", int),
    default=_DEFAULTS.batch_size,
    show_default=True,
    help="Images of equal size run through the network together, up to this many.",
)
@click.option(
    "--provider",
    type=choice(Provider),
    default=_DEFAULTS.provider,
    show_default=True,
    help="onnxruntime execution provider; auto: CUDA when usable, else the CPU (with a note why).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def precompute_style(
    styles: tuple[Path, ...],
    model: Path,
    output: Path,
    size: int,
    style_scales: tuple[float, ...],
    batch_size: int,
    provider: Provider,
    overwrite: bool,
) -> None:
    """Compute the Gram matrices of STYLE images once, for later `nst stylize` runs."""
    from tqdm import tqdm

    from nst.fileio import check_writable
    from nst.runtime.grams import compute_style_targets
    from nst.runtime.targets import save_targets

    config = PrecomputeConfig(size=size, style_scales=style_scales, batch_size=batch_size, provider=provider)
    check_writable(output, overwrite=overwrite)  # before the slow part
    start = time.perf_counter()
    total = len(styles) * len(config.style_scales)
    with tqdm(total=total, unit="image", desc="style Grams", leave=False, file=sys.stderr, disable=None) as bar:
        targets = compute_style_targets(
            model,
            styles,
            config=config,
            progress=bar.update,
            notify=lambda line: bar.write(f"note: {line}", file=sys.stderr),
        )
    save_targets(targets, output, overwrite=overwrite)
    size_mb = output.stat().st_size / 1e6
    scales = ",".join(f"{s:g}" for s in config.style_scales)
    click.echo(
        f"wrote {output}: {len(targets.sources)} styles x {len(config.style_scales)} scales ({scales}), "
        f"{len(targets.layers)} layers ({','.join(targets.layers)}), {size_mb:.1f} MB in "
        f"{time.perf_counter() - start:.1f} s"
    )
