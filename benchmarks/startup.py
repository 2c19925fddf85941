"""Start-up time of `nst stylize` (from the command to the end of its first iteration, less that
iteration) with a cached model and a targets file, its peak RSS, and `nst --help`, against the
plain eager baseline (benchmarks/baseline.py) run the same way.

    python benchmarks/startup.py [--size 512] [--repeat 3] [--extra-iterations 2] [--model M.onnx]

Method: each command runs as a subprocess (through /usr/bin/time -v when present, for its peak
RSS), interleaved with the others --repeat times; medians are reported. One iteration is
measured by the difference between a run of 1 + K iterations and a run of 1 (K =
--extra-iterations), divided by K, and start-up = T(1 iteration) - one iteration. Start-up so
includes imports, loading the model and the targets, the content target pass, the first
iteration's one-time costs (allocations, any compilation) and writing the output image.
The baseline has no targets file: like the tutorial, it runs the style pass itself (at --size).
The model (seeded random VGG-19 unless --model) and the targets are built once beforehand, in
a temporary folder, and not timed. It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, TIME_V, machine, median, model_path, nst_command, run_measured

BASELINE = Path(__file__).resolve().parent / "baseline.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="content width (the content is square)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (median)")
    parser.add_argument(
        "--extra-iterations", type=int, default=2, help="K: one iteration = (T(1 + K iterations) - T(1)) / K"
    )
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    model = args.model or model_path()
    with tempfile.TemporaryDirectory(prefix="nst-startup-") as tmp:
        seconds, rss = _measure(_commands(args, model, Path(tmp)), args.repeat)
    t = {name: median(v) for name, v in seconds.items()}
    m = {name: max(v) for name, v in rss.items()}
    rss_source = "/usr/bin/time -v" if TIME_V.exists() else "getrusage(RUSAGE_CHILDREN)"
    print(
        f"# {machine()}; {args.size}x{args.size} px; model {model.name}; median of {args.repeat} "
        f"interleaved runs; peak RSS (max of the runs) from {rss_source}"
    )
    print("# issue 6 targets at 512 px on the 2-core CPU: start-up <= 1.5 s, peak RSS <= 700 MiB")
    print("| figure | nst | baseline | ratio (baseline / nst) |")
    print("|---|---|---|---|")
    for name, nst_v, base_v in _rows(t, m, args.extra_iterations):
        ratio = f"{base_v / nst_v:.2f}x" if base_v and nst_v > 0 else ""
        print(f"| {name} | {nst_v:.4g} | {f'{base_v:.4g}' if base_v is not None else '-'} | {ratio} |")


def _commands(args: argparse.Namespace, model: Path, folder: Path) -> dict[str, list[str]]:
    """The commands timed, by name: nst and the baseline at 1 and 1 + K iterations."""
    nst = nst_command()
    targets = folder / "style.targets"
    subprocess.run(
        [*nst, "precompute-style", str(STYLE), "-m", str(model), "-o", str(targets), "--size", str(args.size)],
        check=True,
        capture_output=True,
    )

    def stylize(iterations: int) -> list[str]:
        return [*nst, "stylize", str(CONTENT), "--targets", str(targets), "-m", str(model), "-o",
                str(folder / "out.png"), "--width", str(args.size), "--iterations", str(iterations), "--seed", "0",
                "--no-log", "-q", "--overwrite"]  # fmt: skip

    def baseline(iterations: int) -> list[str]:
        return [sys.executable, str(BASELINE), str(CONTENT), str(STYLE), "-m", str(model), "--size", str(args.size),
                "--iterations", str(iterations), "-o", str(folder / "base.png")]  # fmt: skip

    k = args.extra_iterations
    commands = {
        "help": [*nst, "--help"],
        "import torch": [sys.executable, "-c", "import torch"],
        "nst 1": stylize(1),
        "nst K": stylize(1 + k),
    }
    if not args.no_baseline:
        commands |= {"base 1": baseline(1), "base K": baseline(1 + k)}
    return commands


def _measure(commands: dict[str, list[str]], repeat: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(seconds, peak RSS in MiB) of each command's runs, interleaved, so that other load hits
    all commands alike."""
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, cmd in commands.items():
            t, r = run_measured(cmd)
            seconds[name].append(t)
            rss[name].append(r)
    return seconds, rss


def _rows(t: dict[str, float], m: dict[str, float], k: int) -> list[tuple[str, float, float | None]]:
    """(figure, nst, baseline) rows from median times `t` and peak RSS `m`."""
    rows: list[tuple[str, float, float | None]] = [
        ("`nst --help` s", t["help"], None),
        ("`python -c 'import torch'` s (for reference)", t["import torch"], None),
        ("peak RSS of `nst --help` MiB", m["help"], None),
    ]
    for label, key in (("run of 1 iteration s", "1"), (f"run of {1 + k} iterations s", "K")):
        rows.append((label, t[f"nst {key}"], t.get(f"base {key}")))
    per_iter = {who: (t[f"{who} K"] - t[f"{who} 1"]) / k for who in ("nst", "base") if f"{who} 1" in t}
    rows.append(("one iteration s (derived)", per_iter["nst"], per_iter.get("base")))
    base_start = t["base 1"] - per_iter["base"] if "base" in per_iter else None
    rows.append(("start-up s = run of 1 - one iteration", t["nst 1"] - per_iter["nst"], base_start))
    rows.append(("peak RSS, run of 1 iteration MiB", m["nst 1"], m.get("base 1")))
    rows.append((f"peak RSS, run of {1 + k} iterations MiB", m["nst K"], m.get("base K")))
    return rows


if __name__ == "__main__":
    main()
