"""Time to quality: the seconds multi-scale runs need to reach the loss that N single-scale L-BFGS
iterations reach at 512 px, with the curves (loss against seconds) as a CSV and a PNG plot.

    python benchmarks/time_to_quality.py [--size 512] [--iterations 1000] [--scales 3]
        [--optimizers lbfgs,adam] [--multi-iterations N] [--cap SECONDS] [--out benchmarks/results]

First a single-scale L-BFGS run of --iterations at --size (the reference: its best loss and its
time); then one multi-scale run (--scales stages from --min-size up, --multi-iterations split
evenly over them by stylize) per optimizer in --optimizers, each stopped when it reaches the
reference loss or after --cap seconds (default: the single-scale time). Losses are compared
at the same, full-resolution objective only: steps of the coarse stages (Step.size smaller
than the full size) are of a smaller problem and never count. Elapsed times are stylize()'s
own, from its call (so they include the style Grams of every stage). Writes into --out:
time_to_quality.csv (seconds, then each configuration's best full-size loss so far, on a
common time grid), time_to_quality_steps.csv (every step) and time_to_quality.png
(matplotlib; skipped with a message when it is missing). Random-weight VGG-19 unless --model.
It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, config_fields, machine, model_path

FLAGS = ("low_memory", "compile")
GRID = 200  # rows of the common-time-grid CSV


class _Stop(Exception):
    pass


def run(mirror, config, target: float | None, cap: float, full: tuple[int, int] | None):
    """stylize() with `config`; its steps, stopped once a full-size step reaches `target` or at `cap` s."""
    from nst.runtime.stylize import stylize

    steps = []

    def on_step(step):
        steps.append(step)
        if target is not None and step.size == full and step.total <= target:
            raise _Stop
        if step.elapsed > cap:
            raise _Stop

    try:
        stylize(CONTENT, [STYLE], config=config, model=mirror, callback=on_step)
    except _Stop:
        pass
    return steps


def best_by(steps, full, t: float) -> float | None:
    """The lowest full-size loss reached by time t, or None before the full-size stage began."""
    seen = [s.total for s in steps if s.size == full and s.elapsed <= t]
    return min(seen) if seen else None


def plot(curves: dict, full, target: float, reached: dict, path: Path, title: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, steps in curves.items():
        pts = [(s.elapsed, s.total) for s in steps if s.size == full]
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
        if reached.get(name) is not None:
            ax.axvline(reached[name], color=line.get_color(), linestyle=":", linewidth=1)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="single-scale best loss")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since stylize() started")
    ax.set_ylabel(f"loss at full size ({full[0]}x{full[1]})")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"wrote {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="content width (the content is square)")
    parser.add_argument("--iterations", type=int, default=1000, help="single-scale L-BFGS iterations (the reference)")
    parser.add_argument("--scales", type=int, default=3, help="stages of the multi-scale runs")
    parser.add_argument("--min-size", type=int, default=128, help="long side of the coarsest stage")
    parser.add_argument("--optimizers", default="lbfgs,adam", help="one multi-scale run per optimizer")
    parser.add_argument(
        "--multi-iterations",
        type=int,
        help="iterations of each multi-scale run, split evenly over the stages (default: --iterations)",
    )
    parser.add_argument(
        "--cap", type=float, help="stop a multi-scale run after this many seconds (default: the single-scale time)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--low-memory", action="store_true", help="StylizeConfig(low_memory=True), if it exists")
    parser.add_argument("--compile", action="store_true", help="StylizeConfig(compile=True), if it exists")
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    args = parser.parse_args()

    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import load_mirror

    fields = config_fields()
    extra = {f: True for f in FLAGS if getattr(args, f) and f in fields}
    ignored = [f for f in FLAGS if getattr(args, f) and f not in fields]
    model = args.model or model_path()
    mirror = load_mirror(model)
    run(mirror, StylizeConfig(iterations=2, width=32, seed=0), None, float("inf"), None)  # warm-up

    single_name = "lbfgs 1 scale"
    single = run(
        mirror,
        StylizeConfig(iterations=args.iterations, width=args.size, optimizer="lbfgs", seed=0, **extra),
        None,
        float("inf"),
        None,
    )
    full = single[-1].size
    target = min(s.total for s in single)
    single_time = single[-1].elapsed
    cap = args.cap if args.cap is not None else single_time
    curves = {single_name: single}
    reached: dict[str, float | None] = {single_name: single_time}
    for opt in args.optimizers.split(","):
        name = f"{opt} {args.scales} scales"
        config = StylizeConfig(
            iterations=args.multi_iterations or args.iterations,
            width=args.size,
            optimizer=opt,
            seed=0,
            scales=args.scales,
            min_size=args.min_size,
            **extra,
        )
        steps = run(mirror, config, target, cap, full)
        curves[name] = steps
        hit = next((s for s in steps if s.size == full and s.total <= target), None)
        reached[name] = hit.elapsed if hit else None

    args.out.mkdir(parents=True, exist_ok=True)
    grid_path, steps_path = args.out / "time_to_quality.csv", args.out / "time_to_quality_steps.csv"
    end = max(steps[-1].elapsed for steps in curves.values())
    with open(grid_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", *curves])
        for i in range(1, GRID + 1):
            t = end * i / GRID
            values = [best_by(steps, full, t) for steps in curves.values()]
            writer.writerow([f"{t:.3f}", *("" if v is None else f"{v:.6g}" for v in values)])
    with open(steps_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["configuration", "iteration", "stage", "width", "height", "elapsed_s", "total"])
        for name, steps in curves.items():
            for s in steps:
                writer.writerow(
                    [name, s.iteration, s.stage, s.size[1], s.size[0], f"{s.elapsed:.4f}", f"{s.total:.6g}"]
                )

    title = f"{machine()}; {args.size} px"
    print(
        f"# {title}; model {model.name}; options {extra or 'none'}"
        + (f" ({', '.join(ignored)} ignored: no such StylizeConfig field yet)" if ignored else "")
    )
    print(
        f"# reference: {single_name}, {len(single)} iterations, best loss {target:.6g} in {single_time:.1f} s; "
        f"multi-scale runs capped at {cap:.1f} s; issue 6 target: <= 1/3 of the single-scale time"
    )
    print(
        "| configuration | stages | iterations run | best full-size loss | seconds to reach the reference | "
        "ratio to single-scale time |"
    )
    print("|---|---|---|---|---|---|")
    for name, steps in curves.items():
        stages = " > ".join(f"{w}x{h}" for h, w in sorted({s.size for s in steps}))
        best = best_by(steps, full, float("inf"))
        t = reached[name]
        print(
            f"| {name} | {stages} | {len(steps)} | {best if best is not None else float('nan'):.6g} | "
            f"{f'{t:.1f}' if t is not None else 'not reached'} | {f'{t / single_time:.2f}' if t is not None else '-'} |"
        )
    print(f"\nwrote {grid_path} and {steps_path}")
    print(plot(curves, full, target, reached, args.out / "time_to_quality.png", title))


if __name__ == "__main__":
    main()
