"""Seconds per iteration of nst's stylize loop against the plain eager baseline, side by side,
with the forward / loss / backward split and the achieved GFLOP/s against a measured matmul peak.

    python benchmarks/speed.py [--sizes 256,512,1024] [--optimizers lbfgs,adam] [--iterations 5]
        [--warmup 2] [--repeat 3] [--device auto] [--threads N] [--low-memory] [--compile]

For each size (examples/astronaut.jpg resized to a square of that width, style
examples/hubble-deep-field.jpg) and optimizer:
- nst s/iteration: `nst.runtime.stylize.stylize()` itself (the product path), the median of
  the gaps between its callback's Step.elapsed, after --warmup iterations;
- baseline s/iteration: benchmarks/baseline.py (the PyTorch tutorial's loop: nn.Sequential,
  targets from separate passes, torch.optim on the image), timed the same way;
- the split, eager, median of --repeat calls after one warm-up: the network's forward to the
  deepest layer used, the Grams and losses, and the backward to the image;
- achieved GFLOP/s = 2 x forward GFLOP / s per iteration (a forward plus the input gradient,
  weights frozen), against a float32 matmul peak measured in the same run;
- on CUDA, torch.cuda.max_memory_allocated of each loop.
The ratio column is the baseline's figure over nst's for times and memory, and nst's over the
baseline's for GFLOP/s: above 1, nst is better. Random-weight VGG-19 unless --model (speed does
not depend on the weights). It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    CONTENT,
    STYLE,
    config_fields,
    forward_gflop,
    machine,
    matmul_peak_gflops,
    median,
    model_path,
)

# StylizeConfig options this script can switch on.
FLAGS = ("low_memory", "compile")


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cuda_peak_gflops(device, dtype, n: int = 8192, repeat: int = 20) -> float:
    import torch

    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    sync(device)
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


def per_iteration(elapsed: list[float], warmup: int) -> float:
    """Median gap between consecutive iterations, skipping the first `warmup` iterations."""
    gaps = [b - a for a, b in zip(elapsed, elapsed[1:])]
    return median(gaps[warmup - 1 :] if warmup >= 1 else gaps)


def cuda_memory(device, fn):
    """Run fn; return (its result, peak CUDA memory allocated during it in MiB, or None on CPU)."""
    import torch

    if device.type != "cuda":
        return fn(), None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    result = fn()
    return result, torch.cuda.max_memory_allocated(device) / 2**20


def nst_loop(mirror, size: int, optimizer: str, iterations: int, warmup: int, device, extra: dict) -> float:
    """s/iteration of stylize() at size x size."""
    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import stylize

    elapsed: list[float] = []
    config = StylizeConfig(
        iterations=warmup + iterations, width=size, optimizer=optimizer, seed=0, device=str(device), **extra
    )
    stylize(CONTENT, [STYLE], config=config, model=mirror, callback=lambda step: elapsed.append(step.elapsed))
    return per_iteration(elapsed, warmup)


def baseline_loop(base, size: int, optimizer: str, iterations: int, warmup: int) -> float:
    elapsed: list[float] = []
    base.run(base.start_image((1, 3, size, size)), optimizer, warmup + iterations, lambda i, loss, t: elapsed.append(t))
    return per_iteration(elapsed, warmup)


def split(forward, loss, image, repeat: int, device) -> dict[str, float]:
    """Median seconds of forward, loss (from the forward's outputs) and backward, each timed alone."""
    times: dict[str, list[float]] = {"forward": [], "loss": [], "backward": []}

    def clock(fn):
        sync(device)
        start = time.perf_counter()
        value = fn()
        sync(device)
        return value, time.perf_counter() - start

    for i in range(repeat + 1):  # the first round is a warm-up
        image.grad = None
        feats, t_forward = clock(lambda: forward(image))
        total, t_loss = clock(lambda feats=feats: loss(image, feats))
        _, t_backward = clock(total.backward)
        if i:
            for name, t in zip(times, (t_forward, t_loss, t_backward)):
                times[name].append(t)
    return {name: median(t) for name, t in times.items()}


def nst_pieces(mirror, size: int, device, config):
    """nst's own objective (the product's terms, precision, layout and checkpointing), and its
    forward and loss halves for the split."""
    import torch

    from benchmarks.baseline import load
    from nst.contract import gram
    from nst.models.layers import STYLE_LAYERS
    from nst.runtime.device import autocast, channels_last
    from nst.runtime.objective import Objective, reference_terms

    content, style = load(CONTENT, size).to(device), load(STYLE, size).to(device)  # (1, 3, size, size)
    with torch.no_grad():
        feats = mirror(style, layers=STYLE_LAYERS)
    grams = {n: gram(feats[n].float()) for n in STYLE_LAYERS}
    objective = Objective(
        mirror,
        reference_terms(mirror, content, [grams], (1.0,), config),
        precision=autocast(device, config.precision),
        channels_last=channels_last(device),
        checkpoint=config.low_memory,
    )
    return objective.features, lambda image, f: objective.evaluate(image, f)[0], objective, objective.layers


def timed_objective(objective, image, repeat: int, device) -> float:
    """Median seconds of the product's objective(image) plus its backward, called as a whole."""
    times = []
    for i in range(repeat + 1):
        image.grad = None
        sync(device)
        start = time.perf_counter()
        objective(image)[0].backward()
        sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024", help="square sizes in px, comma-separated")
    parser.add_argument("--optimizers", default="lbfgs,adam")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per loop (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2, help="iterations left out of the median")
    parser.add_argument("--repeat", type=int, default=3, help="calls per piece of the split (after one warm-up)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--low-memory", action="store_true", help="StylizeConfig(low_memory=True), if it exists")
    parser.add_argument("--compile", action="store_true", help="StylizeConfig(compile=True), if it exists")
    parser.add_argument("--no-baseline", action="store_true", help="nst only (no ratios)")
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    args = parser.parse_args()

    import torch

    from benchmarks.baseline import Baseline, load
    from nst.runtime.config import StylizeConfig
    from nst.runtime.device import resolve_device
    from nst.runtime.stylize import load_mirror

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    fields = config_fields()
    extra, notes = {}, []
    for flag in FLAGS:
        if getattr(args, flag):
            if flag in fields:
                extra[flag] = True
            else:
                notes.append(f"--{flag.replace('_', '-')} ignored: StylizeConfig has no {flag} field yet")
    model = args.model or model_path()
    mirror = load_mirror(model).to(device)
    sizes = [int(s) for s in args.sizes.split(",")]
    optimizers = args.optimizers.split(",")

    if device.type == "cuda":
        peaks = {"fp32": cuda_peak_gflops(device, torch.float32), "bf16": cuda_peak_gflops(device, torch.bfloat16)}
        peak_name = "bf16"
    else:
        peaks = {"fp32": matmul_peak_gflops()}
        peak_name = "fp32"
    peak = peaks[peak_name]
    print(
        f"# {machine()}; device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    print(
        f"# model {model.name}; {args.warmup} warm-up + {args.iterations} timed iterations per loop; "
        f"split: median of {args.repeat}; options {extra or 'none'}"
    )
    print(
        "# matmul peak: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items())
        + f"; fractions below are of the {peak_name} one"
    )
    for note in notes:
        print(f"# {note}")

    # Warm-up: imports, allocator, onnxruntime session (a tiny run of each loop).
    nst_loop(mirror, 32, "adam", 1, 1, device, extra)
    summary = []
    for size in sizes:
        config = StylizeConfig(width=size, seed=0, device=str(device), **extra)
        forward, loss, objective, layers = nst_pieces(mirror, size, device, config)
        gflop = forward_gflop(size, size, layers=layers)
        rows: list[tuple[str, float | None, float | None, str]] = []  # figure, nst, baseline, kind
        base = None
        if not args.no_baseline:
            base = Baseline(model, load(CONTENT, size), load(STYLE, size), device)
        for opt in optimizers:
            nst_s, nst_mem = cuda_memory(
                device, lambda s=size, o=opt: nst_loop(mirror, s, o, args.iterations, args.warmup, device, extra)
            )
            base_s, base_mem = (
                cuda_memory(device, lambda b=base, s=size, o=opt: baseline_loop(b, s, o, args.iterations, args.warmup))
                if base
                else (None, None)
            )
            rows.append((f"{opt} s/iteration", nst_s, base_s, "time"))
            rows.append((f"{opt} GFLOP/s", 2 * gflop / nst_s, base_s and 2 * gflop / base_s, "rate"))
            rows.append(
                (
                    f"{opt} fraction of the {peak_name} peak",
                    2 * gflop / nst_s / peak,
                    base_s and 2 * gflop / base_s / peak,
                    "rate",
                )
            )
            if nst_mem is not None:
                rows.append((f"{opt} CUDA max allocated MiB", nst_mem, base_mem, "time"))
            summary.append((size, opt, nst_s, base_s, 2 * gflop / nst_s / peak))
        image = torch.full((1, 3, size, size), 117.0, device=device).requires_grad_(True)
        image = (image + torch.randn_like(image) * 30).detach().requires_grad_(True)
        nst_split = split(forward, loss, image, args.repeat, device)
        base_split = split(base.forward, base.loss, image, args.repeat, device) if base else {}
        for piece in ("forward", "loss", "backward"):
            rows.append((f"{piece} s", nst_split[piece], base_split.get(piece), "time"))
        rows.append(("sum of the three s", sum(nst_split.values()), sum(base_split.values()) or None, "time"))
        rows.append(
            ("objective + backward as one s", timed_objective(objective, image, args.repeat, device), None, "time")
        )

        print(
            f"\n## {size}x{size} px: forward to {layers[-1] if layers else '-'} = {gflop:.1f} GFLOP, "
            f"an iteration = 2 x that"
        )
        print("| figure | nst | baseline | ratio |")
        print("|---|---|---|---|")
        for name, nst_v, base_v, kind in rows:
            ratio = "" if not base_v else f"{(base_v / nst_v if kind == 'time' else nst_v / base_v):.2f}x"
            fmt = (lambda v: f"{v:.0%}") if "fraction" in name else (lambda v: f"{v:.4g}")
            print(f"| {name} | {fmt(nst_v)} | {fmt(base_v) if base_v else '-'} | {ratio} |")
        del base

    print("\n## Summary (ratio = baseline s/iteration / nst s/iteration)")
    print(f"| size | optimizer | nst s/iter | baseline s/iter | ratio | nst fraction of {peak_name} peak |")
    print("|---|---|---|---|---|---|")
    for size, opt, nst_s, base_s, frac in summary:
        print(
            f"| {size} | {opt} | {nst_s:.3f} | {f'{base_s:.3f}' if base_s else '-'} | "
            f"{f'{base_s / nst_s:.2f}x' if base_s else '-'} | {frac:.0%} |"
        )


if __name__ == "__main__":
    main()
