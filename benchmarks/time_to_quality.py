"""Time to quality: how soon other starts and schedules reach the loss that N single-scale
L-BFGS iterations from the default start reach, at the same full-size objective.

    python benchmarks/time_to_quality.py [--size 512] [--iterations 1000]
        [--candidates content,content-3-scales,noise-3-scales] [--cap-fraction 0.3333]
        [--precision auto] [--loss-scale reference] [--out benchmarks/results]

First the reference: single-scale L-BFGS for --iterations from the default start (noise) at
--size; its best loss is the target and its time the yardstick. Then each candidate (a
StylizeConfig variant, below) runs until a full-size step reaches the target, or until
--cap-fraction of the reference's time (the issue's target is a third). Only full-size steps
count: the coarse stages' losses are of a smaller problem. A candidate whose precision differs
from the reference's judges by its own loss, so it must beat the target by --margin (relative;
benchmarks/bf16_quality.py measures how far a bf16 run's own loss is from the float32 one). Elapsed times are stylize()'s own,
from its call (style Grams of every stage included). Writes into --out the curves (best
full-size loss so far against seconds) as time_to_quality.csv and, with matplotlib,
time_to_quality.png. Random-weight VGG-19 unless --model. It asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, machine, model_path

# name -> StylizeConfig changes from the reference run (L-BFGS, noise start, one stage)
CANDIDATES: dict[str, dict] = {
    "content": {"initial_noiseblend": 0.0},  # start at the content image itself
    "content+noise": {"initial_noiseblend": 0.5},
    "content-3-scales": {"initial_noiseblend": 0.0, "scales": 3},
    "noise-3-scales": {"scales": 3},
    "adam": {"optimizer": "adam"},
    "content-adam": {"optimizer": "adam", "initial_noiseblend": 0.0},
    "bf16": {"precision": "bf16"},  # the same run on the CPU's bf16 units
    "bf16-3-scales": {"precision": "bf16", "scales": 3},
    "bf16-content": {"precision": "bf16", "initial_noiseblend": 0.0},
}


class _Stop(Exception):
    pass


def run(mirror, config, *, target: float | None, cap: float):
    """stylize() with `config`: its steps, stopped once a full-size step reaches `target` or at `cap` s."""
    from nst.runtime.stylize import stylize

    steps = []
    last = _last_stage(config)

    def on_step(step):
        steps.append(step)
        if target is not None and step.stage == last and step.total <= target:
            raise _Stop
        if step.elapsed > cap:
            raise _Stop

    try:
        stylize(CONTENT, [STYLE], config=config, model=mirror, callback=on_step)
    except _Stop:
        pass
    return steps


def _last_stage(config) -> int:
    from nst.runtime.plan import stage_sizes

    return len(stage_sizes((config.size, config.size), config.scales, config.min_size)) - 1


def best_by(steps, last: int, t: float) -> float | None:
    """The lowest full-size loss reached by time t, or None before the full-size stage began."""
    seen = [s.total for s in steps if s.stage == last and s.elapsed <= t]
    return min(seen) if seen else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--candidates", default="content,content-3-scales,noise-3-scales",
                        help=f"comma-separated, of: {', '.join(CANDIDATES)}")  # fmt: skip
    parser.add_argument("--cap-fraction", type=float, default=1 / 3, help="of the reference's time")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--margin", type=float, default=2e-3,
                        help="how far below the target a candidate of another precision must get")  # fmt: skip
    parser.add_argument("--loss-scale", default=None, help="reference | balanced (default: nst's default)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    args = parser.parse_args()

    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import load_mirror

    model = args.model or model_path()
    mirror = load_mirror(model)
    base = StylizeConfig(iterations=args.iterations, size=args.size, optimizer="lbfgs", seed=0,
                         precision=args.precision, **({"loss_scale": args.loss_scale} if args.loss_scale else {}))  # fmt: skip
    run(mirror, base.replace(iterations=2, size=64), target=None, cap=float("inf"))  # warm-up

    reference = run(mirror, base, target=None, cap=float("inf"))
    target, seconds = min(s.total for s in reference), reference[-1].elapsed
    cap = seconds * args.cap_fraction
    curves = {"reference: L-BFGS from noise": (reference, 0)}
    reached: dict[str, float | None] = {}
    for name in args.candidates.split(","):
        config = base.replace(**CANDIDATES[name])
        goal = target if config.precision == base.precision else target * (1 - args.margin)
        if config.precision != base.precision:
            run(mirror, config.replace(iterations=2, size=64), target=None, cap=float("inf"))  # its warm-up
        steps = run(mirror, config, target=goal, cap=cap)
        last = _last_stage(config)
        curves[name] = (steps, last)
        hit = next((s for s in steps if s.stage == last and s.total <= goal), None)
        reached[name] = hit.elapsed if hit else None

    print(f"# {machine()}; {args.size} px; model {model.name}; precision {args.precision}; "
          f"loss scale {base.loss_scale}")  # fmt: skip
    print(f"# reference: single-scale L-BFGS from noise, {len(reference)} iterations: best loss {target:.6g} "
          f"in {seconds:.1f} s ({seconds / len(reference):.3f} s/iteration); candidates capped at "
          f"{args.cap_fraction:.3g} of that, {cap:.1f} s")  # fmt: skip
    print("| candidate | settings | reached the reference's loss at | fraction of the reference's time | "
          "its best full-size loss by the cap |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name in reached:
        steps, last = curves[name]
        hit = reached[name]
        best = best_by(steps, last, float("inf"))
        print(f"| {name} | {CANDIDATES[name]} | {f'{hit:.1f} s' if hit else 'not reached'} | "
              f"{f'{hit / seconds:.3f}' if hit else '-'} | {best:.6g} |")  # fmt: skip

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "time_to_quality.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "iteration", "stage", "elapsed_s", "loss", "best_full_size_loss"])
        for name, (steps, last) in curves.items():
            best = float("inf")
            for s in steps:
                if s.stage == last:
                    best = min(best, s.total)
                writer.writerow([name, s.iteration, s.stage, f"{s.elapsed:.3f}", f"{s.total:.6g}",
                                 f"{best:.6g}" if best < float("inf") else ""])  # fmt: skip
    _plot(curves, target, args)


def _plot(curves, target: float, args) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"wrote {args.out / 'time_to_quality.csv'} (no plot: matplotlib is not installed)")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, (steps, last) in curves.items():
        points, best = [], float("inf")
        for s in steps:
            if s.stage == last:
                best = min(best, s.total)
                points.append((s.elapsed, best))
        if points:
            ax.plot(*zip(*points), label=name)
    ax.axhline(target, color="gray", linestyle=":", label="reference's final loss")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since stylize() was called")
    ax.set_ylabel("best full-size loss so far")
    ax.set_title(f"time to quality, {args.size} px")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "time_to_quality.png", dpi=90)
    print(f"wrote {args.out / 'time_to_quality.csv'} and {args.out / 'time_to_quality.png'}")


if __name__ == "__main__":
    main()
