"""The memory guard before torch loads: a CPU run too large for the RAM is refused from the
content's header alone, in well under a second, with the guard's own estimate and message."""

from __future__ import annotations

from pathlib import Path

from nst.runtime.config import StylizeConfig
from nst.runtime.images import probe_image, resized_shape
from nst.runtime.memory import check_fits, estimate_peak

# Present where an NVIDIA driver is loaded: then "auto" may mean CUDA, which only torch can tell.
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")
# What --precision auto is on the CPU (nst.runtime.device.precision_name, which imports torch;
# a test holds the two together).
AUTO_ON_CPU = "fp32"


def check_memory_early(content: Path, config: StylizeConfig) -> None:
    """Raise ResourceError when a run on the CPU surely would not fit: the same estimate and
    message as the guard after the model loads (the largest stage is the full size), never
    larger than its (one L-BFGS pair when coarse to fine splits the iterations), so that this
    check refuses only what the later one would. A run that may go to CUDA is left to that one."""
    if not (config.device == "cpu" or (config.device == "auto" and not NVIDIA_DRIVER.exists())):
        return
    size = resized_shape(probe_image(content), long_side=config.size, width=config.width)
    estimate = estimate_peak(
        [size],
        optimizer=config.optimizer,
        lbfgs_history=config.lbfgs_history,
        iterations=config.iterations if config.scales == 1 else 1,
        precision=AUTO_ON_CPU if config.precision == "auto" else config.precision,
        low_memory=config.low_memory,
    )
    check_fits(estimate, device="cpu", optimizer=config.optimizer, low_memory=config.low_memory, size=max(size))
