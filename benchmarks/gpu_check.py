"""One command for a CUDA machine: parity with the CPU, speed, an end-to-end run, memory.

    python benchmarks/gpu_check.py [--quick] [--sizes 512,1024] [--iterations 1000]

On a CUDA machine it prints one table with:
- CPU-versus-CUDA parity of the features, the Grams and one loss gradient, in fp32 and bf16
  (relative to each output's scale; the gradient as cosine and relative error);
- s/iteration of stylize() at --sizes in fp32, bf16, and bf16 with --compile (512 only);
- the wall time of `nst stylize` at 512 px x --iterations, end to end through the CLI, and
  its iterations alone (from its loss log);
- peak GPU memory of that run (torch.cuda.max_memory_allocated in a same-settings run here);
- the largest square the memory guard accepts, with and without --low-memory, each checked
  by running two iterations at that size (measured peak beside the estimate).
Without CUDA it runs its CPU part (the same parity in fp32 against bf16 on the CPU, and
s/iteration at 256 px) so that it can be tried anywhere. Random-weight VGG-19 (speed and
memory do not depend on the weights). Designed to finish within 8 minutes on one H200;
every section catches its own failure and reports it as a row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, machine, model_path, nst_command

ROWS: list[tuple[str, str, str]] = []  # section, figure, value


def row(section: str, figure: str, value: str) -> None:
    ROWS.append((section, figure, value))
    print(f"  {section} | {figure} | {value}", flush=True)


def guarded(section: str, fn: Callable[[], None]) -> None:
    start = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # a failing section is a finding, not the end of the check
        row(section, "FAILED", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    row(section, "section time", f"{time.perf_counter() - start:.1f} s")


def parity(model: Path, device: str) -> None:
    """Features, Grams and the objective's gradient on `device` (fp32, bf16) against CPU fp32."""
    import torch

    from nst.contract import gram
    from nst.models.layers import STYLE_LAYERS
    from nst.runtime.config import StylizeConfig
    from nst.runtime.device import autocast, channels_last
    from nst.runtime.mirror import VGGMirror
    from nst.runtime.objective import Objective, objective_terms

    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 192, 160, generator=generator) * 255
    content = torch.rand(1, 3, 192, 160, generator=generator) * 255
    cpu = VGGMirror.from_onnx(model)
    with torch.no_grad():
        want = cpu(image, grams=STYLE_LAYERS)
    grams = [{n: gram(want[n]) for n in STYLE_LAYERS}]

    def gradient(mirror, dev: torch.device, precision: str) -> tuple[torch.Tensor, float]:
        terms = objective_terms(mirror, content.to(dev), [{k: v.to(dev) for k, v in grams[0].items()}], (1.0,),
                                StylizeConfig(precision=precision))  # fmt: skip
        objective = Objective(mirror, terms, precision=autocast(dev, precision), channels_last=channels_last(dev))
        x = (image + 10).to(dev).requires_grad_(True)
        total = objective(x)[0]
        total.backward()
        return x.grad.detach().float().cpu().reshape(-1), total.item()

    reference_grad, reference_loss = gradient(cpu, torch.device("cpu"), "fp32")
    dev = torch.device(device)
    mirror = VGGMirror.from_onnx(model).to(dev)
    if channels_last(dev):
        mirror = mirror.to(memory_format=torch.channels_last)
    for precision in ("fp32", "bf16"):
        x = image.to(dev)
        x = x.contiguous(memory_format=torch.channels_last) if channels_last(dev) else x
        with torch.no_grad(), autocast(dev, precision)():
            got = mirror(x, grams=STYLE_LAYERS)
        feature_err = max(_rel(got[n], want[n]) for n in want if not n.startswith("gram_"))
        gram_err = max(_rel(got[n], want[n]) for n in want if n.startswith("gram_"))
        grad, loss = gradient(mirror, dev, precision)
        cosine = float(torch.nn.functional.cosine_similarity(grad, reference_grad, dim=0))
        row("parity", f"{device} {precision} vs cpu fp32: features / Grams max rel. error",
            f"{feature_err:.1e} / {gram_err:.1e}")  # fmt: skip
        row("parity", f"{device} {precision} vs cpu fp32: loss rel. error, gradient cosine",
            f"{abs(loss / reference_loss - 1):.1e}, {cosine:.6f}")  # fmt: skip


def _rel(a, b) -> float:
    return float((a.float().cpu() - b.float()).abs().max() / b.float().abs().max())


def speed(model: Path, device: str, sizes: list[int], iterations: int = 12, warmup: int = 3) -> None:
    import torch

    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import Stylizer

    variants = [("fp32", False), ("bf16", False)] + ([("bf16", True)] if device.startswith("cuda") else [])
    for size in sizes:
        for precision, compiled in variants:
            if compiled and size != sizes[0]:
                continue  # one compiled size: each new shape compiles again
            config = StylizeConfig(size=size, iterations=warmup + iterations, seed=0, precision=precision,
                                   compile=compiled, device=device)  # fmt: skip
            marks: list[float] = []
            session = Stylizer(model, config=config)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            session.stylize(CONTENT, styles=[STYLE], callback=lambda step, m=marks: m.append(time.perf_counter()))
            gaps = sorted(b - a for a, b in zip(marks[warmup:], marks[warmup + 1 :]))
            label = f"{size} px {precision}{' --compile' if compiled else ''}"
            row("speed", f"{label}: s/iteration (median after {warmup} warm-up)", f"{gaps[len(gaps) // 2]:.4f}")
            row("speed", f"{label}: time to the first iteration (set-up, compile)", f"{marks[0] - start:.2f} s")


def end_to_end(model: Path, device: str, iterations: int) -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        cmd = [*nst_command(), "stylize", str(CONTENT), str(STYLE), "-m", str(model), "-o", str(out), "--size",
               "512", "--iterations", str(iterations), "--device", device, "-q", "--seed", "0"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
        rows = (Path(tmp) / "out.losses.csv").read_text().splitlines()[1:]
        first, last = float(rows[0].split(",")[4]), float(rows[-1].split(",")[4])
        row("end to end", f"`nst stylize` 512 px x {iterations} iterations, wall time", f"{wall:.2f} s")
        row(
            "end to end",
            f"its {iterations - 1} iterations after the first (from its loss log)",
            f"{last - first:.2f} s",
        )
        from PIL import Image

        with Image.open(out) as image:
            params = json.loads(image.text["nst:parameters"])
        row("end to end", "device and precision the PNG records", f"{params['device']}, {params['precision_used']}")
    if device.startswith("cuda"):
        from nst.runtime.config import StylizeConfig
        from nst.runtime.stylize import Stylizer

        torch.cuda.reset_peak_memory_stats()
        Stylizer(model, config=StylizeConfig(size=512, iterations=20, seed=0, device=device)).stylize(
            CONTENT, styles=[STYLE]
        )
        row("memory", "peak GPU memory, 512 px, 20 L-BFGS iterations",
            f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")  # fmt: skip


def largest(model: Path, device: str) -> None:
    """The largest square the guard accepts (a bisection on its verdict, which allocates
    nothing), then two real Adam iterations there (styles at a quarter of the width, so that
    the one-off style pass stays small)."""
    import torch

    from nst.errors import ResourceError
    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import Stylizer

    session = Stylizer(model, config=StylizeConfig(device=device))
    for low in (False, True):
        config = StylizeConfig(iterations=2, low_memory=low, device=device, optimizer="adam", style_scales=(0.25,))
        fits, refused = 256, 30000
        while refused - fits > 64:
            size = (fits + refused) // 2
            try:
                _check_guard(session, config, size)
                fits = size
            except ResourceError:
                refused = size
        row("memory", f"largest square the guard accepts{' with --low-memory' if low else ''}", f"{fits} px")
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        session.stylize(CONTENT, styles=[STYLE], config=config.replace(size=fits))
        row("memory", f"  two iterations at {fits} px: peak allocated, time",
            f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, {time.perf_counter() - start:.1f} s")  # fmt: skip


def _check_guard(session, config, size: int) -> None:
    from nst.runtime.device import precision_name
    from nst.runtime.memory import check_fits, estimate_peak

    estimate = estimate_peak([(size, size)], optimizer=config.optimizer, lbfgs_history=config.lbfgs_history,
                             iterations=config.iterations, precision=precision_name(session.device, config.precision),
                             low_memory=config.low_memory)  # fmt: skip
    check_fits(estimate, device=str(session.device), optimizer=config.optimizer, low_memory=config.low_memory,
               size=size)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--iterations", type=int, default=1000, help="of the end-to-end CLI run")
    parser.add_argument("--quick", action="store_true", help="small sizes and few iterations (a dry run)")
    args = parser.parse_args()

    import torch

    model = model_path()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    sizes = [int(s) for s in args.sizes.split(",")] if cuda else [256]
    iterations = args.iterations if cuda else 20
    if args.quick:
        sizes, iterations = [128], 10
    start = time.perf_counter()
    print(f"# {machine()}; " + (f"CUDA: {torch.cuda.get_device_name()}" if cuda else "no CUDA: the CPU part only"))
    guarded("parity", lambda: parity(model, device))
    guarded("speed", lambda: speed(model, device, sizes))
    guarded("end to end", lambda: end_to_end(model, device, iterations))
    if cuda and not args.quick:
        guarded("memory", lambda: largest(model, device))
    print(f"\n## gpu_check: {machine()}" + (f", {torch.cuda.get_device_name()}" if cuda else ", CPU only"))
    print("| section | figure | value |")
    print("|---|---|---|")
    for section, figure, value in ROWS:
        print(f"| {section} | {figure} | {value} |")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
