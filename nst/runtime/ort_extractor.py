"""The onnxruntime extractor: named VGG features and Grams of an image batch (Contract 1).

`OrtExtractor` opens an exported `.onnx` with the best usable execution provider (CUDA when
onnxruntime-gpu can really use a GPU here, else the CPU) or the one named, and runs batches
through it: float32 in and out whatever the graph's input type, any batch size on a static graph.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from nst.contract import ModelInfo, load_onnx, model_info
from nst.errors import ConfigError, LayerError, ModelError

PROVIDERS: tuple[str, ...] = ("auto", "cpu", "cuda", "tensorrt", "openvino")
_ORT_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
# The providers each choice runs on, in onnxruntime's order of preference.
_CHAINS = {
    "cpu": ("cpu",),
    "cuda": ("cuda", "cpu"),
    "tensorrt": ("tensorrt", "cuda", "cpu"),
    "openvino": ("openvino", "cpu"),
}
# TensorRT's runtime library, which onnxruntime's TensorRT provider loads (10 or newer).
_TENSORRT_LIBRARIES = (
    ("nvinfer_11.dll", "nvinfer_10.dll") if sys.platform == "win32" else ("libnvinfer.so.11", "libnvinfer.so.10")
)
Notify = Callable[[str], None]


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
    reason = _no_gpu_reason()
    if reason is not None:
        return reason
    if hasattr(ort, "preload_dlls"):
        # It prints its warnings; keep them off the user's terminal (we report our own).
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            ort.preload_dlls()
    return None


@functools.lru_cache(maxsize=1)
def _no_gpu_reason() -> str | None:
    """None when the CUDA driver loads and finds a GPU, else why not."""
    driver = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(driver)
    except OSError:
        return f"the CUDA driver ({driver}) is not installed"
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "the CUDA driver finds no GPU"
    return None


def provider_unavailable_reason(provider: str) -> str | None:
    """None when onnxruntime can run `provider` (cpu, cuda, tensorrt, openvino) here, else
    why not (one phrase). Silent: nothing is tried that would make onnxruntime print."""
    import onnxruntime as ort

    if provider == "cpu":
        return None
    if provider == "cuda":
        return cuda_unavailable_reason()
    if provider == "openvino":
        if _ORT_NAMES["openvino"] not in ort.get_available_providers():
            return (
                f"this onnxruntime ({ort.__version__}) has no OpenVINO provider; pip install onnxruntime-openvino "
                "in its place, or check the graph in OpenVINO itself: nst check-model --runtime openvino"
            )
        return None
    if provider == "tensorrt":
        if _ORT_NAMES["tensorrt"] not in ort.get_available_providers():
            return f"this onnxruntime ({ort.__version__}) has no TensorRT provider; install onnxruntime-gpu"
        reason = cuda_unavailable_reason()
        if reason is not None:
            return reason
        return _tensorrt_unavailable_reason()
    raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")


@functools.lru_cache(maxsize=1)
def _tensorrt_unavailable_reason() -> str | None:
    """None when TensorRT's library loads (from the library path, or the `tensorrt_libs`
    folder that `pip install tensorrt` fills, preloaded so that onnxruntime finds it)."""
    folders = [""]
    with contextlib.suppress(ImportError):
        import tensorrt_libs

        folders.append(str(Path(tensorrt_libs.__file__).parent) + os.sep)
    for folder in folders:
        for name in _TENSORRT_LIBRARIES:
            with contextlib.suppress(OSError):
                ctypes.CDLL(folder + name, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
                return None
    return f"TensorRT ({_TENSORRT_LIBRARIES[-1]} or newer) is not installed; pip install tensorrt"


def resolve_providers(provider: str, *, notify: Notify | None = None) -> list[str]:
    """onnxruntime provider names for `auto`, `cpu`, `cuda`, `tensorrt` or `openvino`.

    A provider named explicitly that cannot run here is a ConfigError. `auto` is CUDA when
    usable, else the CPU; when this machine has a GPU that onnxruntime cannot use (a missing
    provider or library), `notify(line)` gets one line saying so (the caller prints it;
    nothing is printed here). A machine without a GPU runs on the CPU without a word.
    """
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    if provider == "auto":
        reason = cuda_unavailable_reason()
        if reason is None:
            return [_ORT_NAMES[p] for p in _CHAINS["cuda"]]
        if notify is not None and _no_gpu_reason() is None:
            notify(f"onnxruntime runs on the CPU: its CUDA provider is not usable ({reason})")
        return [_ORT_NAMES["cpu"]]
    reason = provider_unavailable_reason(provider)
    if reason is not None:
        raise ConfigError(f"provider {provider} is not usable: {reason}; use --provider cpu (or auto)")
    return [_ORT_NAMES[p] for p in _CHAINS[provider]]


def check_provider(provider: str) -> None:
    """Fail now, before any work, when a provider named explicitly cannot run here (auto and
    cpu always can): what every command that runs a style pass checks first."""
    if provider not in ("auto", "cpu"):
        resolve_providers(provider)


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
        notify: Notify | None = None,
    ):
        import onnxruntime as ort

        self.path = Path(model_path)
        # `info`: the file's metadata when the caller has parsed it already (stylize's mirror).
        self.info: ModelInfo = info if info is not None else model_info(load_onnx(self.path), self.path)
        providers = resolve_providers(provider, notify=notify)  # after the model: its errors come first
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
        if provider not in ("auto", "cpu") and _ORT_NAMES[provider] not in used:
            missing = "CUDA or cuDNN" if provider == "cuda" else f"{provider} or CUDA"
            raise ConfigError(
                f"provider {provider} could not start (missing {missing} libraries?); use --provider cpu (or auto)"
            )
        self.provider = next(p for p in ("tensorrt", "cuda", "openvino", "cpu") if _ORT_NAMES[p] in used)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names: tuple[str, ...] = tuple(o.name for o in self.session.get_outputs())
        self.input_dtype = np.float16 if self.info.io == "fp16" else np.float32

    def run(self, batch: np.ndarray, outputs: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs `outputs` (default: all) of the graph for `batch` (N, 3, H, W), by name."""
        names = list(outputs) if outputs is not None else list(self.output_names)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise LayerError(f"{self.path} has no output {unknown[0]!r}; it has {', '.join(self.output_names)}")
        batch = np.ascontiguousarray(batch, dtype=self.input_dtype)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ConfigError(f"expected images of shape (N, 3, H, W), got {batch.shape}")
        if self.info.static is None:
            values = self.session.run(names, {self.input_name: batch})
        else:
            values = self._run_static(batch, names)
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(names, values)}

    def _run_static(self, batch: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """A static graph's fixed batch n: `batch` in chunks of n, the last padded with copies
        of its last image (their outputs dropped). Other image sizes are refused."""
        assert self.info.static is not None
        n, height, width = self.info.static
        if batch.shape[2:] != (height, width):
            h, w = batch.shape[2:]
            raise ConfigError(
                f"{self.path} is {self.info.describe()}: it takes {height}x{width} images, not {h}x{w}; export a "
                f"dynamic graph (nst export-vgg WEIGHTS -o M.onnx) or one with --static {n}x{h}x{w}"
            )
        chunks = []
        for start in range(0, batch.shape[0], n):
            chunk = batch[start : start + n]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], n - len(chunk), axis=0)])
            chunks.append([value[: len(chunk)] for value in self.session.run(names, {self.input_name: padded})])
        return [np.concatenate(parts) for parts in zip(*chunks)]
