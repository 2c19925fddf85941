"""Shared fixtures: synthetic MatConvNet files and the extractors exported from them.

Everything is built at test time from seeded random weights (nothing is committed), and
cached per session, so the suite pays for each file once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two threads, like the machine; keeps timings stable and avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def make_mat(tmp_path_factory):
    """make_mat(arch="vgg19", version="new", seed=0, fc="small") -> path of a synthetic .mat."""
    from nst.models.synthetic import write_synthetic_mat

    cache: dict[tuple, Path] = {}
    folder = tmp_path_factory.mktemp("mat")

    def make(arch: str = "vgg19", version: str = "new", seed: int = 0, fc: str = "small") -> Path:
        key = (arch, version, seed, fc)
        if key not in cache:
            cache[key] = write_synthetic_mat(folder / f"{arch}-{version}-{seed}-{fc}.mat", arch, version, seed, fc)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def make_onnx(make_mat, tmp_path_factory):
    """make_onnx(arch="vgg19", version="new", seed=0, **ExportConfig fields) -> exported .onnx path."""
    from nst.export.onnx_graph import ExportConfig
    from nst.export.save import export_vgg_file

    cache: dict[tuple, Path] = {}
    folder = tmp_path_factory.mktemp("onnx")

    def make(arch: str = "vgg19", version: str = "new", seed: int = 0, **options) -> Path:
        config = ExportConfig(**options)
        key = (arch, version, seed, config)
        if key not in cache:
            path = folder / f"{arch}-{version}-{seed}-{len(cache)}.onnx"
            export_vgg_file(make_mat(arch, version, seed), path, config)
            cache[key] = path
        return cache[key]

    return make


@pytest.fixture(scope="session")
def vgg19_onnx(make_onnx) -> Path:
    """The default extractor (relu4_2, relu5_2, relu1_1...relu5_1, max pooling, Grams) of a random VGG-19."""
    return make_onnx()


def pytest_collection_modifyitems(config, items):
    """`cuda` tests skip cleanly on machines without a CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def calibration_dir(tmp_path_factory) -> Path:
    """Three small smooth seeded images: a fast --calibrate folder for int8 exports."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("calibration")
    rng = np.random.default_rng(7)
    for i in range(3):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)  # blurred up: image-like, not noise
        Image.fromarray(coarse).resize((40, 30), Image.Resampling.BICUBIC).save(folder / f"cal{i}.png")
    return folder
