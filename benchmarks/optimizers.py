"""Adam against L-BFGS: loss against wall time, side by side, at 256 and 512 px.

    python benchmarks/optimizers.py [--sizes 256,512] [--seconds 60] [--model M.onnx]

Each optimizer gets the same time budget at each size, from the same noise start (same
seed), content and style; the winner is the one with the lower loss when the budget ends.
Without --model it uses a seeded random-weight VGG-19 (benchmarks/common.py): the real
weights cannot be downloaded here, so absolute losses differ from real runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, median, model_path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "examples" / "astronaut.jpg"
STYLE = ROOT / "examples" / "hubble-deep-field.jpg"


class _Budget(Exception):
    pass


def run(
    model, size: int, optimizer: str, seconds: float, scales: int = 1, iterations: int = 100_000, min_size: int = 128
):
    """Stylize for `seconds` (or `iterations`); return the steps (elapsed counts from the call)."""
    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import stylize

    steps = []

    def on_step(step):
        steps.append(step)
        if step.elapsed > seconds:
            raise _Budget

    config = StylizeConfig(
        iterations=iterations, width=size, optimizer=optimizer, seed=0, scales=scales, min_size=min_size
    )
    try:
        stylize(CONTENT, [STYLE], config=config, model=model, callback=on_step)
    except _Budget:
        pass
    return steps


def loss_at(steps, t: float) -> float:
    """The lowest loss reached by time t (at the final size)."""
    final = steps[-1].size
    seen = [s.total for s in steps if s.elapsed <= t and s.size == final]
    return min(seen) if seen else float("nan")


def s_per_iteration(steps) -> float:
    times = [b.elapsed - a.elapsed for a, b in zip(steps, steps[1:])]
    return median(times[1:] or times)  # the first step pays one-time costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget per optimizer and size")
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    model = args.model or model_path()
    from nst.runtime.mirror import VGGMirror

    mirror = VGGMirror.from_onnx(model)
    run(mirror, 64, "adam", 0.0)  # warm-up: one-time imports and allocations
    run(mirror, 64, "lbfgs", 0.0)
    print(
        f"# {machine()}; model {model.name}; content {CONTENT.name}, style {STYLE.name}; "
        f"budget {args.seconds:g} s per run"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        results = {name: run(mirror, size, name, args.seconds) for name in ("adam", "lbfgs")}
        print(f"\n## {size} px wide")
        print(
            "| optimizer | s/iteration | iterations | "
            + " | ".join(f"loss at {f:.0%}" for f in (0.25, 0.5, 1.0))
            + " |"
        )
        print("|---|---|---|---|---|---|")
        for name, steps in results.items():
            cells = [f"{loss_at(steps, f * args.seconds):.4g}" for f in (0.25, 0.5, 1.0)]
            print(f"| {name} | {s_per_iteration(steps):.3f} | {len(steps)} | " + " | ".join(cells) + " |")
        adam, lbfgs = (loss_at(results[n], args.seconds) for n in ("adam", "lbfgs"))
        winner = "lbfgs" if lbfgs < adam else "adam"
        print(f"\nat {args.seconds:g} s: {winner} is lower; adam/lbfgs loss ratio {adam / lbfgs:.2f}")
        print("\nloss against time (s, adam, lbfgs):")
        for t in [args.seconds * k / 10 for k in range(1, 11)]:
            print(f"{t:7.1f}  {loss_at(results['adam'], t):12.5g}  {loss_at(results['lbfgs'], t):12.5g}")


if __name__ == "__main__":
    main()
