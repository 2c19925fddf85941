"""How a batch runs: in this process, in local worker processes, or on a Ray cluster.
Torch-free, so the CLI checks it before any work."""

from __future__ import annotations

from dataclasses import dataclass

from nst.errors import ConfigError

# --ray without an address: start a local Ray instance (or join $RAY_ADDRESS's cluster).
RAY_LOCAL = "local"


@dataclass(frozen=True)
class Execution:
    """Where a batch's jobs run. `workers`: processes on this machine (None: one on the CPU,
    one per GPU on CUDA), each with its share of the cores. `ray`: None, RAY_LOCAL, "auto" or
    a cluster address (ray://host:10001, host:6379); then `cpus_per_task` CPUs per task off
    GPU nodes, and a task whose worker dies is retried `retries` times."""

    workers: int | None = None
    ray: str | None = None
    cpus_per_task: int = 1
    retries: int = 2

    def __post_init__(self) -> None:
        if self.workers is not None and self.ray is not None:
            raise ConfigError("give --workers or --ray, not both (Ray decides how many tasks run at once)")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.cpus_per_task < 1:
            raise ConfigError(f"--cpus-per-task must be at least 1, got {self.cpus_per_task}")
        if self.retries < 0:
            raise ConfigError(f"--retries must not be negative, got {self.retries}")
        if self.ray is not None:
            check_ray_address(self.ray)


def check_ray_address(address: str) -> str:
    """`address` when it can name a Ray cluster (RAY_LOCAL, auto, or with a port), else ConfigError."""
    if address in (RAY_LOCAL, "auto") or ":" in address:
        return address
    raise ConfigError(
        f"--ray takes an address such as ray://HOST:10001 or auto, got {address!r} "
        "(give --ray after CONTENT, or as --ray=ADDRESS)"
    )
