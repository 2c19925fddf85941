"""The two loss scales across image sizes, and the balanced weights that match the reference.

    python benchmarks/loss_scale.py [--sizes 256,512,1024] [--iterations 100] [--calibrate 512]

1. Calibration: a reference-scale run at --calibrate px; its final image's terms are then
   computed on the balanced scale too, and the balanced weights that give that image the same
   proportions between content, style and TV as the reference's weights are printed (content
   fixed at 1). They are the balanced defaults' basis (nst.runtime.config.DEFAULT_WEIGHTS).
2. Invariance across sizes: for each loss scale, a run of --iterations at each size from the
   same start; the content-to-style ratio of the final weighted terms. The balanced scale is
   meant to keep it within 2x across 256 ... 1024 px; the reference's moves with the size.
Content examples/astronaut.jpg, style examples/hubble-deep-field.jpg, squares of the size,
L-BFGS, random-weight VGG-19. It prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, machine, model_path


def final_terms(mirror, config) -> tuple[dict[str, float], object]:
    """The weighted terms of the run's best image (the last step of its final stage that
    holds its best loss) and the image itself."""
    from nst.runtime.stylize import Stylizer

    steps = []
    image = Stylizer(mirror, config=config).stylize(CONTENT, styles=[STYLE], callback=steps.append)
    best = min(steps, key=lambda s: s.total)
    return dict(best.terms), image


def terms_of(mirror, image, config) -> dict[str, float]:
    """The weighted terms of `image` under `config` (one float32 evaluation at its final size)."""
    import torch

    from nst.runtime.objective import Objective, objective_terms
    from nst.runtime.run import image_tensor
    from nst.runtime.stylize import Stylizer

    plan = Stylizer(mirror, config=config).plan(CONTENT, styles=[STYLE], config=config)
    size, cpu = plan.stages[-1].size, torch.device("cpu")
    content = image_tensor(plan.content, size, cpu)
    objective = Objective(mirror, objective_terms(mirror, content, plan.style_grams[-1], plan.blend, config))
    with torch.no_grad():
        _, values = objective(image_tensor(image, size, cpu))
    return {name: float(value) for name, value in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--calibrate", type=int, default=512, help="size of the calibration run (0: none)")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import load_mirror

    mirror = load_mirror(model_path())
    print(f"# {machine()}; L-BFGS, {args.iterations} iterations per run; precision {args.precision}")
    base = StylizeConfig(iterations=args.iterations, seed=0, precision=args.precision)
    if args.calibrate:
        reference = base.replace(size=args.calibrate, loss_scale="reference")
        ref_terms, image = final_terms(mirror, reference)
        unit = base.replace(size=args.calibrate, loss_scale="balanced", content_weight=1.0, style_weight=1.0,
                            tv_weight=1.0)  # fmt: skip
        raw = terms_of(mirror, image, unit)
        style = ref_terms["style"] / ref_terms["content"] * raw["content"] / raw["style"]
        tv = ref_terms["tv"] / ref_terms["content"] * raw["content"] / raw["tv"] if raw["tv"] else float("nan")
        print(f"\n## Calibration at {args.calibrate} px: the reference run's best image")
        print(f"reference terms (5 / 500 / 100): {', '.join(f'{k} {v:.4g}' for k, v in ref_terms.items())}")
        print(f"balanced terms at weights 1 / 1 / 1: {', '.join(f'{k} {v:.4g}' for k, v in raw.items())}")
        print(f"balanced weights with the reference's proportions: content 1, style {style:.3g}, tv {tv:.3g}")

    print("\n## Content-to-style ratio of the final terms across sizes")
    print("| loss scale | " + " | ".join(f"{s} px" for s in args.sizes.split(",")) + " | max / min |")
    print("|---" * (len(args.sizes.split(",")) + 2) + "|")
    for scale in ("reference", "balanced"):
        ratios = []
        for size in (int(s) for s in args.sizes.split(",")):
            values, _ = final_terms(mirror, base.replace(size=size, loss_scale=scale))
            ratios.append(values["content"] / values["style"])
        print(f"| {scale} | " + " | ".join(f"{r:.3g}" for r in ratios) + f" | {max(ratios) / min(ratios):.2f} |")


if __name__ == "__main__":
    main()
