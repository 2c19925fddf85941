"""Peak RSS of `nst stylize` at increasing sizes, in float32 and bf16, with and without
--low-memory, against the plain eager baseline; the fit behind nst's memory guard; and the
largest square image that fits a RAM budget.

    python benchmarks/memory.py [--sizes 256,512,768,1024] [--iterations 2] [--budget-gib 24]
        [--headroom-gib 2] [--model M.onnx] [--no-baseline] [--precisions fp32,bf16]

Each run is a subprocess (`nst stylize CONTENT STYLE -m M --size S --iterations N
--optimizer adam --precision P`, the style Grams computed in the run; benchmarks/baseline.py
for the baseline), its peak RSS read from /usr/bin/time -v (else from
getrusage(RUSAGE_CHILDREN), which is right only while the sizes increase).

The fit is RSS = a + b x pixels per mode, over the sizes measured. nst/runtime/memory.py
estimates a run's peak as BASE + PER_PIXEL x pixels + the optimizer's state + IMAGE_BUFFERS
image-sized buffers; this script prints the BASE and PER_PIXEL that the measurements give
(Adam's two buffers and the image buffers taken out of b), and, for every run, the guard's
estimate beside the measured peak: the estimate should not be below it. L-BFGS's history
(2 x --lbfgs-history image-sized float32 vectors, full after that many iterations) is
computed, not measured, for the long-run column. It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, TIME_V, machine, model_path, nst_command, run_measured

BASELINE = Path(__file__).resolve().parent / "baseline.py"
LBFGS_HISTORY = 100  # nst's default --lbfgs-history, and the baseline's history_size
MIB = 2**20


def history_mib(size: int) -> float:
    """L-BFGS's history at full length: 2 x history float32 vectors the size of the image."""
    return 2 * LBFGS_HISTORY * 3 * size * size * 4 / MIB


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
    parser.add_argument("--precisions", default="fp32,bf16", help="bf16 is left out where the CPU has no bf16 units")
    parser.add_argument("--budget-gib", type=float, default=24.0)
    parser.add_argument("--headroom-gib", type=float, default=2.0, help="left for the system and other programs")
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    from nst.runtime.device import cpu_has_bf16
    from nst.runtime.memory import BASE_MIB, IMAGE_BUFFERS, MARGIN, PER_PIXEL, estimate_peak

    model = args.model or model_path()
    nst = nst_command()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    precisions = [p for p in args.precisions.split(",") if p != "bf16" or cpu_has_bf16()]
    modes = {
        f"{p}{' --low-memory' if low else ''}": (p, low) for p in precisions for low in (False, True)
    }  # fmt: skip
    budget = (args.budget_gib - args.headroom_gib) * 1024

    results: dict[str, list[float]] = {name: [] for name in modes}
    if not args.no_baseline:
        results["baseline fp32"] = []
    with tempfile.TemporaryDirectory(prefix="nst-memory-") as tmp:
        out = Path(tmp)
        for size in sizes:
            for name, (precision, low) in modes.items():
                cmd = [*nst, "stylize", str(CONTENT), str(STYLE), "-m", str(model), "-o", str(out / "out.png"),
                       "--size", str(size), "--iterations", str(args.iterations), "--optimizer", "adam",
                       "--precision", precision, "--seed", "0", "--no-log", "-q", "--overwrite",
                       *(["--low-memory"] if low else [])]  # fmt: skip
                results[name].append(run_measured(cmd)[1])
            if "baseline fp32" in results:
                cmd = [sys.executable, str(BASELINE), str(CONTENT), str(STYLE), "-m", str(model), "--size",
                       str(size), "--iterations", str(args.iterations), "--optimizer", "adam"]  # fmt: skip
                results["baseline fp32"].append(run_measured(cmd)[1])

    rss_source = "/usr/bin/time -v" if TIME_V.exists() else "getrusage(RUSAGE_CHILDREN)"
    print(f"# {machine()}; model {model.name}; adam, {args.iterations} iterations per run; "
          f"peak RSS from {rss_source}; budget {args.budget_gib:g} GiB - {args.headroom_gib:g} GiB headroom")  # fmt: skip
    names = list(results)
    print("| size | " + " | ".join(f"{n} MiB" for n in names) + " | + L-BFGS history (computed) MiB |")
    print("|---" * (len(names) + 2) + "|")
    for i, size in enumerate(sizes):
        print(f"| {size} | " + " | ".join(f"{results[n][i]:.0f}" for n in names) + f" | {history_mib(size):.0f} |")

    print("\n## The guard's estimate beside the measured peak (nst/runtime/memory.py as it stands)")
    print("| size | mode | measured MiB | estimate MiB | estimate / measured |")
    print("|---|---|---|---|---|")
    for name, (precision, low) in modes.items():
        for size, measured in zip(sizes, results[name]):
            estimate = estimate_peak([(size, size)], optimizer="adam", lbfgs_history=LBFGS_HISTORY,
                                     iterations=args.iterations, precision=precision, low_memory=low).peak / MIB  # fmt: skip
            print(f"| {size} | {name} | {measured:.0f} | {estimate:.0f} | {estimate / measured:.2f} |")

    if len(sizes) < 2:
        print("\n(one size only: no fit)")
        return
    print(f"\n## Linear fit RSS = a + b x pixels; largest square side within {budget / 1024:g} GiB")
    print("| run | a MiB | b bytes per pixel | BASE_MIB, PER_PIXEL for the guard | largest side, short run px | "
          "largest side, 100 L-BFGS pairs px |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in names:
        a, b = fit(sizes, results[name])
        per_pixel = b * MIB - (IMAGE_BUFFERS + 2) * 12  # Adam's two buffers and the image buffers
        b_long = b + history_mib(1)
        now = f"now {BASE_MIB[modes[name]]:.0f}, {PER_PIXEL[modes[name]]:.0f}" if name in modes else ""
        guard = f"{a:.0f}, {per_pixel:.0f} ({now}; x {MARGIN:g})" if name in modes else "-"
        print(f"| {name} | {a:.0f} | {b * MIB:.0f} | {guard} | {largest_side(a, b, budget):.0f} | "
              f"{largest_side(a, b_long, budget):.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
