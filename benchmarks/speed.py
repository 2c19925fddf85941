"""Seconds per iteration of nst's stylize loop against the plain eager baseline, side by side,
in float32 and in bf16, with the forward / loss / backward split and the achieved GFLOP/s
against a measured matmul peak.

    python benchmarks/speed.py [--sizes 256,512,1024] [--optimizers lbfgs,adam]
        [--precisions fp32,bf16] [--iterations 5] [--warmup 2] [--rounds 3] [--repeat 3]
        [--device auto] [--threads N] [--low-memory] [--compile]

For each size (examples/astronaut.jpg resized to a square of that width, style
examples/hubble-deep-field.jpg), precision and optimizer:
- nst s/iteration: `nst.stylize()` itself (the product path, `--precision` as given), the
  median of the gaps between its callback's Step.elapsed, after --warmup iterations;
- baseline s/iteration: benchmarks/baseline.py (the PyTorch tutorial's loop: nn.Sequential,
  targets from separate passes, torch.optim on the image); in bf16 it runs under bf16
  autocast in channels-last, the plain way to use bf16 units, with float32 Grams and losses;
- nst and the baseline alternate, --rounds times, and each figure is the median of the
  rounds (this machine's speed drifts by tens of percent within minutes: only figures
  measured side by side compare);
- ratio = nst / baseline s/iteration; above 1.05 the row is flagged SLOWER, never noise;
- the split, eager, median of --repeat calls after one warm-up: the network's forward to the
  deepest layer used, the Grams and losses, and the backward to the image;
- achieved GFLOP/s = 2 x forward GFLOP / s per iteration (a forward plus the input gradient,
  weights frozen), against a matmul peak of the precision measured in the same run;
- on CUDA, torch.cuda.max_memory_allocated of each loop.
Random-weight VGG-19 unless --model (speed does not depend on the weights). It measures and
prints; it asserts nothing.
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


def nst_loop(mirror, size: int, optimizer: str, precision: str, iterations: int, warmup: int, device,
             extra: dict) -> float:  # fmt: skip
    """s/iteration of stylize() at size x size."""
    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import stylize

    elapsed: list[float] = []
    config = StylizeConfig(iterations=warmup + iterations, size=size, optimizer=optimizer, precision=precision,
                           seed=0, device=str(device), **extra)  # fmt: skip
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
    from nst.runtime.objective import Objective, objective_terms

    content, style = load(CONTENT, size).to(device), load(STYLE, size).to(device)  # (1, 3, size, size)
    with torch.no_grad():
        feats = mirror(style, layers=STYLE_LAYERS)
    grams = {n: gram(feats[n].float()) for n in STYLE_LAYERS}
    objective = Objective(
        mirror,
        objective_terms(mirror, content, [grams], (1.0,), config),
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
    args = _parse()
    import torch

    from nst.runtime.device import cpu_has_bf16, resolve_device
    from nst.runtime.stylize import load_mirror

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    extra = {flag: True for flag in FLAGS if getattr(args, flag)}
    model = args.model or model_path()
    mirror = load_mirror(model).to(device)
    has_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    precisions = [p for p in args.precisions.split(",") if p != "bf16" or has_bf16]
    peaks = {p: peak_gflops(device, torch.float32 if p == "fp32" else torch.bfloat16) for p in precisions}
    print(f"# {machine()}; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f"; bf16 units: {'yes' if has_bf16 else 'no'}")  # fmt: skip
    print(f"# model {model.name}; {args.warmup} warm-up + {args.iterations} timed iterations per loop, "
          f"median of {args.rounds} alternating rounds; split: median of {args.repeat}; options {extra or 'none'}")  # fmt: skip
    print("# matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))

    nst_loop(mirror, 32, "adam", precisions[0], 1, 1, device, extra)  # warm-up: imports, allocator, onnxruntime
    summary = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for precision in precisions:
            rows, summary_rows, header = _measure(args, mirror, model, size, precision, device, extra, peaks[precision])
            summary += summary_rows
            print(header)
            print("| figure | nst | baseline | nst / baseline |")
            print("|---|---|---|---|")
            for name, nst_v, base_v, kind in rows:
                ratio = "" if not base_v else f"{(nst_v / base_v if kind == 'time' else base_v / nst_v):.2f}x"
                fmt = (lambda v: f"{v:.0%}") if "fraction" in name else (lambda v: f"{v:.4g}")
                print(f"| {name} | {fmt(nst_v)} | {fmt(base_v) if base_v else '-'} | {ratio} |")
    _print_summary(summary)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024", help="square sizes in px, comma-separated")
    parser.add_argument("--optimizers", default="lbfgs,adam")
    parser.add_argument("--precisions", default="fp32,bf16", help="bf16 is skipped where the device has no bf16 units")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per loop (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2, help="iterations left out of the median")
    parser.add_argument("--rounds", type=int, default=3, help="alternating nst / baseline loops per figure")
    parser.add_argument("--repeat", type=int, default=3, help="calls per piece of the split (after one warm-up)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--low-memory", action="store_true", help="StylizeConfig(low_memory=True)")
    parser.add_argument("--compile", action="store_true", help="StylizeConfig(compile=True)")
    parser.add_argument("--no-baseline", action="store_true", help="nst only (no ratios)")
    parser.add_argument("--no-split", action="store_true", help="skip the forward / loss / backward split")
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    return parser.parse_args()


def _measure(args, mirror, model, size: int, precision: str, device, extra: dict, peak: float):  # type: ignore[no-untyped-def]
    """One size and precision: (table rows, summary rows, heading). Loops alternate nst and the
    baseline, so that other load hits both alike."""
    import torch

    from benchmarks.baseline import Baseline, load
    from nst.runtime.config import StylizeConfig

    config = StylizeConfig(size=size, seed=0, device=str(device), precision=precision, **extra)
    forward, loss, objective, layers = nst_pieces(mirror, size, device, config)
    gflop = forward_gflop(size, size, layers=layers)
    base = None
    if not args.no_baseline:
        base = Baseline(model, load(CONTENT, size), load(STYLE, size), device, precision=precision,
                        channels_last=precision == "bf16")  # fmt: skip
    rows: list[tuple[str, float | None, float | None, str]] = []  # figure, nst, baseline, kind
    summary = []
    for opt in args.optimizers.split(","):
        nst_runs, base_runs, mems = [], [], []
        for _ in range(args.rounds):
            t, mem = cuda_memory(device, lambda s=size, o=opt, p=precision: nst_loop(
                mirror, s, o, p, args.iterations, args.warmup, device, extra))  # fmt: skip
            nst_runs.append(t)
            mems.append(mem)
            if base is not None:
                base_runs.append(cuda_memory(device, lambda b=base, s=size, o=opt: baseline_loop(
                    b, s, o, args.iterations, args.warmup))[0])  # fmt: skip
        nst_s, base_s = median(nst_runs), (median(base_runs) if base_runs else None)
        rows.append((f"{opt} s/iteration", nst_s, base_s, "time"))
        rows.append((f"{opt} fraction of the {precision} peak", 2 * gflop / nst_s / peak,
                     base_s and 2 * gflop / base_s / peak, "rate"))  # fmt: skip
        if mems[0] is not None:
            rows.append((f"{opt} CUDA max allocated MiB", max(mems), None, "time"))
        summary.append((size, precision, opt, nst_s, base_s, min(nst_runs), max(nst_runs)))
    if not args.no_split:
        image = torch.full((1, 3, size, size), 117.0, device=device)
        image = (image + torch.randn_like(image) * 30).requires_grad_(True)
        nst_split = split(forward, loss, image, args.repeat, device)
        base_split = split(base.forward, base.loss, image, args.repeat, device) if base else {}
        for piece in ("forward", "loss", "backward"):
            rows.append((f"{piece} s", nst_split[piece], base_split.get(piece), "time"))
        rows.append(("objective + backward as one s", timed_objective(objective, image, args.repeat, device),
                     None, "time"))  # fmt: skip
    heading = (
        f"\n## {size}x{size} px, {precision}: forward to {layers[-1]} = {gflop:.1f} GFLOP, an iteration = 2 x that"
    )
    return rows, summary, heading


def _print_summary(summary: list) -> None:
    print("\n## Summary (ratio = nst s/iteration / baseline s/iteration; above 1.05 is flagged)")
    print("| size | precision | optimizer | nst s/iter (min-max) | baseline s/iter | ratio | flag |")
    print("|---|---|---|---|---|---|---|")
    for size, precision, opt, nst_s, base_s, low, high in summary:
        ratio = nst_s / base_s if base_s else None
        flag = "SLOWER" if ratio and ratio > 1.05 else ""
        print(f"| {size} | {precision} | {opt} | {nst_s:.3f} ({low:.3f}-{high:.3f}) | "
              f"{f'{base_s:.3f}' if base_s else '-'} | {f'{ratio:.2f}x' if ratio else '-'} | {flag} |")  # fmt: skip


def peak_gflops(device, dtype) -> float:
    if device.type == "cuda":
        return cuda_peak_gflops(device, dtype)
    return matmul_peak_gflops(dtype=dtype)


if __name__ == "__main__":
    main()
