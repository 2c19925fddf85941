"""Calibrate the balanced loss scale on trained VGG weights: how far each setting takes the style.

    python benchmarks/calibrate_loss_scale.py MATDIR [--random] [--size 256] [--iterations 200]
        [--optimizers lbfgs,adam] [--variants reference,balanced:0.5,balanced:5,gradient:1]
        [--contents chelsea,astronaut] [--style hubble-deep-field] [--out calibration]

Every `.mat` in MATDIR (MatConvNet-structured VGG-16/19 weights, taking RGB 0-255 less the
mean pixel; `--random` adds the seeded random-weight VGG-19) is exported once into OUT/models,
then each content (from examples/) is stylized with the style at --size px for --iterations,
once per optimizer and variant:

- `reference`: anishathalye/neural-style's losses and weights (5 / 500 / 100);
- `balanced:S[:T]`: each term relative to its target, content 1, style S, TV T (default 1);
- `gradient:S`: the content and style layers' losses normalized as crowsonkb/style-transfer-pytorch
  does it, sum(d^2) / sum(|d|) per layer (re-normalized at every evaluation, so each layer's
  gradient with respect to its features has an L1 norm near 2 whatever the weights), content
  relu4_2 at 1, style layers at S in all (split as the reference splits them), TV as balanced at 1.

For each run it records the logged terms (as `--log` writes them) at the first iteration and at
the best one, and a common yardstick for every variant: the balanced content and style terms at
unit weights (`content_rel` = mean((F-P)^2) / mean(P^2) on relu4_2, `style_rel` = the layers'
mean((G-A)^2) / mean(A^2), weighted as the reference weights them), of the noise start and of
the output image; `style_ratio` = style_rel(output) / style_rel(start). It writes OUT/results.jsonl
(a rerun skips the runs already there), a JPEG per run and OUT/results.md. It measures; it asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, model_path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class ScaledMSETerm:
    """sum_l w_l * sum(d_l^2) / sum(|d_l|), d_l = a layer's features (or Grams) less its target:
    the per-layer normalization of crowsonkb/style-transfer-pytorch (its gradient L1 norm is
    about 2 per layer, whatever the activations' scale)."""

    name: str
    targets: dict[str, Any]  # layer -> (1, C, h, w) features, or (1, C, C) Grams
    weights: dict[str, float]
    grams: bool

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def __call__(self, image: Any, features: Any) -> Any:
        from nst.contract import gram

        loss = image.new_zeros(())
        for layer, weight in self.weights.items():
            value = gram(features[layer].float()) if self.grams else features[layer].float()
            diff = value - self.targets[layer]
            loss = loss + weight * diff.pow(2).sum() / diff.abs().sum().add(1e-8)
        return loss


def variant_config(variant: str, base: Any) -> Any:
    """The StylizeConfig of a variant name (`gradient:S` runs with zero built-in content and style)."""
    kind, *values = variant.split(":")
    if kind == "reference":
        return base.replace(loss_scale="reference")
    if kind == "balanced":
        style, tv = float(values[0]), float(values[1]) if len(values) > 1 else 1.0
        return base.replace(loss_scale="balanced", content_weight=1.0, style_weight=style, tv_weight=tv)
    if kind == "gradient":
        return base.replace(loss_scale="balanced", content_weight=0.0, style_weight=0.0, tv_weight=1.0)
    raise SystemExit(f"unknown variant {variant!r}: reference, balanced:S[:T] or gradient:S")


def gradient_terms(session: Any, plan: Any, style_weight: float) -> list[ScaledMSETerm]:
    """The `gradient:S` variant's content and style terms, for a single-stage plan."""
    import torch

    from nst.models.layers import STYLE_LAYERS
    from nst.runtime.losses import style_layer_weights
    from nst.runtime.run import image_tensor

    size = plan.stages[0].size
    with torch.no_grad():
        found = session.model(image_tensor(plan.content, size, session.device), layers=("relu4_2",))
    content = ScaledMSETerm("gcontent", {"relu4_2": found["relu4_2"].float()}, {"relu4_2": 1.0}, grams=False)
    shares = style_layer_weights(STYLE_LAYERS, 1.0)
    grams = plan.style_grams[0][0]  # one style
    style = ScaledMSETerm("gstyle", {k: grams[k] for k in STYLE_LAYERS},
                          {k: style_weight * shares[k] for k in STYLE_LAYERS}, grams=True)  # fmt: skip
    return [content, style]


def yardstick(session: Any, plan: Any, config: Any, image: Any) -> dict[str, float]:
    """content_rel and style_rel (balanced terms at unit weights) of `image` ((1, 3, H, W) tensor)."""
    import torch

    from nst.runtime.objective import Objective, objective_terms
    from nst.runtime.run import image_tensor

    unit = config.replace(loss_scale="balanced", content_weight=1.0, style_weight=1.0, tv_weight=1.0)
    size = plan.stages[0].size
    content = image_tensor(plan.content, size, session.device)
    terms = objective_terms(session.model, content, plan.style_grams[0], plan.blend, unit)
    with torch.no_grad():
        _, values = Objective(session.model, terms)(image)
    return {"content_rel": float(values["content"]), "style_rel": float(values["style"])}


def start_image(session: Any, plan: Any, config: Any) -> Any:
    """The run's noise start, drawn as `Run` draws it (same seed, same generator)."""
    import torch

    from nst.runtime.plan import initial_image
    from nst.runtime.run import image_tensor

    generator = torch.Generator()
    generator.manual_seed(config.seed)
    content = image_tensor(plan.content, plan.stages[0].size, session.device)
    return initial_image(content, None, noiseblend=config.initial_noiseblend, mean_pixel=session.model.mean_pixel,
                         generator=generator)  # fmt: skip


def run_one(session: Any, content: Path, style: Path, config: Any, variant: str) -> tuple[dict[str, Any], Any]:
    """One run: its record and its image."""
    from nst.runtime.run import image_tensor

    plan = session.plan(content, styles=[style], config=config)
    extra = gradient_terms(session, plan, float(variant.split(":")[1])) if variant.startswith("gradient") else []
    steps: list[Any] = []
    start = time.perf_counter()
    image = session.stylize(content, styles=[style], config=config, callback=steps.append, extra_terms=extra)
    seconds = time.perf_counter() - start
    best = min(steps, key=lambda s: s.total)
    before = yardstick(session, plan, config, start_image(session, plan, config))
    after = yardstick(session, plan, config, image_tensor(image, plan.stages[0].size, session.device))
    record = {
        "first": {"total": steps[0].total, **steps[0].terms},
        "best": {"iteration": best.iteration, "total": best.total, **best.terms},
        "start": before,
        "output": after,
        "style_ratio": after["style_rel"] / before["style_rel"],
        "seconds": round(seconds, 1),
    }
    return record, image


def export_models(matdir: Path, out: Path, random: bool) -> dict[str, Path]:
    """name -> exported extractor of every .mat in `matdir` (and the random VGG-19)."""
    from nst.export.save import export_vgg_file

    models: dict[str, Path] = {"random-vgg19": model_path()} if random else {}
    (out / "models").mkdir(parents=True, exist_ok=True)
    for mat in sorted(matdir.glob("*.mat")):
        onnx = out / "models" / f"{mat.stem}.onnx"
        if not onnx.exists():
            export_vgg_file(mat, onnx)
        models[mat.stem] = onnx
    return models


def table(records: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    rows = [
        "| weights | content | optimizer | variant | style_rel start → output (ratio) | content_rel output | "
        "logged terms, iteration 1 → best | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        first = ", ".join(f"{k} {v:.3g}" for k, v in r["first"].items() if k != "total" and v)
        best = ", ".join(f"{k} {v:.3g}" for k, v in r["best"].items() if k not in ("total", "iteration") and v)
        rows.append(f"| {r['weights']} | {r['content']} | {r['optimizer']} | {r['variant']} | "
                    f"{r['start']['style_rel']:.3g} → {r['output']['style_rel']:.3g} ({r['style_ratio']:.2f}) | "
                    f"{r['output']['content_rel']:.3g} | {first} → {best} (it. {r['best']['iteration']}) | "
                    f"{r['seconds']:.0f} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("matdir", type=Path)
    parser.add_argument("--random", action="store_true", help="add the seeded random-weight VGG-19")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--optimizers", default="lbfgs,adam")
    parser.add_argument("--variants", default="reference,balanced:0.5,balanced:5,balanced:50,gradient:1")
    parser.add_argument("--contents", default="chelsea,astronaut")
    parser.add_argument("--style", default="hubble-deep-field")
    parser.add_argument("--out", type=Path, default=Path("calibration"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import Stylizer

    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    seen = {(r["weights"], r["content"], r["optimizer"], r["variant"], r["size"], r["iterations"]) for r in done}
    print(f"# {machine()}; {args.size} px, {args.iterations} iterations, style {args.style}", flush=True)
    style = EXAMPLES / f"{args.style}.jpg"
    for name, onnx in export_models(args.matdir, args.out, args.random).items():
        session = Stylizer(onnx)
        for content in args.contents.split(","):
            for optimizer in args.optimizers.split(","):
                for variant in args.variants.split(","):
                    key = (name, content, optimizer, variant, args.size, args.iterations)
                    if key in seen:
                        continue
                    base = StylizeConfig(
                        size=args.size, iterations=args.iterations, seed=args.seed, optimizer=optimizer
                    )
                    record, image = run_one(session, EXAMPLES / f"{content}.jpg", style,
                                            variant_config(variant, base), variant)  # fmt: skip
                    record = dict(zip(("weights", "content", "optimizer", "variant", "size", "iterations"), key),
                                  **record)  # fmt: skip
                    image.save(args.out / f"{name}-{content}-{optimizer}-{variant.replace(':', '_')}.jpg", quality=85)
                    with results.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    done.append(record)
                    print(table([record]).splitlines()[-1], flush=True)
    (args.out / "results.md").write_text(table(done))


if __name__ == "__main__":
    main()
