"""Style Grams of K = 8 style images at 512 px: the batched onnxruntime path of
`nst precompute-style` against the PyTorch mirror (eager, no_grad), in one run, same threads.

    python benchmarks/precompute.py [--images 8] [--size 512] [--repeat 3] [--threads N]

Two lines each: the network alone (one batch of K images already in memory), and end to end
(read, resize and run; precompute overlaps reading with inference, the mirror loop does not).
The weights are random (a synthetic VGG-19 built in a temporary folder): speed does not
depend on their values. Prints the best and the median times and their ratios; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def build_model(folder: Path) -> Path:
    from nst.export.save import export_vgg_file
    from nst.models.synthetic import write_synthetic_mat

    mat = write_synthetic_mat(folder / "vgg19.mat", "vgg19", "new", seed=0, fc="none")
    path = folder / "vgg19.onnx"
    export_vgg_file(mat, path)
    return path


def write_styles(folder: Path, count: int, size: int) -> list[Path]:
    """`count` random 4:3 images, twice the target size, so that loading includes a real resize."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"style{i}.png"
        Image.fromarray(rng.integers(0, 256, (size * 3 // 2, size * 2, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def interleaved(fns: dict, repeat: int) -> dict[str, list[float]]:
    """Seconds of each run of each function, the runs interleaved (A B C D A B C D ...) so
    that other load on a shared machine hits all of them alike. One warm-up run each first."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # first-call allocations, ORT arena growth
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    args = parser.parse_args()

    import torch

    from nst.models.layers import STYLE_LAYERS
    from nst.runtime.config import PrecomputeConfig
    from nst.runtime.grams import compute_style_targets, resized_array, style_shape
    from nst.runtime.images import open_image
    from nst.runtime.mirror import VGGMirror
    from nst.runtime.ort_extractor import OrtExtractor, physical_cores

    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="nst-bench-") as tmp:
        folder = Path(tmp)
        model = build_model(folder)
        paths = write_styles(folder, args.images, args.size)
        ort = OrtExtractor(model, provider="cpu", threads=threads)
        mirror = VGGMirror.from_onnx(model)

        def load(path: Path) -> np.ndarray:
            img = open_image(path)
            return resized_array(img, style_shape((img.height, img.width), 1.0, args.size))  # (1, 3, H, W)

        batch = np.concatenate([load(p) for p in paths])  # (K, 3, H, W)
        gram_names = [f"gram_{n}" for n in STYLE_LAYERS]

        def ort_network():
            return ort.run(batch, gram_names)

        def torch_network():
            with torch.no_grad():
                out = mirror(torch.from_numpy(batch), layers=STYLE_LAYERS, grams=STYLE_LAYERS)
            return {f"gram_{n}": out[f"gram_{n}"].numpy() for n in STYLE_LAYERS}

        def ort_end_to_end():
            return compute_style_targets(
                None, paths, config=PrecomputeConfig(size=args.size, batch_size=args.images), extractor=ort
            )

        def torch_end_to_end():
            images = torch.from_numpy(np.concatenate([load(p) for p in paths]))  # (K, 3, H, W)
            with torch.no_grad():
                return mirror(images, layers=STYLE_LAYERS, grams=STYLE_LAYERS)

        t = interleaved(
            {"ort": ort_network, "torch": torch_network, "ort_e2e": ort_end_to_end, "torch_e2e": torch_end_to_end},
            args.repeat,
        )
        ort_out, torch_out = ort_network(), torch_network()

    error = max(float(np.abs(ort_out[k] - torch_out[k]).max() / np.abs(torch_out[k]).max()) for k in gram_names)
    h, w = batch.shape[2:]
    print(
        f"{args.images} style images at {h}x{w}, {threads} threads, onnxruntime + torch {torch.__version__}, "
        f"{args.repeat} interleaved runs each"
    )
    # The best run is the one least disturbed by other load; the median is shown beside it.
    for label, key in (("network only", ""), ("end to end  ", "_e2e")):
        for stat, fn in (("best  ", min), ("median", statistics.median)):
            ort_s, torch_s = fn(t["ort" + key]), fn(t["torch" + key])
            print(
                f"{label} {stat}  ORT batched {ort_s:6.2f} s   torch mirror {torch_s:6.2f} s   "
                f"ratio {torch_s / ort_s:.2f}x"
            )
    print(f"Gram max relative difference ORT vs torch: {error:.1e}")


if __name__ == "__main__":
    main()
