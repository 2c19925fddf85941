"""Where and in what precision the network runs: the device, autocast, the memory layout."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch

from nst.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """auto -> cuda when available, else cpu; asking for cuda without one is an error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda: no CUDA device is available (this torch build or machine has none); use --device cpu"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}") from None


def precision_name(device: torch.device, precision: str) -> str:
    """fp32, bf16 or fp16: what `precision` means on `device`. "auto" is bf16 on CUDA (tensor
    cores; bf16's range needs no loss scaling) and float32 on the CPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


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
    """NHWC, the layout tensor cores want; on this CPU path it measured no gain."""
    return device.type == "cuda"
