"""The onnxruntime extractor: named VGG features and Grams of an image batch (Contract 1).

`OrtExtractor` opens an exported `.onnx` with the best usable execution provider (CUDA when
onnxruntime-gpu can really use a GPU here, else the CPU) and runs batches through it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nst.contract import ModelInfo, load_onnx, model_info
from nst.errors import ConfigError, LayerError, ModelError

PROVIDERS: tuple[str, ...] = ("auto", "cpu", "cuda")
_ORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads share a core's FPUs, so ORT and
    torch run fastest with one thread per physical core)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    with contextlib.suppress(OSError):
        physical = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "physical id":
                physical = value
            elif key == "core id":
                core = value
                cores.add((physical, core))
    return max(1, min(allowed, len(cores) if cores else allowed))


@functools.lru_cache(maxsize=1)
def cuda_unavailable_reason() -> str | None:
    """None when onnxruntime can run on a CUDA GPU here, else why not (one phrase).

    Cheap and silent: the CUDA driver library is loaded and asked for devices before
    onnxruntime ever tries its CUDA provider, which would print load errors on a machine
    without a GPU. The CUDA/cuDNN libraries that torch's wheels ship are preloaded.
    """
    import onnxruntime as ort

    if _ORT_NAMES["cuda"] not in ort.get_available_providers():
        return f"this onnxruntime ({ort.__version__}) has no CUDA provider; install onnxruntime-gpu"
    driver = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(driver)
    except OSError:
        return f"the CUDA driver ({driver}) is not installed"
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "the CUDA driver finds no GPU"
    if hasattr(ort, "preload_dlls"):
        # It prints its warnings; keep them off the user's terminal (we report our own).
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            ort.preload_dlls()
    return None


def resolve_providers(provider: str) -> list[str]:
    """onnxruntime provider names for `auto`, `cpu` or `cuda`; a clear error when unusable."""
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    if provider == "cpu":
        return [_ORT_NAMES["cpu"]]
    reason = cuda_unavailable_reason()
    if reason is None:
        return [_ORT_NAMES["cuda"], _ORT_NAMES["cpu"]]
    if provider == "cuda":
        raise ConfigError(f"provider cuda is not usable: {reason}; use --provider cpu (or auto)")
    return [_ORT_NAMES["cpu"]]


class OrtExtractor:
    """An exported extractor opened in onnxruntime.

    `run(batch)` takes float32 (N, 3, H, W) RGB 0-255 images (all of one shape) and returns
    the graph's outputs by name: features `relu4_2` (N, C, h, w) and Grams `gram_relu1_1`
    (N, C, C), normalized as `nst.contract.gram`.
    """

    def __init__(
        self,
        model_path: str | Path,
        provider: str = "auto",
        threads: int | None = None,
        arena: bool = True,
        info: ModelInfo | None = None,
    ):
        import onnxruntime as ort

        providers = resolve_providers(provider)
        self.path = Path(model_path)
        # `info`: the file's metadata when the caller has parsed it already (stylize's mirror).
        self.info: ModelInfo = info if info is not None else model_info(load_onnx(self.path), self.path)
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, not {threads}")
        self.threads = threads or physical_cores()

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain of convs: nothing to run in parallel
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # The CPU arena reuses buffers across runs (precompute: 15% faster at 512 px) but keeps
        # them reserved until the session dies; stylize turns it off so that its PyTorch loop
        # does not pay for both (measured: 250 MiB lower peak RSS at 512 px).
        options.enable_cpu_mem_arena = arena
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime's own Fail / InvalidGraph / RuntimeException
            text = " ".join(str(exc).split())[:120]
            raise ModelError(
                f"onnxruntime cannot open {self.path} ({text}); export it again with `nst export-vgg`"
            ) from None
        used = self.session.get_providers()
        if provider == "cuda" and _ORT_NAMES["cuda"] not in used:
            raise ConfigError(
                "provider cuda could not start (missing CUDA or cuDNN libraries?); use --provider cpu (or auto)"
            )
        self.provider = "cuda" if _ORT_NAMES["cuda"] in used else "cpu"
        self.input_name = self.session.get_inputs()[0].name
        self.output_names: tuple[str, ...] = tuple(o.name for o in self.session.get_outputs())

    def run(self, batch: np.ndarray, outputs: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs `outputs` (default: all) of the graph for `batch` (N, 3, H, W), by name."""
        names = list(outputs) if outputs is not None else list(self.output_names)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise LayerError(f"{self.path} has no output {unknown[0]!r}; it has {', '.join(self.output_names)}")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ConfigError(f"expected images of shape (N, 3, H, W), got {batch.shape}")
        values = self.session.run(names, {self.input_name: batch})
        return dict(zip(names, values))
