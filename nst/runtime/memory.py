"""The memory guard: estimate a run's peak memory before any work, and refuse what cannot fit.

The estimate is a fit to what `benchmarks/memory.py` measures (peak RSS of `nst stylize` on
the CPU, at several sizes, for each precision and with and without --low-memory):

    peak = BASE + per_pixel(precision, low_memory) * pixels of the largest stage
         + optimizer state (Adam: 2 image-sized buffers; L-BFGS: 2 per kept pair)
         + a few image-sized buffers (the iterate, the best image, the gradient)

On CUDA the same per-pixel figures are used for the device (its activations are the same
tensors), against the free memory `torch.cuda.mem_get_info` reports.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nst.errors import ResourceError

MIB = 2**20
# Fitted by benchmarks/memory.py (benchmarks/README.md, "Memory"), by (precision, low_memory):
# MiB at no pixels (torch, the weights, onnxruntime's style pass), and bytes per pixel of the
# largest stage (activations kept for the backward and its transients). Measured on the CPU,
# 256 to 1024 px, 2026-11-28.
BASE_MIB = {("fp32", False): 421.0, ("fp32", True): 586.0, ("bf16", False): 449.0, ("bf16", True): 598.0}
PER_PIXEL = {("fp32", False): 2312.0, ("fp32", True): 1423.0, ("bf16", False): 1413.0, ("bf16", True): 845.0}
# The fit is a least-squares line; the estimate is made this much larger, so that it is not
# below any measured peak (measured: within 0.9 ... 1.1 of the line before it).
MARGIN = 1.12
# Besides the optimizer: the iterate, its gradient, the best image and a copy or two.
IMAGE_BUFFERS = 6
# Keep this share of the available memory free for the allocator's slack and everything else.
HEADROOM = 0.9


@dataclass(frozen=True)
class Estimate:
    """A run's estimated peak and its parts, in bytes."""

    peak: int
    base: int
    activations: int
    optimizer: int


def estimate_peak(
    stage_sizes: Sequence[tuple[int, int]],
    *,
    optimizer: str,
    lbfgs_history: int,
    iterations: int,
    precision: str,
    low_memory: bool,
) -> Estimate:
    """The peak memory of a run whose stages have these (height, width) sizes."""
    pixels = max(h * w for h, w in stage_sizes)
    image_bytes = 3 * pixels * 4  # one float32 (1, 3, H, W) image
    kind = ("bf16" if precision in ("bf16", "fp16") else "fp32", low_memory)
    activations = int(MARGIN * PER_PIXEL[kind] * pixels)
    if optimizer == "adam":
        state = 2 * image_bytes
    else:
        # Each kept pair holds s and y; the history fills one pair per iteration.
        state = 2 * min(lbfgs_history, max(1, iterations)) * image_bytes + 2 * image_bytes
    base = int(MARGIN * BASE_MIB[kind] * MIB) + IMAGE_BUFFERS * image_bytes
    return Estimate(peak=base + activations + state, base=base, activations=activations, optimizer=state)


def available_bytes(device: str = "cpu") -> int | None:
    """Memory this process can still use on `device` (None when it cannot be told)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return _available_ram()


def _available_ram() -> int | None:
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    # A container's memory limit (cgroup v2) may be lower than the machine's.
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            room = int(limit) - used
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def check_fits(estimate: Estimate, *, device: str, optimizer: str, low_memory: bool, size: int) -> None:
    """Raise ResourceError, naming the estimate, what is available and the ways out, when the
    run would not fit in the memory available on `device`."""
    available = available_bytes(device)
    if available is None or estimate.peak <= available * HEADROOM:
        return
    outs = [f"a smaller --size (now {size} px)"]
    if not low_memory:
        outs.append("--low-memory")
    if optimizer == "lbfgs":
        outs += ["--optimizer adam", "a shorter --lbfgs-history"]
    where = "GPU memory" if device.startswith("cuda") else "RAM"
    ways = outs[0] if len(outs) == 1 else f"{', '.join(outs[:-1])} or {outs[-1]}"
    raise ResourceError(
        f"this run needs about {_gib(estimate.peak)} of {where} and {_gib(available)} is available "
        f"(images {_gib(estimate.activations)}, optimizer {_gib(estimate.optimizer)}); try {ways}"
    )


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def out_of_memory(exc: BaseException) -> ResourceError | None:
    """The one-line error for an allocation that failed after all (torch's or onnxruntime's),
    or None when `exc` is something else."""
    text = str(exc)
    torch_oom = type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower()
    ort_oom = "bad_alloc" in text or "Failed to allocate memory" in text
    if isinstance(exc, MemoryError) or torch_oom or ort_oom:
        return ResourceError(
            "ran out of memory (the estimate before the run was too low for this machine); "
            "try a smaller --size, --low-memory or --optimizer adam"
        )
    return None
