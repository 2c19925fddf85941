"""Regions: how well each region takes its style, how much the other style leaks in, and what
masks cost per iteration, against unmasked runs in the same process.

    python benchmarks/regions.py [--size 256] [--iterations 100] [--model M.onnx] [--sheet OUT.jpg]

Content examples/astronaut.jpg; style A examples/hubble-deep-field.jpg on the left half, style
B examples/chelsea.jpg on the right (hard masks). Three runs from the same seed: masked (A | B),
unmasked with A, unmasked with B. Each output is scored with guided Grams (the loss's own
definition) over `inside` guides of each half, so that units straddling the border do not count:
- per-region style loss: the masked run's loss of style A in region A, relative to the unmasked
  A run's loss in the same region (1: as well styled as a whole-image run), and the same for B;
- leakage: style A's loss inside region B, masked run against the unmasked B run (which never saw
  A): below 1 means A leaked into B; the unmasked A run's value shows what full leakage is;
- cost: seconds per iteration, masked against unmasked, in alternating rounds (target <= 1.25x).
`--sheet` also writes the README's strip: content, styles, mask, result.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, machine, median, model_path

STYLE_B = CONTENT.parent / "chelsea.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--optimizer", default="lbfgs")
    parser.add_argument("--loss-scale", default="reference")
    parser.add_argument("--style-weight", type=float, default=None)
    parser.add_argument("--mask-mode", default="soft", choices=("soft", "inside"))
    parser.add_argument("--timing-iterations", type=int, default=6, help="iterations per timed loop (after 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating masked / unmasked timed loops")
    parser.add_argument("--model", type=Path, help="the ONNX extractor (default: seeded random VGG-19)")
    parser.add_argument("--sheet", type=Path, help="also write content | styles | mask | result here")
    args = parser.parse_args()

    import torch

    from nst.runtime.config import StylizeConfig
    from nst.runtime.images import open_image, resized_shape
    from nst.runtime.regions import Regions
    from nst.runtime.stylize import Stylizer

    model = args.model or model_path()
    config = StylizeConfig(iterations=args.iterations, size=args.size, seed=0, optimizer=args.optimizer,
                           loss_scale=args.loss_scale, style_weight=args.style_weight)  # fmt: skip
    session = Stylizer(model, config=config)
    content = open_image(CONTENT)
    h, w = resized_shape((content.height, content.width), long_side=args.size)
    left = np.zeros((h, w), np.float32)
    left[:, : w // 2] = 1
    regions = Regions(style_masks=(left, 1 - left), mode=args.mask_mode)
    start = time.perf_counter()
    runs = {
        "masked": session.render(CONTENT, styles=[STYLE, STYLE_B], masks=regions),
        "A": session.render(CONTENT, styles=[STYLE]),
        "B": session.render(CONTENT, styles=[STYLE_B]),
    }
    print(f"# {machine()}; model {model.name}; {w}x{h} px, {args.iterations} {args.optimizer} iterations, "
          f"{args.loss_scale} scale, {args.mask_mode} masks; three runs in {time.perf_counter() - start:.0f} s")  # fmt: skip
    score = _scorer(session, config, (h, w), left)
    table = {name: {key: score(rendered, key) for key in ("A in A", "B in B", "A in B", "B in A")}
             for name, rendered in runs.items()}  # fmt: skip
    print("\n| run | style A in region A | style B in region B | style A in region B | style B in region A |")
    print("|---|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.4g}" for k in ("A in A", "B in B", "A in B", "B in A")) + " |")
    m, a, b = table["masked"], table["A"], table["B"]
    print(
        f"\nper-region style loss, masked / unmasked: A {m['A in A'] / a['A in A']:.2f}x, B {m['B in B'] / b['B in B']:.2f}x"
    )
    print(f"leakage of A into B: masked {m['A in B']:.4g} against {b['A in B']:.4g} without A (ratio "
          f"{m['A in B'] / b['A in B']:.2f}; a whole-image A run: {a['A in B']:.4g})")  # fmt: skip
    print(f"leakage of B into A: masked {m['B in A']:.4g} against {a['B in A']:.4g} without B (ratio "
          f"{m['B in A'] / a['B in A']:.2f}; a whole-image B run: {b['B in A']:.4g})")  # fmt: skip
    masked_s, plain_s = _cost(session, config, regions, args.timing_iterations, args.rounds, torch)
    print(f"\ns/iteration: masked {masked_s:.3f}, unmasked {plain_s:.3f}: {masked_s / plain_s:.2f}x "
          "(target <= 1.25x)")  # fmt: skip
    if args.sheet:
        _sheet(args.sheet, runs["masked"].image, left)


def _scorer(session, config, size: tuple[int, int], left: np.ndarray):  # type: ignore[no-untyped-def]
    """score(rendered, "A in B") -> style A's loss (summed over the style layers, layer-weighted)
    over region B's inside guides, with the loss's own guided Grams."""
    import torch

    from nst.models.layers import STYLE_LAYERS
    from nst.runtime.grams import style_shape
    from nst.runtime.guides import guided_gram, mask_tensor, region_guides
    from nst.runtime.images import open_image
    from nst.runtime.losses import style_layer_weights, style_loss

    device = session.device
    masks = [mask_tensor(m, size, device) for m in (left, 1 - left)]
    guides = dict(zip("AB", region_guides(masks, session.model.table, STYLE_LAYERS, mode="inside")))
    styles = {}
    for key, path in (("A", STYLE), ("B", STYLE_B)):
        image = open_image(path)
        shape = style_shape((image.height, image.width), width=size[1])
        styles[key] = session.style_grams([image], [shape])[0]
    weights = style_layer_weights(STYLE_LAYERS, config.style_layer_weight_exp)

    def score(rendered, key: str) -> float:
        style, region = key.split(" in ")
        x = torch.from_numpy(np.ascontiguousarray(rendered.pixels.transpose(2, 0, 1)[None])).to(device)
        with torch.no_grad():
            features = session.model(x, layers=STYLE_LAYERS)
            return sum(
                weights[layer]
                * float(style_loss(guided_gram(features[layer], guides[region][layer]), styles[style][layer]))
                for layer in STYLE_LAYERS
                if layer in guides[region]
            )

    return score


def _cost(session, config, regions, iterations: int, rounds: int, torch) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median seconds per iteration of masked and unmasked runs, alternating (2 warm-up
    iterations left out of each)."""

    def per_iteration(masks) -> float:
        marks: list[float] = []
        session.render(CONTENT, styles=[STYLE, STYLE_B], masks=masks,
                       config=config.replace(iterations=iterations + 2),
                       callback=lambda step: marks.append(time.perf_counter()))  # fmt: skip
        return (marks[-1] - marks[1]) / (len(marks) - 2)

    masked, plain = [], []
    for _ in range(rounds):
        masked.append(per_iteration(regions))
        plain.append(per_iteration(None))
    return median(masked), median(plain)


def _sheet(path: Path, result, left: np.ndarray) -> None:
    """content | style A | style B | the mask | the result, 160 px high, labelled."""
    from PIL import Image, ImageDraw

    from nst.runtime.images import open_image

    height = 160
    tiles = [open_image(CONTENT), open_image(STYLE), open_image(STYLE_B),
             Image.fromarray((left * 255).astype(np.uint8), "L").convert("RGB"), result]  # fmt: skip
    labels = ["content", "style A (hubble)", "style B (chelsea)", "mask: A | B", "result"]
    scaled = [t.resize((round(t.width * height / t.height), height), Image.Resampling.LANCZOS) for t in tiles]
    sheet = Image.new("RGB", (sum(t.width for t in scaled) + 8 * (len(scaled) - 1), height + 18), "white")
    x = 0
    draw = ImageDraw.Draw(sheet)
    for tile, label in zip(scaled, labels):
        sheet.paste(tile, (x, 18))
        draw.rectangle((x, 18, x + tile.width - 1, 18 + height - 1), outline="grey")
        draw.text((x + 2, 3), label, fill="black")
        x += tile.width + 8
    sheet.save(path, quality=88)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
