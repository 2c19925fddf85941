"""VGG state dicts (PyTorch `.pth`, `.safetensors`): which key holds which conv, checked strictly,
and what the keys alone say about the input convention.

Two key schemes are read. torchvision's `features.N.weight`, where N is the layer's position
in `nn.Sequential(conv, relu, ..., pool)`, so exactly its index in `layers.layer_table`; the
Caffe conversions of jcjohnson/pytorch-vgg (used by ProGamerGov/neural-style-pt) have the
same keys. And per-layer names, `conv1_1.weight` (Gatys et al.'s `vgg_conv.pth`). Classifier
keys are skipped; `module.` (DataParallel) prefixes are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nst.errors import WeightsError
from nst.models.convention import WeightsLayout
from nst.models.layers import conv_layers, layer_table

_INDEXED = re.compile(r"^features\.(\d+)\.weight$")
_NAMED = re.compile(r"^(conv\d_\d)\.weight$")
_VGG19_ONLY = ("conv3_4", "conv4_4", "conv5_4")
# jcjohnson/pytorch-vgg converted Caffe's VGGs into torchvision's model of early 2017, whose
# classifier began with Dropout: its Linear layers are classifier.1/.4/.6, torchvision's own
# files have classifier.0/.3/.6. (neural-style-pt's download script renames them to 0/3.)
_CAFFE_CONVERSION_KEYS = ("classifier.1.weight", "classifier.4.weight")


@dataclass(frozen=True)
class StateDictConvs:
    """The convolutions found in a state dict, as the file holds them (no convention folded)."""

    architecture: str
    convs: dict[str, tuple[np.ndarray, np.ndarray]]
    scheme: str  # "features.N" or "conv names"
    layout_hint: WeightsLayout | None  # what the keys alone tell, if anything
    hint_reason: str = ""


def conv_keys(architecture: str, scheme: str = "features.N") -> dict[str, str]:
    """conv name -> the key prefix that holds it: conv3_1 -> features.10 (or conv3_1)."""
    if scheme != "features.N":
        return {layer.name: layer.name for layer in conv_layers(architecture)}
    return {layer.name: f"features.{i}" for i, layer in enumerate(layer_table(architecture)) if layer.kind == "conv"}


def read_state_dict(tensors: Mapping[str, np.ndarray], path: str | Path) -> StateDictConvs:
    """The VGG-16/19 convolutions of a flat name -> array mapping; a missing or mis-shaped key
    raises a WeightsError naming it."""
    items = _Renamed(tensors)
    batch_norm = next((k for k in items if k.startswith("features.") and k.endswith(".running_mean")), None)
    if batch_norm is not None:
        raise WeightsError(
            f"{path} is a batch-normalised VGG (it has {batch_norm}); nst reads plain VGG-16/19 weights "
            "such as torchvision's vgg19 or the Caffe conversions"
        )
    indexed = sorted(int(m.group(1)) for key in items if (m := _INDEXED.match(key)))
    named = {m.group(1) for key in items if (m := _NAMED.match(key))}
    if indexed:
        scheme = "features.N"
        architecture = "vgg19" if len(indexed) > 13 or indexed[-1] > 28 else "vgg16"
    elif named:
        scheme = "conv names"
        architecture = "vgg19" if named & set(_VGG19_ONLY) else "vgg16"
    else:
        found = ", ".join(sorted(items)[:4]) or "nothing"
        raise WeightsError(
            f"{path} holds no VGG convolutions (no features.N.weight or conv1_1.weight keys; it has {found}); "
            "pass a VGG-16/19 state dict"
        )
    keys = conv_keys(architecture, scheme)
    _check_no_extra(items, indexed if scheme == "features.N" else [], keys, architecture, path)
    convs = {}
    for layer in conv_layers(architecture):
        kernel = _array(
            items, f"{keys[layer.name]}.weight", (layer.out_channels, layer.in_channels, 3, 3), layer.name, path
        )
        bias = _array(items, f"{keys[layer.name]}.bias", (layer.out_channels,), layer.name, path)
        convs[layer.name] = (kernel, bias)
    hint: WeightsLayout | None = None
    reason = ""
    if all(key in items for key in _CAFFE_CONVERSION_KEYS):
        hint, reason = "caffe", "classifier.1/.4 keys, as jcjohnson/pytorch-vgg's Caffe conversions have"
    return StateDictConvs(architecture, convs, scheme, hint, reason)


class _Renamed(Mapping[str, np.ndarray]):
    """`tensors` with `module.` prefixes dropped; values are read only when asked for (a lazy
    file's classifier is never decoded)."""

    def __init__(self, tensors: Mapping[str, np.ndarray]):
        self.tensors = tensors
        self.names = {key.removeprefix("module."): key for key in tensors}

    def __getitem__(self, key: str) -> np.ndarray:
        return self.tensors[self.names[key]]

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _check_no_extra(items: Mapping[str, np.ndarray], indexed: list[int], keys: dict[str, str], arch: str, path) -> None:
    expected = {int(prefix.split(".")[1]) for prefix in keys.values()} if indexed else set()
    extra = [i for i in indexed if i not in expected]
    if extra:
        raise WeightsError(
            f"{path}: features.{extra[0]}.weight is not a convolution of {arch} (its convs are features."
            f"{', features.'.join(str(i) for i in sorted(expected))}); this is not a torchvision-style VGG state dict"
        )


def _array(items: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...], layer: str, path) -> np.ndarray:
    part = "kernel" if key.endswith(".weight") else "bias"
    if key not in items:
        raise WeightsError(f"{path} has no {key} ({layer}'s {part}); it is not a whole VGG state dict")
    value = np.asarray(items[key])
    if tuple(value.shape) != shape:
        raise WeightsError(f"{path}: {key} ({layer}'s {part}) has shape {tuple(value.shape)}, expected {shape}")
    if not np.issubdtype(value.dtype, np.floating):
        raise WeightsError(f"{path}: {key} ({layer}'s {part}) holds {value.dtype} values, not floats")
    array = np.ascontiguousarray(value, dtype=np.float32)
    if not np.isfinite(array).all():
        raise WeightsError(f"{path}: {key} ({layer}'s {part}) holds NaN or infinite values")
    return array
