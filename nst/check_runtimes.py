"""The runtimes `nst check-model` runs an export in: onnxruntime, onnx's reference evaluator and
OpenVINO, each timed, and each reporting its progress (runs, or the reference evaluator's nodes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nst.contract import INPUT_NAME, ModelInfo
from nst.runtime.ort_extractor import physical_cores, resolve_providers

if TYPE_CHECKING:
    import onnx


Outputs = dict[str, np.ndarray]
Tick = Callable[[int, int], None]  # (done, total)
TIMED_RUNS = 3  # ms per run: the best of these, after one warm-up run (one run for onnx-reference)


def _timed(
    run: Callable[[], Outputs], tick: Tick, repeat: int = TIMED_RUNS, warm_up: bool = True
) -> tuple[Outputs, float]:
    """run()'s outputs and its best time in ms over `repeat` runs, each run ticked off."""
    total = repeat + warm_up
    tick(0, total)
    outputs = run() if warm_up else {}
    if warm_up:
        tick(1, total)
    best = float("inf")
    for i in range(repeat):
        start = time.perf_counter()
        outputs = run()
        best = min(best, time.perf_counter() - start)
        tick(warm_up + i + 1, total)
    return outputs, best * 1000


def _feed(info: ModelInfo, image: np.ndarray) -> np.ndarray:
    return image.astype(np.float16 if info.io == "fp16" else np.float32)


def _run_onnxruntime(
    path: Path, graph: onnx.ModelProto, info: ModelInfo, image: np.ndarray, provider: str, tick: Tick
) -> tuple[Outputs, float]:
    import onnxruntime as ort

    providers = resolve_providers(provider)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = physical_cores()
    session = ort.InferenceSession(str(path), options, providers=providers)
    names = [o.name for o in session.get_outputs()]
    feed = {INPUT_NAME: _feed(info, image)}
    return _timed(lambda: dict(zip(names, session.run(names, feed))), tick)


def _run_reference(
    path: Path, graph: onnx.ModelProto, info: ModelInfo, image: np.ndarray, provider: str, tick: Tick
) -> tuple[Outputs, float]:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(graph, new_ops=_reference_ops(graph))
    names = [o.name for o in graph.graph.output]
    feed = {INPUT_NAME: _feed(info, image)}
    _tick_nodes(evaluator, tick)
    return _timed(lambda: dict(zip(names, evaluator.run(names, feed))), _no_tick, repeat=1, warm_up=False)


def _tick_nodes(evaluator: Any, tick: Tick) -> None:
    """Tick off each node the evaluator runs: pure Python, a big graph takes minutes (an fp16
    256x256 VGG-19 export over three), and a node is the unit of its progress."""
    nodes = list(getattr(evaluator, "rt_nodes_", ()))  # its node runners, in order
    tick(0, len(nodes) or 1)
    for done, node in enumerate(nodes, 1):
        node.run = _ticking(node.run, tick, done, len(nodes))


def _ticking(run: Callable[..., Any], tick: Tick, done: int, total: int) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = run(*args, **kwargs)
        tick(done, total)
        return result

    return wrapped


def _no_tick(done: int, total: int) -> None:
    pass


def _reference_ops(graph: onnx.ModelProto) -> list[type]:
    """onnx.reference has no DequantizeLinear below opset 19; the newest one computes the same
    for an int8 graph's per-tensor and per-channel uses, so it stands in for older opsets."""
    if not any(node.op_type == "DequantizeLinear" for node in graph.graph.node):
        return []
    import onnx.reference.ops.op_dequantize_linear as ops

    newest = max((name for name in dir(ops) if name.startswith("DequantizeLinear_")), key=lambda n: int(n[17:]))
    return [type("DequantizeLinear", (getattr(ops, newest),), {"op_domain": ""})]


def _run_openvino(
    path: Path, graph: onnx.ModelProto, info: ModelInfo, image: np.ndarray, provider: str, tick: Tick
) -> tuple[Outputs, float]:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if info.static is None:
        model.reshape({INPUT_NAME: list(image.shape)})
    # f32: OpenVINO's CPU plugin would otherwise run float32 graphs in bf16 on CPUs with AMX
    # or AVX512-BF16; the check measures the graph, not that choice.
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    feed = {INPUT_NAME: _feed(info, image)}

    def run() -> Outputs:
        results = request.infer(feed)
        return {port.get_any_name(): np.array(value) for port, value in results.items()}

    return _timed(run, tick)


RUNNERS = {"onnxruntime": _run_onnxruntime, "onnx-reference": _run_reference, "openvino": _run_openvino}
