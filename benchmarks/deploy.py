"""Deployment variants of the extractor side by side: style-Gram throughput and each Gram's
relative Frobenius error against the fp32 graph, for fp32, fp16 and int8 exports, dynamic and
static, in onnxruntime on the CPU (and CUDA where usable), in one run.

    python benchmarks/deploy.py [--size 512] [--repeat 7] [--threads N] [--investigate]

Every variant is a Grams-only export (`--outputs grams`, what a Gram service deploys) of a
seeded random-weight VGG-19 (the real weights cannot be fetched here). Inputs are the three
`examples/` images, cropped square to --size. Timing: one image per run, the variants' runs
interleaved (A B C ... A B C ...) so that other load on a shared machine hits all alike;
best and median ms, and ratios to fp32 dynamic. Error: max over the images of
||G - G_fp32||_F / ||G_fp32||_F per layer. An int8 graph is scored on each image with a
graph calibrated on the two others (leave-one-out), never on an image it was calibrated on;
its throughput is the default export's (calibrated on all three). `--investigate` adds int8
recipes (no bias correction, every conv quantized, QOperator, convs only) for comparison.
It prints tables and asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import CACHE, machine

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TARGETS = {"int8 speed": 1.5, "int8 error": 0.02, "fp16 error": 1e-3}


@dataclass
class Variant:
    name: str
    path: Path
    loo: list[Path] | None = None  # int8: one graph per held-out image (calibrated on the others)


def mat_path() -> Path:
    from nst.models.synthetic import write_synthetic_mat

    CACHE.mkdir(parents=True, exist_ok=True)
    mat = CACHE / "vgg19-seed0.mat"
    if not mat.exists():
        write_synthetic_mat(mat, "vgg19", "new", seed=0, fc="small")
    return mat


def images(size: int) -> list[np.ndarray]:
    """The examples, cropped to fill size x size: (1, 3, size, size) float32 each."""
    from PIL import Image, ImageOps

    out = []
    for path in sorted(EXAMPLES.glob("*.jpg")):
        with Image.open(path) as img:
            square = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
        out.append(np.asarray(square, dtype=np.float32).transpose(2, 0, 1)[None].copy())
    return out


def export(folder: Path, name: str, **options) -> Path:
    from nst.export.onnx_graph import ExportConfig
    from nst.export.save import export_vgg_file

    path = folder / f"{name}.onnx"
    export_vgg_file(mat_path(), path, ExportConfig(outputs="grams", **options), overwrite=True)
    return path


def leave_one_out(folder: Path, name: str, **options) -> list[Path]:
    """One int8 graph per example, calibrated on the other examples."""
    paths = sorted(EXAMPLES.glob("*.jpg"))
    graphs = []
    for i, held in enumerate(paths):
        calibration = folder / f"{name}-without-{i}"
        calibration.mkdir(exist_ok=True)
        for other in paths:
            if other != held and not (calibration / other.name).exists():
                (calibration / other.name).symlink_to(other)
        graphs.append(export(folder, f"{name}-loo{i}", calibrate=calibration, **options))
    return graphs


def recipe_graphs(folder: Path, size: int, static: bool) -> dict[str, tuple[Path, list[Path]]]:
    """--investigate: other int8 recipes, built with onnxruntime.quantization directly from the
    fp32 graph (the shipped recipe is nst's own export)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from nst.export.quantize import (
        bias_corrected,
        calibration_batches,
        calibration_reader,
        float_convs,
        quiet_quantizer,
    )

    fp32 = onnx.load(
        str(export(folder, "fp32-src" + ("-static" if static else ""), static=(1, size, size) if static else None))
    )
    paths = sorted(EXAMPLES.glob("*.jpg"))
    recipes: dict[str, dict] = {
        "int8 plain QDQ (all convs, no bias corr.)": {"correct": False, "float": False},
        "int8 bias corr., all convs int8": {"correct": True, "float": False},
        "int8 QOperator (shipped recipe otherwise)": {"correct": True, "float": True, "format": QuantFormat.QOperator},
        "int8 convs only (ReLU, pool float)": {"correct": True, "float": True, "ops": ["Conv"]},
        # Bias correction predicts per-channel rounding, so it is off with per-tensor weights.
        "int8 per-tensor weights (no bias corr.)": {"correct": False, "float": True, "per_channel": False},
    }
    out = {}
    for label, recipe in recipes.items():
        built = []
        for calibration in [paths] + [[p for p in paths if p != held] for held in paths]:
            batches = calibration_batches(calibration, static=(1, size, size) if static else None)
            keep = float_convs(fp32) if recipe["float"] else []
            # bias_corrected returns a copy; quantize_static moves a ModelProto's weights out to
            # its temporary files, so it is never given the shared fp32 one.
            model = bias_corrected(fp32, batches, skip=keep if recipe["correct"] else [n.name for n in fp32.graph.node])
            path = folder / f"recipe{len(out)}-{len(built)}.onnx"
            with quiet_quantizer():
                quantize_static(
                    model,
                    path,
                    calibration_reader(batches),
                    quant_format=recipe.get("format", QuantFormat.QDQ),
                    op_types_to_quantize=recipe.get("ops", ["Conv", "Relu", "MaxPool"]),
                    nodes_to_exclude=keep,
                    per_channel=recipe.get("per_channel", True),
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"DedicatedQDQPair": True},
                )
            built.append(path)
        out[label] = (built[0], built[1:])
    return out


def session(path: Path, provider: str, threads: int):
    import onnxruntime as ort

    from nst.runtime.ort_extractor import resolve_providers

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=resolve_providers(provider))


def grams(path: Path, provider: str, threads: int, image: np.ndarray) -> dict[str, np.ndarray]:
    s = session(path, provider, threads)
    names = [f"gram_{layer}" for layer in STYLE_LAYERS]
    return dict(zip(STYLE_LAYERS, s.run(names, {"image": image})))


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up: first-run allocations, arena growth
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="square image side (px)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per variant, interleaved")
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument("--investigate", action="store_true", help="also time and score other int8 recipes")
    parser.add_argument(
        "--fp16-reference-size",
        type=int,
        default=64,
        help="also score fp16 arithmetic in onnx.reference at this size (onnxruntime's CPU widens fp16 "
        "convolutions to float32); 0: skip",
    )
    args = parser.parse_args()

    import onnxruntime as ort

    from nst.runtime.ort_extractor import cuda_unavailable_reason, physical_cores

    threads = args.threads or physical_cores()
    size = args.size
    providers = ["cpu"] + (["cuda"] if cuda_unavailable_reason() is None else [])
    inputs = images(size)
    with tempfile.TemporaryDirectory(prefix="nst-deploy-") as tmp:
        start = time.perf_counter()
        variants = _variants(Path(tmp), size, investigate=args.investigate)
        print(f"exported {len(variants)} variants in {time.perf_counter() - start:.0f} s")
        reference = [grams(variants[0].path, "cpu", threads, image) for image in inputs]
        fp16_reference = fp16_arithmetic_error(variants, args.fp16_reference_size)
        print(
            f"\n{machine()}; onnxruntime {ort.__version__}, {threads} threads; one {size}x{size} image per run, "
            f"{args.repeat} interleaved runs after a warm-up; Grams only, seeded random VGG-19 weights"
        )
        for provider in providers:
            _report_provider(provider, variants, inputs, reference, threads=threads, repeat=args.repeat)
        if fp16_reference is not None:
            print(
                f"\nfp16 arithmetic (onnx.reference, {args.fp16_reference_size} px, fp16 convolutions as written): "
                + ", ".join(f"{layer} {e:.2e}" for layer, e in zip(STYLE_LAYERS, fp16_reference))
            )


def _variants(folder: Path, size: int, *, investigate: bool) -> list[Variant]:
    """Every deployment variant, exported into `folder` (int8 ones with a leave-one-out twin)."""
    static = {"static": (1, size, size)}
    variants = [
        Variant("fp32 dynamic", export(folder, "fp32")),
        Variant("fp32 static", export(folder, "fp32-static", **static)),
        Variant("fp16 dynamic", export(folder, "fp16", precision="fp16")),
        Variant("fp16 static", export(folder, "fp16-static", precision="fp16", **static)),
        Variant(
            "int8 dynamic", export(folder, "int8", quantize="int8"), leave_one_out(folder, "int8", quantize="int8")
        ),
        Variant(
            "int8 static",
            export(folder, "int8-static", quantize="int8", **static),
            leave_one_out(folder, "int8-static", quantize="int8", **static),
        ),
    ]
    if investigate:
        for label, (path, loo) in recipe_graphs(folder, size, static=False).items():
            variants.append(Variant(label, path, loo))
    return variants


def _report_provider(provider: str, variants: list[Variant], inputs, reference, *, threads: int, repeat: int) -> None:  # type: ignore[no-untyped-def]
    """One provider's table: speed against fp32 dynamic and Gram error per layer, and verdicts."""
    sessions = {v.name: session(v.path, provider, threads) for v in variants}
    feed = {"image": inputs[1]}
    times = interleaved({name: (lambda s=s, f=feed: s.run(None, f)) for name, s in sessions.items()}, repeat)
    base_best, base_median = min(times["fp32 dynamic"]), statistics.median(times["fp32 dynamic"])
    print(f"\n## onnxruntime {provider}\n")
    notes: list[str] = []
    head = "| variant | ms best | ms median | images/s (best) | speed vs fp32 dynamic, best / median |"
    head += " " + " | ".join(f"error {layer}" for layer in STYLE_LAYERS) + " |"
    print(head)
    print("|" + "---|" * (5 + len(STYLE_LAYERS)))
    for variant in variants:
        best, median = min(times[variant.name]), statistics.median(times[variant.name])
        errors = gram_errors(variant, provider, threads, inputs, reference)
        cells = [
            variant.name,
            f"{best * 1000:.0f}",
            f"{median * 1000:.0f}",
            f"{1 / best:.2f}",
            f"{base_best / best:.2f}x / {base_median / median:.2f}x",
            *(f"{e:.2e}" for e in errors),
        ]
        print("| " + " | ".join(cells) + " |")
        if variant.name == "int8 dynamic":
            notes.append(verdict(provider, base_best / best, base_median / median, max(errors)))
        if variant.name == "fp16 dynamic":
            fp16_ok = "met" if max(errors) <= TARGETS["fp16 error"] else "missed"
            notes.append(
                f"fp16 dynamic on {provider}: worst Gram error {max(errors):.1e}, target <= "
                f"{TARGETS['fp16 error']:g}: {fp16_ok}"
            )
    print("\n" + "\n".join(notes))


def gram_errors(variant: Variant, provider: str, threads: int, inputs, reference) -> list[float]:
    """Per layer, the max over the images of the Gram's relative Frobenius error vs fp32."""
    graphs = variant.loo or [variant.path] * len(inputs)
    worst = np.zeros(len(STYLE_LAYERS))
    for graph, image, expected in zip(graphs, inputs, reference):
        got = grams(graph, provider, threads, image)
        for i, layer in enumerate(STYLE_LAYERS):
            e = np.linalg.norm(got[layer].astype(np.float64) - expected[layer]) / np.linalg.norm(expected[layer])
            worst[i] = max(worst[i], e)
    return worst.tolist()


def fp16_arithmetic_error(variants: list[Variant], size: int) -> list[float] | None:
    """fp16 graph vs fp32 graph in onnx.reference, which computes fp16 ops in fp16."""
    if not size:
        return None
    import onnx
    from onnx.reference import ReferenceEvaluator

    paths = {v.name: v.path for v in variants}
    image = images(size)[1]
    out = {}
    for name in ("fp32 dynamic", "fp16 dynamic"):
        out[name] = ReferenceEvaluator(onnx.load(str(paths[name]))).run(None, {"image": image})
    return [
        float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))
        for a, b in zip(out["fp16 dynamic"], out["fp32 dynamic"])
    ]


def verdict(provider: str, best: float, median: float, error: float) -> str:
    speed_ok = best >= TARGETS["int8 speed"]
    error_ok = error <= TARGETS["int8 error"]
    return (
        f"int8 dynamic on {provider}: {best:.2f}x (median {median:.2f}x) fp32's throughput, target >= "
        f"{TARGETS['int8 speed']}x: {'met' if speed_ok else 'missed'}; worst Gram error {error:.2%} (held-out "
        f"images), target <= {TARGETS['int8 error']:.0%}: {'met' if error_ok else 'missed'}"
    )


if __name__ == "__main__":
    main()
