"""The style-targets file (Contract 2 of DESIGN.md): Gram matrices computed once, reused.

CONTRACT SKELETON: the helper working on `nst precompute-style` implements the functions
below; the dataclasses and signatures are the agreed interface with `nst stylize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StyleSource:
    """One style image: its file name and SHA-256."""

    name: str
    sha256: str


@dataclass(frozen=True)
class StyleEntry:
    """The Grams of one style image at one scale: layer -> (C, C) float32."""

    style: int  # index into StyleTargets.sources
    scale: float  # the --style-scales factor
    size: tuple[int, int]  # (height, width) of the resized style image fed to the network
    grams: dict[str, np.ndarray]


@dataclass(frozen=True)
class StyleTargets:
    """Everything stylize needs from the style images, and what it must match."""

    weights_sha256: str  # ModelInfo.weights_sha256 of the extractor that computed the Grams
    architecture: str
    pooling: str
    layers: tuple[str, ...]  # the style layers, in network order
    gram_normalization: str
    sources: tuple[StyleSource, ...]
    entries: tuple[StyleEntry, ...] = field(default=())

    def check_model(self, info) -> None:
        """Raise TargetsError unless these targets were computed by a model like `info`."""
        raise NotImplementedError

    def grams_for(self, style: int) -> list[StyleEntry]:
        """The entries (one per scale) of style image `style`."""
        return [entry for entry in self.entries if entry.style == style]


def save_targets(targets: StyleTargets, path: str | Path, overwrite: bool = False) -> Path:
    raise NotImplementedError


def load_targets(path: str | Path) -> StyleTargets:
    raise NotImplementedError


def compute_style_targets(model_path, style_paths, size, scales=(1.0,), batch_size=8,
                          provider="auto", progress=None) -> StyleTargets:
    raise NotImplementedError
