"""`nst download-weights` and `nst cache list|clear`, plus the download progress bar other commands share."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Literal

import click

from nst.models import registry
from nst.models.download import ProgressFn


@contextlib.contextmanager
def download_bar(label: str = "download") -> Iterator[ProgressFn]:
    """A tqdm bar (bytes, size, speed, ETA) on stderr, fed by the downloader's progress callback.

    The bar appears on the first call, so nothing is drawn when nothing is downloaded.
    """
    from tqdm import tqdm

    bar: tqdm | None = None

    def update(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(
                total=total,
                initial=done,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
            )
            return
        if total != bar.total:
            bar.total = total
        if done < bar.n:  # the server ignored Range: the download starts again from zero
            bar.reset(total=total)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def echo_step(message: str) -> None:
    """The `notify` callback of the cache functions: one line per step, on stderr."""
    click.echo(message, err=True)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


@click.command("download-weights")
@click.argument("name", type=click.Choice(list(registry.names())), default=registry.DEFAULT_WEIGHTS)
def download_weights(name: str) -> None:
    """Download known weights NAME into the cache (verified; resumed when cut); print the path.

    Set NST_WEIGHTS_URL to fetch from a mirror ($NST_WEIGHTS_URL/<file name>).
    """
    from nst.models.cache import ensure_weights

    with download_bar(registry.get(name).file_name) as progress:
        path = ensure_weights(name, progress=progress, notify=echo_step)
    click.echo(str(path))


@click.group("cache")
def cache() -> None:
    """The cache folder ($NST_HOME, else the user cache folder): weights and exported models."""


@cache.command("list")
def cache_list() -> None:
    """List cached weights, partial downloads and exported models."""
    from nst.models.cache import cache_dir
    from nst.models.cache_contents import list_cache

    files = list_cache()
    click.echo(f"cache folder: {cache_dir()}")
    if not files:
        click.echo("(empty)")
        return
    for item in files:
        mine = "" if item.owned else "; not nst's: cache clear leaves it"
        click.echo(f"{item.kind:8} {_size(item.size):>9}  {item.path.name}  ({item.description}{mine})")
    click.echo(f"total {_size(sum(item.size for item in files))} in {len(files)} files")


@cache.command("clear")
@click.option(
    "--only",
    "what",
    type=click.Choice(["weights", "models"]),
    default=None,
    help="Delete only the weights (and partial downloads) or only the exported models.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(what: Literal["weights", "models"] | None, yes: bool) -> None:
    """Delete what nst put in the cache (everything unless --only); files placed by hand stay."""
    from nst.models.cache import cache_dir
    from nst.models.cache_contents import clear_cache

    scope: Literal["all", "weights", "models"] = what or "all"
    label = {"all": "all weights and models", "weights": "all weights", "models": "all exported models"}[scope]
    if not yes:
        click.confirm(f"delete {label} in {cache_dir()}?", abort=True)
    done = clear_cache(scope)
    click.echo(f"deleted {done.count} files ({_size(done.size)}) from {cache_dir()}")
    if done.left:
        names = ", ".join(path.name for path in done.left)
        click.echo(f"left {len(done.left)} file(s) that nst did not put there: {names}")
