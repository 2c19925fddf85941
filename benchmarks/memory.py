"""Peak RSS of `nst stylize` at increasing sizes, with and without --low-memory, against the plain
eager baseline, and a linear fit in pixels: the largest square image that fits a RAM budget.

    python benchmarks/memory.py [--sizes 256,512,768,1024] [--iterations 2] [--optimizer lbfgs]
        [--budget-gib 24] [--headroom-gib 2] [--model M.onnx] [--no-baseline]

Each run is a subprocess (`nst stylize CONTENT STYLE -m M --width S --iterations N`, the style
Grams computed in the run; benchmarks/baseline.py for the baseline), its peak RSS read from
/usr/bin/time -v (else from getrusage(RUSAGE_CHILDREN), which is right only while the sizes
increase). --low-memory is measured when `nst stylize --help` offers it.

A short run does not hold L-BFGS's full history: nst's L-BFGS (nst/runtime/optim.py), like
torch's, keeps history_size (100) pairs of image-sized float32 vectors, 2 x 100 x 3 x H x W x 4
bytes, reached after 100 iterations. That term is computed, not measured, and added for the
"long run" fit. The fit is RSS = a + b x pixels over the sizes measured; the largest side is
sqrt((budget - headroom - a) / b).
It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, TIME_V, machine, model_path, nst_command, run_measured

BASELINE = Path(__file__).resolve().parent / "baseline.py"
LBFGS_HISTORY = 100  # nst's and the baseline's history_size


def history_mib(size: int, optimizer: str) -> float:
    """L-BFGS's history at full length: 2 x history_size float32 vectors the size of the image."""
    return 2 * LBFGS_HISTORY * 3 * size * size * 4 / 2**20 if optimizer == "lbfgs" else 0.0


def fit(sizes: list[int], mib: list[float]) -> tuple[float, float]:
    """Least squares RSS = a + b x pixels; (a MiB, b MiB per pixel)."""
    xs = [s * s for s in sizes]
    n = len(xs)
    mx, my = sum(xs) / n, sum(mib) / n
    b = sum((x - mx) * (y - my) for x, y in zip(xs, mib)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def largest_side(a: float, b: float, budget_mib: float) -> float:
    return math.sqrt((budget_mib - a) / b) if b > 0 and budget_mib > a else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,768,1024", help="square sizes in px, increasing")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--budget-gib", type=float, default=24.0)
    parser.add_argument("--headroom-gib", type=float, default=2.0, help="left for the system and other programs")
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    model = args.model or model_path()
    nst = nst_command()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    help_text = subprocess.run([*nst, "stylize", "--help"], capture_output=True, text=True).stdout
    modes = {"nst": []} | ({"nst --low-memory": ["--low-memory"]} if "--low-memory" in help_text else {})
    budget = (args.budget_gib - args.headroom_gib) * 1024

    results: dict[str, list[float]] = {name: [] for name in modes}
    if not args.no_baseline:
        results["baseline"] = []
    with tempfile.TemporaryDirectory(prefix="nst-memory-") as tmp:
        out = Path(tmp)
        for size in sizes:
            for name, extra in modes.items():
                cmd = [
                    *nst,
                    "stylize",
                    str(CONTENT),
                    str(STYLE),
                    "-m",
                    str(model),
                    "-o",
                    str(out / "out.png"),
                    "--width",
                    str(size),
                    "--iterations",
                    str(args.iterations),
                    "--optimizer",
                    args.optimizer,
                    "--seed",
                    "0",
                    "--no-log",
                    "-q",
                    "--overwrite",
                    *extra,
                ]
                results[name].append(run_measured(cmd)[1])
            if "baseline" in results:
                cmd = [
                    sys.executable,
                    str(BASELINE),
                    str(CONTENT),
                    str(STYLE),
                    "-m",
                    str(model),
                    "--size",
                    str(size),
                    "--iterations",
                    str(args.iterations),
                    "--optimizer",
                    args.optimizer,
                ]
                results["baseline"].append(run_measured(cmd)[1])

    rss_source = "/usr/bin/time -v" if TIME_V.exists() else "getrusage(RUSAGE_CHILDREN)"
    print(
        f"# {machine()}; model {model.name}; {args.optimizer}, {args.iterations} iterations per run; "
        f"peak RSS from {rss_source}; budget {args.budget_gib:g} GiB - {args.headroom_gib:g} GiB headroom"
    )
    if "nst --low-memory" not in modes:
        print("# nst stylize has no --low-memory option yet: measured without it only")
    names = list(results)
    print(
        "| size | pixels | "
        + " | ".join(f"{n} MiB" for n in names)
        + (" | baseline / nst" if "baseline" in results else "")
        + " | + L-BFGS history (computed) MiB |"
    )
    print("|---" * (len(names) + 3 + ("baseline" in results)) + "|")
    for i, size in enumerate(sizes):
        cells = [f"{results[n][i]:.0f}" for n in names]
        ratio = [f"{results['baseline'][i] / results['nst'][i]:.2f}x"] if "baseline" in results else []
        print(
            f"| {size} | {size * size} | " + " | ".join(cells + ratio) + f" | {history_mib(size, args.optimizer):.0f} |"
        )

    if len(sizes) < 2:
        print("\n(one size only: no fit)")
        return
    print(f"\nlinear fit RSS = a + b x pixels; largest square side within {budget / 1024:g} GiB")
    print("| run | a MiB | b MiB per megapixel | largest side, short run px | largest side, long run px |")
    print("|---|---|---|---|---|")
    for name in names:
        a, b = fit(sizes, results[name])
        # Long run: the full L-BFGS history adds 2 x 100 x 3 x 4 bytes per pixel.
        b_long = b + history_mib(1, args.optimizer)
        print(
            f"| {name} | {a:.0f} | {b * 1e6:.0f} | {largest_side(a, b, budget):.0f} | "
            f"{largest_side(a, b_long, budget):.0f} |"
        )


if __name__ == "__main__":
    main()
