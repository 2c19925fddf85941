"""The plain eager baseline: the PyTorch tutorial's Gatys loop over the same network, written
the straightforward way, for the benchmarks to compare nst with.

    python benchmarks/baseline.py CONTENT STYLE -m MODEL.onnx [--size 512] [--iterations 10]
        [--optimizer lbfgs] [-o out.png] [--device cpu]

An `nn.Sequential` VGG-19 (Conv2d / ReLU(inplace=False) / MaxPool2d) built from the ONNX
file's own initializers and cut after the deepest layer its losses use (relu5_1, as the
tutorial trims); the content target and the style targets come from separate passes done
once (as in the tutorial); then torch.optim.LBFGS or Adam on the
image, one objective evaluation per iteration (LBFGS max_iter=1, like nst). It uses nst's
loss weights and normalizations, so the losses are comparable, and nothing else of nst.
Run as a script it prints its start-up and per-iteration times (benchmarks/startup.py and
benchmarks/memory.py run it in a subprocess); benchmarks/speed.py imports it.
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict
from pathlib import Path

_START = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# nst's default objective (StylizeConfig): content weight 5, all of it on relu4_2 (blend 1.0,
# so relu5_2 is unused), style weight 500 spread evenly over the five style layers, TV 100.
CONTENT_LAYER = "relu4_2"
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 5.0, 500.0, 100.0
# VGG-19's convolutions per block; the layer names are the nst / ONNX initializer names.
BLOCKS = (2, 2, 4, 4, 4)


def vgg_sequential(onnx_path: str | Path, last: str = "relu5_1") -> tuple[nn.Sequential, torch.Tensor]:
    """The VGG-19 features up to `last` as a named nn.Sequential, and the mean pixel (1, 3, 1, 1).

    The tutorial trims the layers after the last loss; with nst's default objective that is
    relu5_1 (relu4_2 content, relu1_1 ... relu5_1 style): 189.3 GFLOP at 512 px."""
    import onnx
    from onnx import numpy_helper

    tensors = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(str(onnx_path)).graph.initializer
    }
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    done = False
    for block, depth in enumerate(BLOCKS, start=1):
        for i in range(1, depth + 1):
            weight, bias = tensors[f"conv{block}_{i}.weight"], tensors[f"conv{block}_{i}.bias"]
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
            conv.weight.data, conv.bias.data = weight, bias
            modules[f"conv{block}_{i}"] = conv
            modules[f"relu{block}_{i}"] = nn.ReLU(inplace=False)
            if f"relu{block}_{i}" == last:
                done = True
                break
        if done:
            break
        modules[f"pool{block}"] = nn.MaxPool2d(2, 2)
    net = nn.Sequential(modules).eval()
    net.requires_grad_(False)  # the tutorial's newer version freezes the network too
    return net, tensors["mean_pixel"].reshape(1, 3, 1, 1)


def features(net: nn.Sequential, mean: torch.Tensor, image: torch.Tensor, wanted) -> dict[str, torch.Tensor]:
    """Outputs of `net` at the `wanted` layer names, running every layer up to the end of `net`."""
    out = {}
    x = image - mean
    for name, module in net.named_children():
        x = module(x)
        if name in wanted:
            out[name] = x
    return out


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    flat = f.reshape(n * c, h * w)  # (C, HW)
    return flat @ flat.t() / (c * h * w)  # (C, C), nst's normalization


class Baseline:
    """The tutorial's loop: targets once, then an optimizer on the image with a closure.

    `precision="bf16"` runs the network under bf16 autocast and `channels_last=True` in NHWC
    (the plain way to use a CPU's or GPU's bf16 units), with the Grams and losses in float32."""

    def __init__(self, onnx_path, content: torch.Tensor, style: torch.Tensor, device: torch.device, *,
                 precision: str = "fp32", channels_last: bool = False):  # fmt: skip
        self.net, self.mean = vgg_sequential(onnx_path)
        self.net.to(device)
        self.mean = self.mean.to(device)
        self.device, self.bf16, self.channels_last = device, precision == "bf16", channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        with torch.no_grad():
            self.content_targets = {
                k: v.detach() for k, v in features(self.net, self.mean, content.to(device), (CONTENT_LAYER,)).items()
            }
            self.style_targets = {
                k: gram(v).detach() for k, v in features(self.net, self.mean, style.to(device), STYLE_LAYERS).items()
            }

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image.contiguous(memory_format=torch.channels_last) if self.channels_last else image
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return features(self.net, self.mean, x, (CONTENT_LAYER, *STYLE_LAYERS))

    def loss(self, image: torch.Tensor, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = {name: value.float() for name, value in feats.items()}
        c = CONTENT_WEIGHT * F.mse_loss(feats[CONTENT_LAYER], self.content_targets[CONTENT_LAYER])
        s = sum(F.mse_loss(gram(feats[n]), self.style_targets[n]) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
        tv = (image[:, :, 1:] - image[:, :, :-1]).pow(2).mean() + (image[..., 1:] - image[..., :-1]).pow(2).mean()
        return c + STYLE_WEIGHT * s + TV_WEIGHT * tv

    def start_image(self, shape, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(shape, generator=g) * 0.256 + self.mean.cpu()).to(self.device).requires_grad_(True)

    def run(self, image: torch.Tensor, optimizer: str, iterations: int, callback=None) -> torch.Tensor:
        """`iterations` steps; callback(iteration, loss, seconds since the loop began) after each."""
        opt = (
            torch.optim.LBFGS([image], lr=1, max_iter=1, history_size=100, tolerance_grad=-1, tolerance_change=-1)
            if optimizer == "lbfgs"
            else torch.optim.Adam([image], lr=10.0)
        )
        start = time.perf_counter()
        for i in range(1, iterations + 1):

            def closure():
                with torch.no_grad():
                    image.clamp_(0, 255)  # the tutorial's clamp of the image to the valid range
                opt.zero_grad()
                loss = self.loss(image, self.forward(image))
                loss.backward()
                return loss

            loss = opt.step(closure)
            value = loss.detach().item()  # the tutorial prints it: a device sync on CUDA
            if callback is not None:
                callback(i, value, time.perf_counter() - start)
        return image


def load(path: Path, size: int) -> torch.Tensor:
    """An image as (1, 3, size, size) float 0-255 RGB (the benchmarks use square sizes)."""
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img, dtype=np.float32).transpose(2, 0, 1).copy())[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("content", type=Path)
    parser.add_argument("style", type=Path)
    parser.add_argument("-m", "--model", type=Path, required=True)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", type=Path, help="write the result (PNG)")
    args = parser.parse_args()
    device = torch.device(args.device)
    base = Baseline(args.model, load(args.content, args.size), load(args.style, args.size), device)
    times = []
    image = base.run(
        base.start_image((1, 3, args.size, args.size)),
        args.optimizer,
        args.iterations,
        lambda i, loss, t: times.append(time.perf_counter() - _START),
    )
    if args.output:
        from PIL import Image

        array = image.detach().clamp(0, 255).round().byte().cpu()[0].permute(1, 2, 0).numpy()
        Image.fromarray(array).save(args.output)
    print(f"first iteration done at {times[0]:.3f} s after start; last at {times[-1]:.3f} s")


if __name__ == "__main__":
    main()
