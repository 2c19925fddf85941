"""Where a command's jobs run, the options stylize-batch and stylize-video share: --workers, or --ray
with its --cpus-per-task and --retries, grouped into an `Execution`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from nst.batch.execution import RAY_LOCAL, Execution
from nst.errors import ConfigError


def _ray_address(value: str | None) -> str | None:
    """--ray's address, checked when options are parsed (exit 2 for one that cannot be one)."""
    from nst.batch.execution import check_ray_address

    if value is None:
        return None
    try:
        return check_ray_address(value)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def execution_options(what: str) -> Callable[[Callable], Callable]:
    """Add --workers, --ray, --cpus-per-task and --retries to a command, which receives them as
    `execution` (an Execution; Ray's extra is checked here, before any work). `what` names a job in
    the help: "image", "shot"."""
    options = [
        click.option("--workers", type=click.IntRange(min=1),
                     help="Processes on this machine, each with its share of the cores as threads.  "
                     "[default: 1 on the CPU, one per GPU on CUDA]"),
        click.option("--ray", "ray_address", is_flag=False, flag_value=RAY_LOCAL,
                     callback=lambda ctx, param, value: _ray_address(value), metavar="[ADDRESS]",
                     help="Run on Ray (pip install 'nst[ray]'): alone, a local instance (or $RAY_ADDRESS); or the "
                     "cluster at ADDRESS (ray://HOST:10001, auto). Give it after the inputs, or as --ray=ADDRESS."),
        click.option("--cpus-per-task", type=click.IntRange(min=1), default=1, show_default=True,
                     help=f"Ray: CPUs, and as many threads, per {what} on nodes without a GPU."),
        click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                     help=f"Ray: times a task is retried when its worker dies, before its {what} is reported failed."),
    ]  # fmt: skip

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def grouped(**params: Any) -> Any:
            execution = Execution(
                workers=params.pop("workers"),
                ray=params.pop("ray_address"),
                cpus_per_task=params.pop("cpus_per_task"),
                retries=params.pop("retries"),
            )
            if execution.ray is not None:
                from nst.batch.cluster import import_ray
                from nst.batch.ray_connect import check_reachable

                import_ray()  # a missing extra, or no cluster at the address, is a one-line error before any work
                check_reachable(execution.ray)
            return command(execution=execution, **params)

        for option in reversed(options):
            grouped = option(grouped)
        return grouped

    return decorate
