"""Does bf16 keep the quality? Runs the same stylization in float32 and in bf16 and judges both
by the full float32 objective, at equal iterations and at equal wall time.

    python benchmarks/bf16_quality.py [--sizes 256,512] [--optimizers adam,lbfgs]
        [--iterations 200] [--every 10] [--out benchmarks/results]

For each size and optimizer, both runs start from the same noise and the same targets
(content examples/astronaut.jpg, style examples/hubble-deep-field.jpg, squares of the size).
Every --every iterations the best image so far of each run (chosen by its own loss, as nst
does) is evaluated with the float32 objective; the evaluation's time is left out of the
clock. For L-BFGS it also counts the curvature pairs offered and kept (y.s > 1e-10): bf16
gradients that broke the curvature condition would show as rejected pairs. Prints a table;
writes the curves as CSV and, with matplotlib, a PNG into --out.
Random-weight VGG-19 (the real weights cannot be had here); it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, machine, model_path


def run(mirror, size: int, optimizer: str, precision: str, iterations: int, every: int) -> dict:
    """One run; its curve [(iteration, seconds, own loss, float32 loss of its best image)]."""
    import torch

    from benchmarks.baseline import load
    from nst.contract import gram
    from nst.models.layers import STYLE_LAYERS
    from nst.runtime.config import StylizeConfig
    from nst.runtime.device import autocast, channels_last
    from nst.runtime.loop import Best, optimize
    from nst.runtime.objective import Objective, objective_terms
    from nst.runtime.optim import LBFGS, make_optimizer
    from nst.runtime.plan import initial_image

    device = torch.device("cpu")
    cl = channels_last(device)
    content, style = load(CONTENT, size), load(STYLE, size)  # (1, 3, size, size)
    with torch.no_grad():
        features = mirror(style, layers=STYLE_LAYERS)
    grams = [{name: gram(features[name]) for name in STYLE_LAYERS}]
    config = StylizeConfig(size=size, optimizer=optimizer, precision=precision, seed=0)
    terms = objective_terms(mirror, content, grams, (1.0,), config)
    objective = Objective(mirror, terms, precision=autocast(device, precision), channels_last=cl)
    judge = Objective(mirror, terms, precision=contextlib.nullcontext, channels_last=cl)  # float32
    generator = torch.Generator().manual_seed(0)
    image = initial_image(content, None, noiseblend=None, mean_pixel=mirror.mean_pixel, generator=generator)
    image = image.requires_grad_(True)
    for _ in range(2):  # warm-up: the first calls at a new size pick and build their kernels
        objective(image)[0].backward()
        judge(image.detach())
    image.grad = None
    opt = make_optimizer(image, config)
    best = Best()
    curve: list[tuple[int, float, float, float]] = []
    paused = 0.0
    start = time.perf_counter()

    def on_step(iteration: int, total: float, values: dict) -> None:
        nonlocal paused
        if iteration % every and iteration != iterations:
            return
        clock = time.perf_counter()
        elapsed = clock - start - paused  # the run's own time, evaluations left out
        with torch.no_grad():
            judged = judge(best.image)[0].item()
        paused += time.perf_counter() - clock
        curve.append((iteration, elapsed, total, judged))

    optimize(image, objective, opt, iterations=iterations, best=best, on_step=on_step)
    stats = {}
    if isinstance(opt, LBFGS):
        stats = {"pairs_seen": opt.pairs_seen, "pairs_kept": opt.pairs_kept, "h_diag": opt.h_diag}
    return {"curve": curve, "stats": stats}


def at_time(curve, seconds: float) -> float:
    """The float32 loss of the best image a run had at `seconds` (its last evaluation before)."""
    seen = [judged for _, t, _, judged in curve if t <= seconds]
    return min(seen) if seen else float("nan")


def time_to(curve, loss: float) -> float | None:
    return next((t for _, t, _, judged in curve if judged <= loss), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--optimizers", default="adam,lbfgs")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="iterations between float32 evaluations")
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    from nst.runtime.device import cpu_has_bf16
    from nst.runtime.stylize import load_mirror

    mirror = load_mirror(args.model or model_path())
    print(f"# {machine()}; bf16 units: {'yes' if cpu_has_bf16() else 'no (bf16 is emulated: slow)'}")
    print(f"# {args.iterations} iterations; float32 objective of each run's best image every {args.every}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        for optimizer in args.optimizers.split(","):
            for precision in ("fp32", "bf16"):
                results[size, optimizer, precision] = run(mirror, size, optimizer, precision, args.iterations,
                                                          args.every)  # fmt: skip

    print("\n| size | optimizer | fp32 loss at N | bf16 loss at N | bf16/fp32 | s/it fp32 | s/it bf16 | "
          "bf16 loss at fp32's time | bf16/fp32 there | bf16 time to fp32's final loss | L-BFGS pairs kept |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with open(args.out / "bf16_quality.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["size", "optimizer", "precision", "iteration", "seconds", "own_loss", "fp32_loss"])
        for (size, optimizer, precision), result in results.items():
            for row in result["curve"]:
                writer.writerow([size, optimizer, precision, *row])
    for size in (int(s) for s in args.sizes.split(",")):
        for optimizer in args.optimizers.split(","):
            fp32, bf16 = results[size, optimizer, "fp32"], results[size, optimizer, "bf16"]
            a, b = fp32["curve"], bf16["curve"]
            end32, end16 = a[-1][3], b[-1][3]
            there = at_time(b, a[-1][1])
            reach = time_to(b, end32)
            pairs = " / ".join(
                f"{r['stats']['pairs_kept']}/{r['stats']['pairs_seen']}" for r in (fp32, bf16) if r["stats"]
            )
            print(f"| {size} | {optimizer} | {end32:.6g} | {end16:.6g} | {end16 / end32:.4f} | "
                  f"{a[-1][1] / args.iterations:.3f} | {b[-1][1] / args.iterations:.3f} | {there:.6g} | "
                  f"{there / end32:.4f} | {f'{reach:.1f} s ({reach / a[-1][1]:.2f}x)' if reach else 'not reached'} | "
                  f"{pairs or '-'} |")  # fmt: skip
    _plot(results, args)


def _plot(results: dict, args) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"wrote {args.out / 'bf16_quality.csv'} (no plot: matplotlib is not installed)")
        return
    keys = sorted({(size, opt) for size, opt, _ in results})
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
    for ax, (size, opt) in zip(axes[0], keys):
        for precision, style in (("fp32", "-"), ("bf16", "--")):
            curve = results[size, opt, precision]["curve"]
            ax.plot([t for _, t, _, _ in curve], [judged for *_, judged in curve], style, label=precision)
        ax.set_title(f"{size} px, {opt}")
        ax.set_xlabel("seconds")
        ax.set_ylabel("float32 loss of the best image")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "bf16_quality.png", dpi=90)
    print(f"wrote {args.out / 'bf16_quality.csv'} and {args.out / 'bf16_quality.png'}")


if __name__ == "__main__":
    main()
