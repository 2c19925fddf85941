"""`nst check-model`: run an exported extractor in each runtime against a float32 PyTorch mirror."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from nst.check import CheckConfig, CheckProvider, Runtime
from nst.cli.options import Shape, choice

_DEFAULTS = CheckConfig()
_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command("check-model")
@click.argument("model", type=_PATH)
@click.option(
    "--runtime",
    type=choice(Runtime),
    default=_DEFAULTS.runtime,
    show_default=True,
    help="Where to run the model; a runtime that is not installed is listed as skipped.",
)
@click.option(
    "--provider",
    type=choice(CheckProvider),
    default=_DEFAULTS.provider,
    show_default=True,
    help="onnxruntime's execution provider.",
)
@click.option("--image", type=_PATH, help="Input image, cropped to --size.  [default: examples/chelsea.jpg]")
@click.option(
    "--size",
    type=Shape(2),
    metavar="HxW",
    help="Input size.  [default: a static model's own, else 128x128]",
)
@click.option(
    "--weights",
    type=_PATH,
    metavar="SOURCE",
    help="Build the reference from the weights file (.mat, .pth, ...) the model was exported from (its SHA-256 "
    "must match), "
    "so that a graph that does not hold its weights fails.  [default: the model's own weights]",
)
def check_model_cmd(
    model: Path,
    runtime: Runtime,
    provider: CheckProvider,
    image: Path | None,
    size: tuple[int, int] | None,
    weights: Path | None,
) -> None:
    """Run MODEL in onnxruntime, onnx's reference evaluator and OpenVINO, and compare every
    output with a float32 PyTorch mirror; exit 1 if any is outside its tolerance."""
    from nst.check import check_model

    config = CheckConfig(runtime=runtime, provider=provider, image=image, size=size, weights=weights)
    bars = _RuntimeBars()
    try:
        report = check_model(model, config=config, progress=bars)
    finally:
        bars.close()
    click.echo(report.table())
    if not report.ok:
        sys.exit(1)


SLOW_REFERENCE = (
    "onnx-reference: onnx's evaluator is pure Python and takes minutes on large or fp16 graphs "
    "(--runtime onnxruntime skips it)"
)


class _RuntimeBars:
    """check_model's progress on stderr: a line before the slow reference evaluator, and a bar
    per runtime (its timed runs, or the reference evaluator's nodes) where stderr is a terminal."""

    def __init__(self) -> None:
        self.runtime: str | None = None
        self.bar: Any = None

    def __call__(self, runtime: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if runtime != self.runtime:
            self.close()
            self.runtime = runtime
            if runtime == "onnx-reference":
                click.echo(SLOW_REFERENCE, err=True)
            unit = "node" if runtime == "onnx-reference" else "run"
            self.bar = tqdm(total=total, desc=runtime, unit=unit, file=sys.stderr, leave=False, disable=None)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
