"""What the run's hardware does with the precision asked for: the line naming the precision and
device a run uses, and the warning for bf16 on a CPU that can only emulate it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch

from nst.runtime.device import cpu_has_bf16, precision_name

# A 512 px L-BFGS iteration in emulated bf16 took 151 s where float32 took about 3 s (AMD EPYC, AVX2).
EMULATED_BF16_SLOWDOWN = 50


def precision_line(device: torch.device, precision: str, *, has_bf16: Callable[[], bool] | None = None) -> str:
    """ "nst: bf16 on cpu (Intel Xeon ..., bf16 units)": the precision and device a run uses,
    said as its first line. `has_bf16` tells whether the CPU multiplies bf16 in hardware
    (default: `cpu_has_bf16`, looked up at the call, so that a test can stand in another CPU)."""
    used = {"fp32": "float32", "bf16": "bf16", "fp16": "fp16"}[precision_name(device, precision)]
    if device.type == "cuda":
        return f"nst: {used} on {device} ({torch.cuda.get_device_name(device)})"
    units = "bf16 units" if (has_bf16 or cpu_has_bf16)() else "no bf16 units"
    return f"nst: {used} on {device} ({cpu_model()}, {units})"


def emulated_bf16(device: torch.device, precision: str, *, has_bf16: Callable[[], bool] | None = None) -> str | None:
    """The one-line warning for bf16 on a CPU without bf16 matrix units (AMX or AVX512-BF16),
    where oneDNN emulates it far slower than float32; None when it does not apply. A warning,
    not a refusal: the result is right, only slow, and small tests or sizes may want it."""
    if device.type != "cpu" or precision_name(device, precision) != "bf16" or (has_bf16 or cpu_has_bf16)():
        return None
    return (
        f"--precision bf16 on this CPU ({cpu_model()}) is emulated: it has no AMX or AVX512-BF16 units, and runs "
        f"about {EMULATED_BF16_SLOWDOWN}x slower than float32; use --precision auto or fp32"
    )


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    names = (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
    return next(names, "unknown CPU")
