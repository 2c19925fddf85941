"""The PyTorch mirror of an exported extractor, built from the ONNX file's own initializers.

The mirror computes exactly what the ONNX graph computes (parity is tested), but in torch,
so that the losses can be differentiated with respect to the image. It runs in float32 at any
size: an fp16 export's weights are widened, a static export's shape does not bind it, and a
Grams-only export still holds every layer up to its deepest style layer. An int8 export's
weights are not the network's, so it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nst.contract import MEAN_PIXEL, ModelInfo, gram, gram_output, load_onnx, model_info, param_name
from nst.errors import LayerError, ModelError
from nst.models.layers import Layer, check_layers, truncated_table


class VGGMirror(nn.Module):
    """VGG features of 0-255 RGB images, as a dict keyed by layer name.

    Weights are frozen (`requires_grad=False`); the module moves with `.to(device)`.
    Its `state_dict` keys are the ONNX initializer names (`conv1_1.weight`, `mean_pixel`).
    `pooling` defaults to the file's; the other kind reuses the same convolutions, which is
    exactly the graph `nst export-vgg --pooling` would write (pooling has no weights).
    """

    mean_pixel: torch.Tensor  # (1, 3, 1, 1), a buffer

    def __init__(self, info: ModelInfo, tensors: dict[str, torch.Tensor], pooling: str | None = None):
        super().__init__()
        self.info = info
        self.pooling = pooling or info.pooling
        if self.pooling not in ("max", "avg"):
            raise ModelError(f"pooling must be max or avg, not {self.pooling!r}")
        self.table: tuple[Layer, ...] = truncated_table(info.architecture, info.layers)
        self.register_buffer(MEAN_PIXEL, tensors[MEAN_PIXEL].reshape(1, 3, 1, 1))
        for layer in self.table:
            if layer.kind != "conv":
                continue
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, 3, padding=1)
            for part in ("weight", "bias"):
                key = param_name(layer.name, part)
                if key not in tensors:
                    raise ModelError(f"{info.path}: initializer {key} is missing; export the model again")
                param = getattr(conv, part)
                if tuple(tensors[key].shape) != tuple(param.shape):
                    raise ModelError(
                        f"{info.path}: {key} has shape {tuple(tensors[key].shape)}, expected {tuple(param.shape)}"
                    )
                param.data = tensors[key]  # owned by the mirror from here (from_onnx copies once)
            conv.requires_grad_(False)
            self.add_module(layer.name, conv)
        # Blocks end at each pool: the units of activation checkpointing.
        self._blocks: list[tuple[Layer, ...]] = []
        for layer in self.table:
            if not self._blocks or self._blocks[-1][-1].kind == "pool":
                self._blocks.append(())
            self._blocks[-1] += (layer,)

    @classmethod
    def from_onnx(cls, path: str | Path, pooling: str | None = None) -> VGGMirror:
        from onnx import numpy_helper

        model = load_onnx(path)
        info = model_info(model, path)
        if info.quantize:
            raise ModelError(
                f"{path} is {info.describe()}; stylize needs a float export (fp16, static and Grams-only "
                f"ones work): nst export-vgg WEIGHTS -o {Path(path).stem}-float.onnx"
            )
        # One copy out of the protobuf per tensor, then the protobuf goes: peak memory is
        # the weights twice, not four times. fp16 weights are widened to float32.
        tensors = {}
        for t in model.graph.initializer:
            if t.name.startswith("gram."):  # the graph's own constants, not weights
                continue
            tensors[t.name] = torch.from_numpy(numpy_helper.to_array(t).astype(np.float32, copy=True))
        del model
        return cls(info, tensors, pooling).eval()

    def with_pooling(self, pooling: str) -> VGGMirror:
        """This network with `pooling`, sharing the weights (self when it has it already)."""
        if pooling == self.pooling:
            return self
        tensors = {name: value.detach() for name, value in self.state_dict().items()}  # shared storage
        return type(self)(self.info, tensors, pooling).eval()

    @property
    def pools_like_file(self) -> bool:
        """True when this mirror pools like its ONNX file, so the file gives the same features."""
        return self.pooling == self.info.pooling

    @property
    def layers(self) -> tuple[str, ...]:
        return self.info.layers

    def forward(
        self,
        image: torch.Tensor,
        layers: Iterable[str] | None = None,
        grams: Iterable[str] = (),
        checkpoint: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Features of `image` (N, 3, H, W, RGB 0-255) at `layers` (default: all exported),
        plus `gram_<name>` for each name in `grams`. Stops after the deepest layer asked for.

        `checkpoint=True` recomputes each block's activations during backward instead of
        keeping them (activation checkpointing): less memory for large images, ~1 more forward.
        """
        wanted = set(self._check(layers if layers is not None else self.info.layers))
        gram_wanted = set(self._check(grams)) if grams else set()
        wanted |= gram_wanted
        out: dict[str, torch.Tensor] = {}
        x = image - self.mean_pixel
        for block in self._blocks:
            if not wanted:
                break
            names = [layer.name for layer in block if layer.name in wanted]
            last = len(names) == len(wanted)  # then the block may stop at its last wanted layer
            if checkpoint and torch.is_grad_enabled() and x.requires_grad:
                x, *features = torch.utils.checkpoint.checkpoint(
                    self._run_block, block, x, wanted, last, use_reentrant=False
                )
            else:
                x, *features = self._run_block(block, x, wanted, last)
            for name, value in zip(names, features):
                out[name] = value
                if name in gram_wanted:
                    out[gram_output(name)] = gram(value)
            wanted.difference_update(names)
        return out

    def _run_block(
        self, block: tuple[Layer, ...], x: torch.Tensor, wanted: set[str], last: bool
    ) -> tuple[torch.Tensor, ...]:
        """Run one block; return its output followed by the wanted features, in order."""
        features: list[torch.Tensor] = []
        remaining = sum(layer.name in wanted for layer in block)
        for layer in block:
            if layer.kind == "conv":
                x = getattr(self, layer.name)(x)
            elif layer.kind == "relu":
                # In place unless the conv output itself is wanted: conv's backward does not need
                # its output, so this saves one activation per conv.
                x = F.relu(x, inplace=not features or features[-1] is not x)
            elif self.pooling == "avg":
                x = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
            else:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            if layer.name in wanted:
                features.append(x)
                remaining -= 1
                if last and not remaining:
                    break
        return (x, *features)

    def _check(self, names: Iterable[str]) -> tuple[str, ...]:
        names = tuple(names)
        check_layers(self.info.architecture, names)
        missing = [n for n in names if n not in {layer.name for layer in self.table}]
        if missing:
            hint = (
                " (without --outputs grams, whose graph ends at its deepest Gram)"
                if self.info.outputs == "grams"
                else ""
            )
            raise LayerError(
                f"layer {missing[0]} is deeper than {self.info.path}'s graph (ends at {self.table[-1].name}); "
                f"export a model with that layer{hint}"
            )
        return names
