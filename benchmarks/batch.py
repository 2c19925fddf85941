"""Images per hour of `nst.stylize_batch`: one process, local worker processes, local Ray.

    python benchmarks/batch.py                       # 8 contents, 256 px, 100 iterations
    python benchmarks/batch.py --quick               # a smoke run: 4 contents, 64 px, 5 iterations
    python benchmarks/batch.py --contents 4 --iterations 10 --modes sequential,workers

Each mode stylizes the same contents (crops of the example photos, one style) into a fresh
folder, in this process through the library, one mode after the other in the same run, and
reports: wall time; start-up (to the first iteration: the model, worker processes, the Ray
instance); images per hour over the whole run, and in the steady state (after the first
round of outputs, one per process running at once: give more contents than processes); the
ratios to one process; and the per-image overhead after the first image (time that is not
iterations: the content pass, encoding, writing, the manifest) as a share of one image's
iterations (issue 12's target: at most 5 %). One process uses every physical core as torch
threads; N workers get cores / N threads each; Ray gets one task per physical core (a local
instance with that many CPUs) with one thread each. It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

from nst.batch import Execution
from nst.batch.execution import RAY_LOCAL

from common import CONTENT, STYLE, machine, model_path

MODES = ("sequential", "workers", "ray")
TARGET = 0.05  # issue 12: overhead per image after the first, as a share of one image's time
QUICK = {"contents": 4, "size": 64, "iterations": 5}


def make_contents(folder: Path, count: int, size: int) -> list[Path]:
    """`count` different square crops of the example photos, `size` px."""
    from PIL import Image, ImageOps

    sources = [Image.open(p).convert("RGB") for p in sorted(CONTENT.parent.glob("*.jpg")) if p != STYLE]
    paths = []
    for i in range(count):
        img = sources[i % len(sources)]
        side = min(img.size) * (10 - i // len(sources) % 4) // 10  # 100 %, 90 %, 80 %, 70 % of the short side
        left, top = (img.width - side) * (i % 3) // 2, (img.height - side) * (i % 2)
        crop = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
        if i // len(sources) % 2:
            crop = ImageOps.mirror(crop)
        paths.append(folder / f"content{i:02d}.png")
        crop.save(paths[-1])
    return paths


def measure(mode: str, contents: list[Path], outdir: Path, args: argparse.Namespace) -> dict:
    import nst
    from nst.runtime.config import StylizeConfig
    from nst.runtime.ort_extractor import physical_cores

    config = StylizeConfig(iterations=args.iterations, size=args.size, seed=0, device="cpu")
    steps: dict[int, list[tuple[int, float]]] = {}  # job -> [(iteration, elapsed in its run)]
    done: dict[int, float] = {}  # job -> seconds since the start when the driver had written it
    first_step: list[float] = []

    def on_event(event) -> None:
        now = time.perf_counter() - start
        if event.kind == "step":
            steps.setdefault(event.index, []).append((event.iteration, event.elapsed))
            if not first_step:
                first_step.append(now)
        elif event.kind == "done":
            done[event.index] = now
            if event.result.status != "ok":
                print(f"  {event.result.output.name} failed: {event.result.error}")

    cores = physical_cores()
    start = time.perf_counter()  # Ray's start-up counts, as the command's would
    ray = None
    if mode == "ray":
        import ray

        # One CPU per physical core (Ray counts logical CPUs by default), so one task per core.
        ray.init(num_cpus=cores, include_dashboard=False, logging_level="ERROR")
    execution = {"sequential": Execution(workers=1), "workers": Execution(workers=args.workers),
                 "ray": Execution(ray=RAY_LOCAL)}[mode]  # fmt: skip
    try:
        results = nst.stylize_batch(contents, outdir=outdir, styles=[STYLE], config=config, model=args.model,
                                    callback=on_event, execution=execution)  # fmt: skip
    finally:
        if ray is not None:
            ray.shutdown()
    wall = time.perf_counter() - start
    ok = [r for r in results if r.status == "ok"]
    index = {r.output: i for i, r in enumerate(results)}
    order = sorted(done.values())
    # Steady state: after the first round (one output per slot running at once), so that
    # start-up and outputs finishing together do not count.
    slots = {"sequential": 1, "workers": args.workers, "ray": cores}[mode]
    after = order[slots - 1 :]
    steady = (after[-1] - after[0]) / (len(after) - 1) if len(after) > 1 else math.nan
    loops = {i: loop_seconds(s, args.iterations) for i, s in steps.items() if len(s) > 1}
    # After the first image: what each output costs beyond its own iterations. One process:
    # the driver's gap between two outputs (everything that is not iterations). In parallel,
    # each worker's job time (the gaps overlap), leaving out each worker's first job (its
    # style pass).
    if mode == "sequential":
        ids = sorted(done, key=done.get)
        overheads = [done[b] - done[a] - loops[b] for a, b in zip(ids, ids[1:]) if b in loops]
    else:
        firsts: dict[str | None, int] = {}
        for r in sorted(ok, key=lambda r: done.get(index[r.output], math.inf)):
            firsts.setdefault(r.worker, index[r.output])
        overheads = [r.seconds - loops[index[r.output]] for r in ok
                     if index[r.output] not in firsts.values() and index[r.output] in loops and r.seconds is not None]  # fmt: skip
    return {
        "mode": mode if mode != "workers" else f"--workers {args.workers}",
        "ok": len(ok),
        "wall": wall,
        "startup": first_step[0] if first_step else math.nan,
        "per_hour": 3600 * len(ok) / wall,
        "steady_per_hour": 3600 / steady if steady > 0 else math.nan,
        "loop": statistics.median(loops.values()) if loops else math.nan,
        "overhead": statistics.median(overheads) if overheads else math.nan,
    }


def loop_seconds(steps: list[tuple[int, float]], iterations: int) -> float:
    """One image's iteration time, from the steps reported (all of them locally, a few a
    second from Ray): the rate between the first and the last, times the iterations."""
    (i0, t0), (i1, t1) = steps[0], steps[-1]
    return (t1 - t0) / (i1 - i0) * iterations


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if math.isfinite(value) and math.isfinite(base) and base > 0 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contents", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES))
    parser.add_argument("--model", type=Path, help="ONNX extractor (default: a seeded random-weight VGG-19)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run that proves the script works (figures meaningless): "
                        + ", ".join(f"--{k} {v}" for k, v in QUICK.items()))  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"--modes: no mode {', '.join(unknown)} (choose from {', '.join(MODES)})")
    args.model = args.model or model_path()

    import torch

    from nst.runtime.ort_extractor import physical_cores

    torch.set_num_threads(physical_cores())  # one process: every core
    print(f"machine: {machine()}; load average before: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{args.contents} contents at {args.size} px, {args.iterations} L-BFGS iterations, style {STYLE.name}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nst-batch-bench-") as tmp:
        contents = make_contents(Path(tmp), args.contents, args.size)
        for mode in modes:
            if mode == "ray":
                try:
                    import ray  # noqa: F401
                except ImportError:
                    print("ray: skipped (pip install 'nst[ray]')")
                    continue
            print(f"{mode} ...", flush=True)
            try:
                rows.append(measure(mode, contents, Path(tmp) / mode, args))
            except Exception as exc:  # Ray that does not start on a busy machine: the other modes still print
                print(
                    f"{mode}: failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
                )
    print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    base = next((r for r in rows if r["mode"] == "sequential"), None)
    print("| mode | outputs | wall s | start-up s | images/h (wall) | vs one process (wall) | images/h (steady) "
          "| vs one process (steady) | s per image's iterations | overhead per image after the first |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        share = r["overhead"] / r["loop"] if r["loop"] > 0 else math.nan
        verdict = "" if not math.isfinite(share) else (" ≤ 5 %" if share <= TARGET else " > 5 %")
        print(f"| {r['mode']} | {r['ok']} | {r['wall']:.1f} | {r['startup']:.1f} | {r['per_hour']:.0f} "
              f"| {ratio(r['per_hour'], base['per_hour']) if base else '-'} | {r['steady_per_hour']:.0f} "
              f"| {ratio(r['steady_per_hour'], base['steady_per_hour']) if base else '-'} | {r['loop']:.2f} "
              f"| {r['overhead']:.3f} s ({100 * share:.1f} %{verdict}) |")  # fmt: skip


if __name__ == "__main__":
    main()
