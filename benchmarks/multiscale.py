"""Multi-scale (coarse to fine) against single-scale: time to reach the single-scale loss.

    python benchmarks/multiscale.py [--size 512] [--iterations 60] [--optimizer lbfgs] [--scales 3]

Single-scale runs --iterations at full size; multi-scale runs --multi-iterations (default
the same number) split evenly over --scales stages (from --min-size up). Reported: each one's time and final loss,
and when multi-scale first reached the single-scale final loss. Losses compare at the full
size only. Random-weight VGG-19 unless --model (see benchmarks/optimizers.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, model_path
from benchmarks.optimizers import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--optimizer", default=None, help="default: StylizeConfig's")
    parser.add_argument(
        "--multi-iterations",
        type=int,
        default=None,
        help="iterations of the multi-scale run (default: --iterations); it is timed "
        "until it first reaches the single-scale final loss",
    )
    parser.add_argument("--scales", type=int, default=3)
    parser.add_argument("--min-size", type=int, default=128)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    from nst.runtime.config import StylizeConfig
    from nst.runtime.mirror import VGGMirror

    optimizer = args.optimizer or StylizeConfig().optimizer
    model = args.model or model_path()
    mirror = VGGMirror.from_onnx(model)
    run(mirror, 64, optimizer, 0.0)  # warm-up
    print(
        f"# {machine()}; {optimizer}; {args.size} px; {args.iterations} iterations single-scale, "
        f"{args.multi_iterations or args.iterations} multi-scale"
    )
    single = run(mirror, args.size, optimizer, float("inf"), iterations=args.iterations)
    multi = run(
        mirror,
        args.size,
        optimizer,
        float("inf"),
        scales=args.scales,
        iterations=args.multi_iterations or args.iterations,
        min_size=args.min_size,
    )
    target = min(s.total for s in single)
    final = multi[-1].size
    reached = next((s for s in multi if s.size == final and s.total <= target), None)
    sizes = sorted({s.size for s in multi})  # (height, width)
    print("| run | stages | time s | final loss |")
    print("|---|---|---|---|")
    print(f"| single-scale | {single[-1].size[1]}x{single[-1].size[0]} | {single[-1].elapsed:.1f} | {target:.4g} |")
    print(
        f"| multi-scale | {' > '.join(f'{w}x{h}' for h, w in sizes)} | {multi[-1].elapsed:.1f} | "
        f"{min(s.total for s in multi if s.size == final):.4g} |"
    )
    if reached:
        print(
            f"\nmulti-scale reached the single-scale final loss at {reached.elapsed:.1f} s "
            f"(iteration {reached.iteration}): {reached.elapsed / single[-1].elapsed:.2f}x the single-scale time"
        )
    else:
        print("\nmulti-scale did not reach the single-scale final loss")


if __name__ == "__main__":
    main()
