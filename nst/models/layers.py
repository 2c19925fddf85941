"""The VGG layer tables: layer names are data, and everything else is driven by them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from nst.errors import LayerError

Architecture = Literal["vgg16", "vgg19"]
Pooling = Literal["max", "avg"]  # between blocks; it has no weights, so either runs on any export

# Number of 3x3 convolutions in each of the five blocks (Simonyan & Zisserman, table 1, D and E).
_BLOCK_DEPTHS: dict[str, tuple[int, ...]] = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_BLOCK_CHANNELS = (64, 128, 256, 512, 512)

ARCHITECTURES: tuple[str, ...] = tuple(_BLOCK_DEPTHS)

# The reference's (anishathalye/neural-style) layer choices.
CONTENT_LAYERS: tuple[str, ...] = ("relu4_2", "relu5_2")
STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_LAYERS: tuple[str, ...] = CONTENT_LAYERS + STYLE_LAYERS


@dataclass(frozen=True)
class Layer:
    """One layer of the feature extractor: `kind` is conv, relu or pool."""

    name: str
    kind: Literal["conv", "relu", "pool"]
    in_channels: int = 0  # conv only
    out_channels: int = 0  # conv only


def layer_table(arch: str) -> tuple[Layer, ...]:
    """The ordered layers conv1_1, relu1_1, ..., relu5_4, pool5 of `arch`."""
    if arch not in _BLOCK_DEPTHS:
        raise LayerError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    layers: list[Layer] = []
    in_ch = 3
    for block, (depth, out_ch) in enumerate(zip(_BLOCK_DEPTHS[arch], _BLOCK_CHANNELS), start=1):
        for i in range(1, depth + 1):
            layers.append(Layer(f"conv{block}_{i}", "conv", in_ch, out_ch))
            layers.append(Layer(f"relu{block}_{i}", "relu"))
            in_ch = out_ch
        layers.append(Layer(f"pool{block}", "pool"))
    return tuple(layers)


def layer_names(arch: str) -> tuple[str, ...]:
    return tuple(layer.name for layer in layer_table(arch))


def conv_layers(arch: str) -> tuple[Layer, ...]:
    return tuple(layer for layer in layer_table(arch) if layer.kind == "conv")


def check_layers(arch: str, names: Iterable[str]) -> tuple[str, ...]:
    """Validate layer names against `arch`; return them deduplicated, in network order.

    An unknown name raises `LayerError` listing the valid names and the closest match.
    """
    valid = layer_names(arch)
    names = tuple(names)
    if not names:
        raise LayerError("no layers requested; name at least one, e.g. relu4_2")
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise LayerError(f"unknown layer {name!r} for {arch}.{hint} Valid layers: {', '.join(valid)}")
    wanted = set(names)
    return tuple(n for n in valid if n in wanted)


def truncated_table(arch: str, names: Iterable[str]) -> tuple[Layer, ...]:
    """The layers up to and including the deepest of `names` (the graph ends there)."""
    ordered = check_layers(arch, names)
    table = layer_table(arch)
    last = max(i for i, layer in enumerate(table) if layer.name in ordered)
    return table[: last + 1]
