"""Video quality (issue 20): temporal consistency against per-frame stylization, on two clips built at
run time from the example photos, and the figures the video defaults are chosen from.

    python benchmarks/video.py [--frames 5] [--size 80] [--iterations 60] [--quick]

Clips (frames cropped at --size px long side, 4:3):
- pan: a camera pan over examples/astronaut.jpg, 2 px right and 1 px down a frame: the true backward
  flow is that shift everywhere, and a pixel counts where its source lies inside the previous frame;
- object: a patch of examples/chelsea.jpg moving 4 px a frame across a still crop of the astronaut, so
  that it covers and uncovers the background; the background it uncovers is left out (an occlusion),
  as is a 1 px band along its edge.

Style examples/hubble-deep-field.jpg, seeded random-weight VGG-19 (benchmarks/common.py). Per frame:
each frame from noise with --iterations (the same seed for every frame, as stylize-batch does; its
first frame is the video's first frame; kept in $NST_BENCH_CACHE for the next run). Video: the frame driver over the clip from that first frame,
later frames with a share of --iterations, held by the temporal term (DIS flow, estimated; the scores
use the true flow). Each run is scored by:
- the warp error, mean over frames t >= 2 of sum M (O_t - warp(O_{t-1}))^2 / sum M, 0-255 units, and
  its ratio to per-frame stylization's (target <= 0.5 on the pan);
- the style and content losses of the final frames, the mean ratio to per-frame's (target: style
  within 10 %);
- seconds per later frame against the first frame's (a timing: quiet machine only).

Sweeps: the temporal weight per loss scale (--weights-reference, --weights-balanced) at the default
later share, and on the reference scale the later share (--shares) at the default weight, long-term
frames 1,2,4 and Farnebäck's flow, on both clips. `--strip PATH` also
draws the pan's frames, their per-frame stylization and the first video run (the README's figure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CACHE, CONTENT, STYLE, machine, model_path

OBJECT = CONTENT.parent / "chelsea.jpg"


@dataclass
class Clip:
    name: str
    frames: list[np.ndarray]  # (H, W, 3) uint8
    flows: list[np.ndarray]  # true backward flow of frame t >= 1, (H, W, 2)
    masks: list[np.ndarray]  # where it holds, (H, W) float


def _photo(path: Path, width: int) -> np.ndarray:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    return np.asarray(img.resize((width, round(width * img.height / img.width)), Image.Resampling.LANCZOS))


def pan_clip(frames: int, size: int) -> Clip:
    w, h = size, size * 3 // 4
    dx, dy = 2, 1
    photo = _photo(CONTENT, 2 * w)
    x0, y0 = w // 3, h // 3
    crops = [photo[y0 + t * dy : y0 + t * dy + h, x0 + t * dx : x0 + t * dx + w].copy() for t in range(frames)]
    flow = np.broadcast_to(np.array([dx, dy], np.float32), (h, w, 2)).copy()
    mask = np.zeros((h, w), np.float32)
    mask[: h - dy, : w - dx] = 1.0  # p + shift inside the previous frame
    return Clip("pan", crops, [flow] * (frames - 1), [mask] * (frames - 1))


def object_clip(frames: int, size: int) -> Clip:
    w, h = size, size * 3 // 4
    background = _photo(CONTENT, 2 * w)[h // 3 : h // 3 + h, w // 3 : w // 3 + w]
    cat = _photo(OBJECT, w)
    ph, pw = h // 2, w // 3
    patch = cat[cat.shape[0] // 4 : cat.shape[0] // 4 + ph, cat.shape[1] // 3 : cat.shape[1] // 3 + pw]
    speed, top = 4, h // 4
    placed = []
    for t in range(frames):
        frame, left = background.copy(), 2 + speed * t
        frame[top : top + ph, left : left + pw] = patch[:, : max(0, min(pw, w - left))]
        placed.append(frame)
    flows, masks = [], []
    for t in range(1, frames):
        now, before = _box(top, 2 + speed * t, ph, pw, h, w), _box(top, 2 + speed * (t - 1), ph, pw, h, w)
        flow = np.zeros((h, w, 2), np.float32)
        flow[now] = (-speed, 0)  # the object came from `speed` px to the left
        mask = np.where(before & ~now, 0.0, 1.0).astype(np.float32)  # uncovered background: occluded before
        edge = _box(top - 1, 2 + speed * t - 1, ph + 2, pw + 2, h, w) & ~_box(
            top + 1, 2 + speed * t + 1, ph - 2, pw - 2, h, w
        )
        mask[edge] = 0.0
        flows.append(flow)
        masks.append(mask)
    return Clip("object", placed, flows, masks)


def _box(top: int, left: int, bh: int, bw: int, h: int, w: int) -> np.ndarray:
    box = np.zeros((h, w), bool)
    box[max(0, top) : max(0, top + bh), max(0, left) : max(0, left + bw)] = True
    return box


def warp_error(outputs: list, clip: Clip) -> float:
    """Mean over t >= 1 of sum M (O_t - warp(O_{t-1}))^2 / sum M, warped along the true flow."""
    from nst.video.warp import warp

    errors = []
    for t in range(1, len(outputs)):
        warped = warp(outputs[t - 1], clip.flows[t - 1], fill=(0.0, 0.0, 0.0))
        m = clip.masks[t - 1]
        squared = ((outputs[t] - warped) ** 2).sum(dim=1)[0].numpy()  # (H, W), summed over channels
        errors.append(float((m * squared).sum() / m.sum()))
    return float(np.mean(errors))


def frame_losses(session, frame: np.ndarray, output, config) -> dict[str, float]:
    """The content, style and TV losses of an output frame, as its own run weighs them."""
    import torch
    from PIL import Image

    from nst.runtime.objective import Objective, objective_terms
    from nst.runtime.run import image_tensor

    plan = session.plan(Image.fromarray(frame), styles=[STYLE], config=config)
    content = image_tensor(plan.content, plan.stages[-1].size, session.device)
    terms = objective_terms(session.model, content, plan.style_grams[-1], plan.blend, config)
    with torch.no_grad():
        _, values = Objective(session.model, terms)(output.to(session.device))
    return {name: float(value) for name, value in values.items()}


def per_frame(session, clip: Clip, config) -> tuple[list, list[float]]:
    """Each frame from noise: (outputs as decoded 8-bit tensors, seconds per frame), kept in
    $NST_BENCH_CACHE by clip, model, size and options, so that another sweep over the clip reuses them."""
    import hashlib
    import json

    import torch
    from PIL import Image

    from nst.runtime.config import applied_options
    from nst.runtime.images import encode_image
    from nst.video.driver import decode_output

    pixels = hashlib.sha256(b"".join(f.tobytes() for f in clip.frames)).hexdigest()
    weights = session.model.info.weights_sha256  # another model's outputs are not these
    key = hashlib.sha256(json.dumps([pixels, weights, applied_options(config)], sort_keys=True).encode()).hexdigest()
    key = key[:16]
    kept = CACHE / f"video-per-frame-{clip.name}-{key}.npz"
    if kept.is_file():
        with np.load(kept) as data:
            return [torch.from_numpy(o)[None] for o in data["outputs"]], list(data["seconds"])
    outputs, seconds = [], []
    for frame in clip.frames:
        start = time.perf_counter()
        rendered = session.render(Image.fromarray(frame), styles=[STYLE], config=config)
        seconds.append(time.perf_counter() - start)
        outputs.append(decode_output(encode_image(rendered, "f.png"), session.device))
    np.savez(kept, outputs=np.stack([o[0].cpu().numpy() for o in outputs]), seconds=np.array(seconds))
    return outputs, seconds


def video(session, clip: Clip, config, settings, first: bytes, flows: Path) -> tuple[list, list[float]]:
    """The frame driver from the per-frame first output: (outputs, seconds of each later frame)."""
    from nst.video.driver import Shot, decode_output, run_shot

    h, w = clip.frames[0].shape[:2]
    shot = Shot(index=0, clip=0, source=clip.name, start=0, stop=len(clip.frames), size=(h, w), config=config,
                video=settings.resolved(config), done=1, outputs={0: first}, flow_cache=str(flows),
                frames=tuple(clip.frames))  # fmt: skip
    outputs, seconds = [decode_output(first, session.device)], []

    def report(event) -> None:
        if event.kind == "frame":
            outputs.append(decode_output(event.data, session.device))
            seconds.append(event.seconds)

    run_shot(session, shot, styles=(STYLE,), report=report)
    return outputs, seconds


def score(session, clip: Clip, config, outputs: list, reference: dict) -> dict[str, float]:
    """A run's warp error and its losses against per-frame stylization's (`reference`)."""
    losses = [frame_losses(session, f, o, config) for f, o in zip(clip.frames, outputs)]
    later = range(1, len(outputs))  # the first frame is per-frame's own
    ratio = {name: [losses[t][name] / reference["losses"][t][name] for t in later] for name in ("style", "content")}
    error = warp_error(outputs, clip)
    return {
        "warp_error": error,
        "warp_ratio": error / reference["warp_error"],
        "style_ratio": float(np.mean(ratio["style"])),
        "style_ratio_max": float(np.max(ratio["style"])),
        "content_ratio": float(np.mean(ratio["content"])),
    }


def sweep_points(args, scale: str) -> list[tuple[str, dict]]:
    """(label, VideoSettings fields) of every video run for one loss scale."""
    from nst.video.settings import LATER_SHARE, TEMPORAL_WEIGHTS

    weights = args.weights_reference if scale == "reference" else args.weights_balanced
    default = TEMPORAL_WEIGHTS[scale]
    points = [(f"weight {w:g}", {"temporal_weight": w, "share": LATER_SHARE}) for w in weights]
    if scale == "reference":  # the share is the warm start's, measured on one scale
        points += [(f"share {s:g}", {"temporal_weight": default, "share": s}) for s in args.shares if s != LATER_SHARE]
    if args.extras and scale == "reference":
        points += [("long-term 1,2,4", {"temporal_weight": default, "share": LATER_SHARE, "long_term": (1, 2, 4)}),
                   ("farneback", {"temporal_weight": default, "share": LATER_SHARE, "flow": "farneback"})]  # fmt: skip
    return points


def strip(clip: Clip, per_frame_outputs: list, video_outputs: list, path: Path) -> None:
    """A figure: the clip's frames, per-frame stylization and the video's, a row each, frames side by side."""
    from PIL import Image, ImageDraw

    rows = [[np.asarray(f) for f in clip.frames]] + [
        [np.clip(o[0].permute(1, 2, 0).cpu().numpy(), 0, 255).astype(np.uint8) for o in outs]
        for outs in (per_frame_outputs, video_outputs)
    ]
    h, w = rows[0][0].shape[:2]
    label, gap = 78, 4
    sheet = Image.new("RGB", (label + len(rows[0]) * (w + gap), len(rows) * (h + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, frames) in enumerate(zip(("input", "per frame", "stylize-video"), rows)):
        draw.text((4, r * (h + gap) + h // 2 - 6), name, fill="black")
        for c, frame in enumerate(frames):
            sheet.paste(Image.fromarray(frame), (label + c * (w + gap), r * (h + gap)))
    sheet.save(path, quality=88) if path.suffix.lower() in (".jpg", ".jpeg") else sheet.save(path, optimize=True)


def run_clip(session, clip: Clip, config, args, scale: str, flows: Path) -> list[dict]:
    from nst.runtime.images import encode_image
    from nst.video.settings import VideoSettings

    outputs, seconds = per_frame(session, clip, config)
    reference = {"warp_error": warp_error(outputs, clip)}
    reference["losses"] = [frame_losses(session, f, o, config) for f, o in zip(clip.frames, outputs)]
    first = encode_image(_image(outputs[0]), "f.png")
    rows = [{"clip": clip.name, "scale": scale, "run": "per frame", "warp_error": reference["warp_error"],
             "warp_ratio": 1.0, "style_ratio": 1.0, "style_ratio_max": 1.0, "content_ratio": 1.0,
             "later_seconds": float(np.mean(seconds[1:])), "first_seconds": seconds[0]}]  # fmt: skip
    for label, fields in sweep_points(args, scale):
        share = fields.pop("share")
        settings = VideoSettings(later_iterations=max(1, round(share * config.iterations)), **fields)
        outs, secs = video(session, clip, config, settings, first, flows)
        if args.strip and clip.name == "pan" and not rows[1:]:
            strip(clip, outputs, outs, args.strip)
        row = {"clip": clip.name, "scale": scale, "run": label, **score(session, clip, config, outs, reference)}
        rows.append({**row, "later_seconds": float(np.mean(secs)), "first_seconds": seconds[0]})
        print(_line(rows[-1]), flush=True)
    return rows


def _image(tensor):
    from nst.runtime.images import Rendered

    return Rendered(tensor[0].permute(1, 2, 0).cpu().numpy())


HEADER = "| clip | scale | run | warp error | / per frame | style / per frame (max) | content / per frame | s/frame later / first |"


def _line(row: dict) -> str:
    timing = row["later_seconds"] / row["first_seconds"]
    return (f"| {row['clip']} | {row['scale']} | {row['run']} | {row['warp_error']:.1f} | {row['warp_ratio']:.2f} | "
            f"{row['style_ratio']:.2f} ({row['style_ratio_max']:.2f}) | {row['content_ratio']:.2f} | {timing:.2f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=80, help="long side of the frames, px")
    parser.add_argument("--iterations", type=int, default=60, help="the first frame's (and per-frame's)")
    parser.add_argument("--scales", default="reference,balanced")
    parser.add_argument("--weights-reference", type=_floats, default=[0.0, 10.0, 50.0, 200.0, 1000.0])
    parser.add_argument("--weights-balanced", type=_floats, default=[0.0, 1.0, 5.0, 20.0, 100.0])
    parser.add_argument("--shares", type=_floats, default=[0.2, 0.3, 0.5], help="later frames' iterations")
    parser.add_argument("--no-extras", dest="extras", action="store_false", help="skip long-term and Farnebäck")
    parser.add_argument("--clips", default="pan,object")
    parser.add_argument("--strip", type=Path, help="write the pan's frames, per-frame and first video run here")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 frames of 64 px, 4 iterations")
    parser.add_argument("--model", type=Path, help="an extractor with trained weights (default: random-weight VGG-19)")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.size, args.iterations, args.shares = 3, 64, 4, [0.5]
        args.weights_reference, args.weights_balanced, args.extras = [50.0], [5.0], False

    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import Stylizer

    base = StylizeConfig(iterations=args.iterations, size=0, seed=0)
    session = Stylizer(args.model or model_path(), config=base)
    makers = {"pan": pan_clip, "object": object_clip}
    clips = [makers[name](args.frames, args.size) for name in args.clips.split(",")]
    h, w = clips[0].frames[0].shape[:2]
    print(f"# {machine()}; {args.frames} frames of {w}x{h}, {args.iterations} iterations a first frame, "
          f"{args.model.name if args.model else 'random-weight VGG-19'}, device {session.device}")  # fmt: skip
    print(HEADER)
    print("|" + "---|" * 8)
    with tempfile.TemporaryDirectory(prefix="nst-video-bench-") as flows:
        for scale in args.scales.split(","):
            for clip in clips:
                rows = run_clip(session, clip, base.replace(loss_scale=scale), args, scale, Path(flows) / clip.name)
                print(_line(rows[0]), flush=True)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


if __name__ == "__main__":
    main()
