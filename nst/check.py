"""`check_model`: run an exported extractor in each runtime and compare every output with a
float32 PyTorch mirror, built from the source weights file when given (so that a graph that does
not hold its weights is caught), else from the model's own weights.

Errors are measured as max |output - reference| and as that over max |reference| (relative
to the tensor's scale, so that near-zero entries do not dominate); the tolerance follows the
graph's precision. Torch-free at import time, like the configs, so the CLI stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from nst.check_runtimes import RUNNERS
from nst.contract import MEAN_PIXEL, ModelInfo, gram_output, load_onnx, model_info, param_name
from nst.errors import ConfigError, ImageError, WeightsError
from nst.export.quantize import EXAMPLES
from nst.fileio import file_sha256
from nst.models.convention import LAYOUTS, LayoutChoice
from nst.models.readers import read_weights
from nst.runtime.config import RULES, Rule, check

Runtime = Literal["onnxruntime", "onnx-reference", "openvino", "all"]
Progress = Callable[[str, int, int], None]  # (runtime, done, total)
CheckProvider = Literal["cpu", "cuda", "tensorrt"]
RUNTIMES: tuple[str, ...] = ("onnxruntime", "onnx-reference", "openvino")
INSTALL = {
    "onnxruntime": "pip install onnxruntime",
    "onnx-reference": "pip install onnx",
    "openvino": "pip install 'nst[openvino]'",
}
# Allowed max |output - reference| / max |reference|, by the graph's precision. Measured on
# seeded random weights against the source .mat (docs/DEPLOY.md): fp32 <= 3.1e-6, fp16 with
# fp16 input and outputs <= 1.3e-3, int8 <= 2.2 % on the Grams and 15 % on the features (a
# max over single activations).
TOLERANCES = {"fp32": 1e-4, "fp16": 5e-3, "int8 grams": 0.06, "int8 features": 0.2}
DEFAULT_SIZE = (128, 128)  # onnx-reference is pure Python: a float32 run takes seconds here


@dataclass(frozen=True)
class CheckConfig:
    """Options of `nst check-model`; each field is one CLI option."""

    runtime: Runtime = "all"
    provider: CheckProvider = "cpu"  # onnxruntime's execution provider
    image: Path | None = None  # None: the examples' chelsea.jpg, else seeded noise
    size: tuple[int, int] | None = None  # (height, width); None: a static graph's, else DEFAULT_SIZE
    weights: Path | None = None  # the source weights file: the reference is built from it

    def __post_init__(self) -> None:
        check(self, {**RULES, "size": Rule(16, 30_000)})  # each side; no "0: as it is" here
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f"--size must be HxW, not {self.size!r}")


@dataclass(frozen=True)
class CheckRow:
    """One output in one runtime, or one runtime skipped (output '*')."""

    runtime: str
    output: str
    max_abs: float | None
    max_rel: float | None
    tolerance: float | None
    status: Literal["pass", "FAIL", "skipped"]
    ms: float | None
    note: str = ""


@dataclass(frozen=True)
class CheckReport:
    path: Path
    info: ModelInfo
    shape: tuple[int, int, int, int]  # the input, (N, 3, H, W)
    image: str
    reference: str
    rows: tuple[CheckRow, ...]

    @property
    def ok(self) -> bool:
        """No failure (a runtime that is not installed is skipped, not failed)."""
        return all(row.status != "FAIL" for row in self.rows)

    def table(self) -> str:
        """The report as text: a heading, one row per output and runtime, a verdict."""
        n, _, h, w = self.shape
        lines = [
            f"{self.path}: {self.info.describe()}, opset {self.info.opset}, {self.info.io} input and outputs",
            f"input {n}x3x{h}x{w} from {self.image}; reference: float32 PyTorch mirror of {self.reference}",
        ]
        head = ("runtime", "output", "max abs err", "max rel err", "tolerance", "result", "ms/run")
        cells = [head] + [_cells(row) for row in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
        for c in cells:
            lines.append("  ".join(v.ljust(width) for v, width in zip(c, widths)) + "  " + c[-1])
        lines[3:3] = ["  ".join("-" * width for width in widths) + "  " + "-" * len(head[-1])]
        checked = [row for row in self.rows if row.status != "skipped"]
        failed = sum(row.status == "FAIL" for row in checked)
        lines.append(f"{failed} of {len(checked)} checks FAILED" if failed else f"all {len(checked)} checks passed")
        return "\n".join(lines)


def _cells(row: CheckRow) -> tuple[str, ...]:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    result = row.status + (f": {row.note}" if row.note else "")
    return (
        row.runtime,
        row.output,
        num(row.max_abs, ".3g"),
        num(row.max_rel, ".2e"),
        num(row.tolerance, ".0e"),
        result,
        num(row.ms, ".1f"),
    )


def tolerance(info: ModelInfo, output: str) -> float:
    """The allowed max relative error of `output` for the graph's precision."""
    if info.quantize:
        return TOLERANCES["int8 grams" if output.startswith("gram_") else "int8 features"]
    return TOLERANCES["fp16" if "fp16" in (info.precision, info.io) else "fp32"]


def check_model(
    model: str | Path, *, config: CheckConfig = CheckConfig(), progress: Progress | None = None
) -> CheckReport:
    """Run `model` in the configured runtimes and compare each output with the mirror.
    `progress(runtime, done, total)` hears of each runtime's work as it goes: its timed runs,
    or the nodes of onnx's reference evaluator (which takes minutes on large or fp16 graphs)."""
    path = Path(model)
    graph = load_onnx(path)
    info = model_info(graph, path)
    shape = _input_shape(info, config.size)
    image, image_name = _input_image(config.image, shape)
    reference, source = _reference(info, config.weights, image)
    runtimes = RUNTIMES if config.runtime == "all" else (config.runtime,)
    rows: list[CheckRow] = []
    for runtime in runtimes:
        runner = RUNNERS[runtime]
        tick = functools.partial(progress, runtime) if progress is not None else _no_progress
        try:
            outputs, ms = runner(path, graph, info, image, config.provider, tick)
        except ImportError:
            rows.append(CheckRow(runtime, "*", None, None, None, "skipped", None, f"not installed; {INSTALL[runtime]}"))
            continue
        except ConfigError:
            raise
        except Exception as exc:  # the runtime cannot load or run the graph: that is the finding
            text = " ".join(str(exc).split())  # the reason is at the end of onnxruntime's long messages
            rows.append(
                CheckRow(
                    runtime, "*", None, None, None, "FAIL", None, text if len(text) <= 160 else "..." + text[-157:]
                )
            )
            continue
        for name, expected in reference.items():
            rows.append(_compare(runtime, name, outputs.get(name), expected, tolerance(info, name), ms))
    return CheckReport(path, info, shape, image_name, source, tuple(rows))


def _no_progress(done: int, total: int) -> None:
    pass


def _compare(runtime: str, name: str, actual: Any, expected: np.ndarray, tol: float, ms: float) -> CheckRow:
    if actual is None or np.shape(actual) != expected.shape:
        got = "nothing" if actual is None else f"shape {np.shape(actual)}"
        return CheckRow(runtime, name, None, None, tol, "FAIL", ms, f"gave {got}, expected {expected.shape}")
    error = float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max())
    relative = error / max(float(np.abs(expected).max()), 1e-30)
    status: Literal["pass", "FAIL"] = "pass" if np.isfinite(relative) and relative <= tol else "FAIL"
    return CheckRow(runtime, name, error, relative, tol, status, ms)


def _input_shape(info: ModelInfo, size: tuple[int, int] | None) -> tuple[int, int, int, int]:
    if info.static is None:
        height, width = size or DEFAULT_SIZE
        return (1, 3, height, width)
    n, height, width = info.static
    if size is not None and tuple(size) != (height, width):
        raise ConfigError(
            f"{info.path} is {info.describe()}; it runs only at {height}x{width}: drop --size or pass --size {height}x{width}"
        )
    return (n, 3, height, width)


def _input_image(image: Path | None, shape: tuple[int, int, int, int]) -> tuple[np.ndarray, str]:
    """(N, 3, H, W) float32 whole pixel values (exact in fp16 too), and where they came from."""
    from PIL import Image, ImageOps

    n, _, height, width = shape
    path = image if image is not None else EXAMPLES / "chelsea.jpg"
    if image is None and not path.is_file():
        noise = np.random.default_rng(0).integers(0, 256, (1, 3, height, width)).astype(np.float32)
        return np.repeat(noise, n, axis=0), "seeded noise"
    try:
        with Image.open(path) as img:
            rgb = ImageOps.fit(img.convert("RGB"), (width, height), Image.Resampling.LANCZOS)  # cover, centre crop
    except FileNotFoundError:
        raise ImageError(f"image not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read {path} as an image ({exc})") from None
    array = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1)[None]  # (1, 3, H, W)
    return np.repeat(array, n, axis=0), path.name


def _reference(info: ModelInfo, weights: Path | None, image: np.ndarray) -> tuple[dict[str, np.ndarray], str]:
    """The mirror's outputs for `image`, by output name (float64), and what it was built from."""
    import torch

    from nst.runtime.mirror import VGGMirror

    if weights is not None:
        mirror = VGGMirror(info, _source_tensors(info, weights), info.pooling).eval()
        source = f"{weights}"
    elif info.quantize:
        raise ConfigError(
            f"{info.path} is {info.describe()}: its float weights are not in it; pass --weights SOURCE.mat, "
            "the file it was exported from"
        )
    else:
        mirror = VGGMirror.from_onnx(info.path)
        source = "the model's own weights (pass --weights SOURCE.mat to check them too)"
    layers = info.feature_outputs or info.grams
    with torch.no_grad():
        out = mirror(torch.from_numpy(image), layers=layers, grams=info.grams)
    names = list(info.feature_outputs) + [gram_output(name) for name in info.grams]
    return {name: out[name].double().numpy() for name in names}, source


def _source_tensors(info: ModelInfo, weights: Path) -> dict[str, Any]:
    """The mirror's tensors from the weights file the model was exported from (its hash must
    match), read with the input convention its export recorded."""
    import torch

    if not Path(weights).is_file():
        raise WeightsError(f"weights file not found: {weights}")
    digest = file_sha256(weights)
    if digest != info.source_sha256:
        raise WeightsError(
            f"{weights} (sha256 {digest[:12]}) is not the file {info.path} was exported from "
            f"(sha256 {info.source_sha256[:12]}); pass that .{info.weights_format}"
        )
    given = info.layout_source == "option" and info.weights_layout in LAYOUTS  # else detected again, as it was
    layout = cast("LayoutChoice", info.weights_layout) if given else "auto"
    vgg = read_weights(weights, layout=layout, swap_kernel_axes=info.kernel_axes == "wh", sha256=digest)
    tensors = {MEAN_PIXEL: torch.from_numpy(vgg.mean_pixel.astype(np.float32).reshape(1, 3, 1, 1))}
    for name, (kernel, bias) in vgg.convs.items():
        tensors[param_name(name, "weight")] = torch.from_numpy(kernel.astype(np.float32))
        tensors[param_name(name, "bias")] = torch.from_numpy(bias.astype(np.float32))
    return tensors
