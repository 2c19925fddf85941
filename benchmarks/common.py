"""Shared pieces of the benchmarks: a random-weight model, FLOP counts, peaks and memory.

The benchmarks measure; they never assert. Every figure is printed beside the baseline it is
compared with, measured in the same run.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from nst.models.layers import DEFAULT_LAYERS, truncated_table

CACHE = Path(os.environ.get("NST_BENCH_CACHE", Path(tempfile.gettempdir()) / "nst-bench"))


def model_path(pooling: str = "max", layers: tuple[str, ...] = DEFAULT_LAYERS) -> Path:
    """A VGG-19 extractor with seeded random weights (the real file cannot be had here),
    built once and kept in $NST_BENCH_CACHE."""
    from nst.contract import read_model_info
    from nst.errors import ModelError
    from nst.export.onnx_graph import ExportConfig
    from nst.export.save import export_vgg_file
    from nst.models.synthetic import write_synthetic_mat

    CACHE.mkdir(parents=True, exist_ok=True)
    onnx_path = CACHE / f"vgg19-{pooling}-{len(layers)}.onnx"
    try:
        read_model_info(onnx_path)
        current = True
    except ModelError:  # missing, or exported by an older nst: export it again
        current = False
    if not current:
        mat = CACHE / "vgg19-seed0.mat"
        if not mat.exists():
            write_synthetic_mat(mat, "vgg19", "new", seed=0, fc="small")
        export_vgg_file(mat, onnx_path, ExportConfig(layers=layers, pooling=pooling), overwrite=True)
    return onnx_path


def forward_gflop(height: int, width: int, layers=DEFAULT_LAYERS, arch: str = "vgg19") -> float:
    """GFLOP of one forward pass through the truncated network (2 per multiply-add)."""
    flops = 0
    h, w = height, width
    for layer in truncated_table(arch, layers):
        if layer.kind == "conv":
            flops += 2 * 9 * layer.in_channels * layer.out_channels * h * w
        elif layer.kind == "pool":
            h, w = (h + 1) // 2, (w + 1) // 2
    return flops / 1e9


def matmul_peak_gflops(n: int = 2048, repeat: int = 10, dtype=None) -> float:
    """Measured matmul GFLOP/s (float32 unless `dtype`) with torch's current threads: the
    machine's practical peak for that precision."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def machine() -> str:
    """The CPU by model and its matrix units (AMX, AVX512-BF16, AVX2: bf16 is emulated without
    the first two), the cores and torch: every figure is printed beside this line."""
    import platform

    import torch

    return (
        f"{cpu_model() or platform.processor() or platform.machine()} ({', '.join(cpu_flags()) or 'flags unknown'}), "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")


def cpu_flags() -> list[str]:
    """Which of the flags that decide bf16 speed this CPU has (from /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [flag for flag in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if flag in flags] or ["no avx2"]


CONTENT = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
STYLE = Path(__file__).resolve().parent.parent / "examples" / "hubble-deep-field.jpg"
TIME_V = Path("/usr/bin/time")


def nst_command() -> list[str]:
    """The `nst` console script of this interpreter (not a pyenv shim, which adds its own start-up)."""
    import shutil
    import sys

    script = Path(sys.executable).parent / "nst"
    if script.exists():
        return [str(script)]
    found = shutil.which("nst")
    return [found] if found else [sys.executable, "-c", "from nst.cli import main; main()"]


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run `cmd`; return (wall seconds, its peak RSS in MiB). The RSS comes from
    /usr/bin/time -v when present, else from RUSAGE_CHILDREN (the largest child so far: only
    right while each run is at least as large as the ones before). Raises on failure."""
    import subprocess

    wrapped = [str(TIME_V), "-v", *cmd] if TIME_V.exists() else cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(wrapped, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    if TIME_V.exists():
        line = next(row for row in done.stderr.splitlines() if "Maximum resident set size" in row)
        return seconds, int(line.rsplit(":", 1)[1]) / 1024
    return seconds, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def config_fields() -> set[str]:
    """StylizeConfig's field names (options such as low_memory or compile may not exist yet)."""
    from dataclasses import fields

    from nst.runtime.config import StylizeConfig

    return {f.name for f in fields(StylizeConfig)}
