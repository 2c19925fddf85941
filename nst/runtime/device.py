"""Where and in what precision the network runs: the device, autocast, the memory layout."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path

import torch

from nst.errors import ConfigError
from nst.runtime.config import check_device


def resolve_device(device: str | torch.device) -> torch.device:
    """auto -> cuda when available, else cpu; cuda (or cuda:N) that this machine does not have
    is an error (the names themselves follow `check_device`)."""
    name = check_device(str(device))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name}: no CUDA device is available (this torch build or machine has none); use --device cpu"
        )
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device(name)


def precision_name(device: torch.device, precision: str) -> str:
    """fp32, bf16 or fp16: what `precision` means on `device`. "auto" is bf16 on CUDA (tensor
    cores; bf16's range needs no loss scaling), float32 on the CPU until CPU_AUTO_BF16 allows
    bf16 on one with bf16 matrix units (AMX or AVX512-BF16)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and CPU_AUTO_BF16 and cpu_has_bf16() else "fp32"


# Whether "auto" may choose bf16 on a CPU that has bf16 units. Not yet: the loop benchmark
# keeps float32's quality, but an end-to-end 512 px L-BFGS run did not (benchmarks/README.md).
CPU_AUTO_BF16 = False


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (AMX-BF16 or AVX512-BF16).
    Asked of torch's cpuinfo (no work is run); /proc/cpuinfo's flags where torch cannot tell."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        try:
            found = capabilities()
            return bool(found.get("amx_bf16") or found.get("avx512_bf16"))
        except Exception:  # an older torch, or cpuinfo failed: fall back to the flags
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "amx_bf16" in flags or "avx512_bf16" in flags


def conv_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The convolutions' dtype for `precision` on `device`."""
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision_name(device, precision)]


def autocast(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the context the convolutions run in: autocast to bf16/fp16, or nothing
    for float32. Grams and losses are computed in float32 regardless (the terms cast)."""
    dtype = conv_dtype(device, precision)
    if dtype == torch.float32:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device.type, dtype=dtype)


def channels_last(device: torch.device) -> bool:
    """NHWC: the layout tensor cores want, and oneDNN's fastest on the CPU too (measured 12 %
    faster in float32 and about twice as fast in bf16 at 512 px, once the Grams read it
    without a copy: see nst.runtime.losses.gram)."""
    return device.type in ("cuda", "cpu")
