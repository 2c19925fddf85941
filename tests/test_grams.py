"""Style Grams through onnxruntime: batching, sizing, the targets they make, bad settings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from nst.errors import ConfigError, ImageError
from nst.models.layers import STYLE_LAYERS
from nst.runtime.config import PrecomputeConfig
from nst.runtime.grams import compute_style_targets, style_grams, style_shape
from nst.runtime.ort_extractor import OrtExtractor


@pytest.fixture(scope="module")
def extractor(vgg19_onnx) -> OrtExtractor:
    return OrtExtractor(vgg19_onnx, provider="cpu")


class CountingExtractor:
    """An extractor that records the batch shape of each call."""

    def __init__(self, inner: OrtExtractor):
        self.inner = inner
        self.info = inner.info
        self.output_names = inner.output_names
        self.calls: list[tuple[int, ...]] = []

    def run(self, batch, outputs=None):
        self.calls.append(batch.shape)
        return self.inner.run(batch, outputs)


def _write_rgb(path: Path, height: int, width: int, seed: int) -> Path:
    from PIL import Image

    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _max_relative_error(a: dict, b: dict) -> float:
    """max over layers of max|a - b| / max|b|: the error relative to each Gram's scale."""
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in b)


def _config(size: int = 512, **options) -> PrecomputeConfig:
    return PrecomputeConfig(size=size, **options)


def test_batched_equals_one_at_a_time_in_fewest_calls(extractor, tmp_path):
    # Three landscape images of one shape, two portrait of another, one odd.
    shapes = [(30, 40), (30, 40), (30, 40), (40, 30), (40, 30), (25, 40)]
    paths = [_write_rgb(tmp_path / f"s{i}.png", h, w, seed=i) for i, (h, w) in enumerate(shapes)]
    batched = CountingExtractor(extractor)
    done: list[int] = []
    targets = compute_style_targets(
        None, paths, config=_config(40, style_scales=(1.0, 0.5), batch_size=2), extractor=batched, progress=done.append
    )
    # Scale 1: 3 x (30, 40) -> 2 calls, 2 x (40, 30) -> 1, (25, 40) -> 1; scale 0.5 the same.
    assert len(batched.calls) == 8
    assert sorted(n for n, *_ in batched.calls) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert sum(done) == len(paths) * 2

    single = CountingExtractor(extractor)
    alone = compute_style_targets(
        None, paths, config=_config(40, style_scales=(1.0, 0.5), batch_size=1), extractor=single
    )
    assert len(single.calls) == 12
    assert [(e.style, e.scale, e.size) for e in targets.entries] == [(e.style, e.scale, e.size) for e in alone.entries]
    assert [e.size for e in targets.grams_for(3)] == [(40, 30), (20, 15)]
    error = max(_max_relative_error(a.grams, b.grams) for a, b in zip(targets.entries, alone.entries))
    print(f"batched vs one at a time: max relative error {error:.2e}")
    assert error <= 1e-5


def test_loading_overlaps_inference(extractor, tmp_path, monkeypatch):
    import threading
    import time

    import nst.runtime.grams as grams_module

    events: list[tuple[str, int, float]] = []
    load = grams_module._load_style

    def slow_load(path, *args):
        events.append(("load", int(path.stem[1:]), time.perf_counter()))
        assert threading.current_thread().name.startswith("nst-style")  # a worker, not the caller
        return load(path, *args)

    class SlowExtractor(CountingExtractor):
        def run(self, batch, outputs=None):
            events.append(("run start", len(self.calls), time.perf_counter()))
            time.sleep(0.3)
            result = super().run(batch, outputs)
            events.append(("run end", len(self.calls) - 1, time.perf_counter()))
            return result

    monkeypatch.setattr(grams_module, "_load_style", slow_load)
    paths = [_write_rgb(tmp_path / f"s{i}.png", 16, 16, seed=i) for i in range(3)]
    compute_style_targets(None, paths, config=_config(16, batch_size=1), extractor=SlowExtractor(extractor))
    when = {(kind, i): t for kind, i, t in events}
    assert when[("load", 2)] < when[("run end", 0)]  # image 2 was read while image 0 ran


def test_targets_metadata_and_sources(extractor, tmp_path):
    import hashlib

    path = _write_rgb(tmp_path / "style.png", 16, 32, seed=7)
    targets = compute_style_targets(None, [path, path], config=_config(32), extractor=extractor)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert [(s.name, s.sha256) for s in targets.sources] == [("style.png", digest)] * 2
    info = extractor.info
    assert (targets.weights_sha256, targets.architecture, targets.pooling, targets.gram_normalization) == (
        info.weights_sha256,
        "vgg19",
        "max",
        "G = F F^T / (C*H*W)",
    )
    assert targets.layers == STYLE_LAYERS and targets.size == 32 and targets.scales == (1.0,)
    assert {k: v.shape for k, v in targets.entries[0].grams.items()} == {
        "relu1_1": (64, 64),
        "relu2_1": (128, 128),
        "relu3_1": (256, 256),
        "relu4_1": (512, 512),
        "relu5_1": (512, 512),
    }


def test_width_sizes_styles_like_the_reference(extractor, tmp_path):
    path = _write_rgb(tmp_path / "tall.png", 60, 30, seed=2)
    by_width = compute_style_targets(
        None, [path], width=20, config=_config(style_scales=(1.0, 2.0)), extractor=extractor
    )
    assert [e.size for e in by_width.entries] == [(40, 20), (80, 40)]
    assert (by_width.size, by_width.width) == (None, 20)
    by_size = compute_style_targets(None, [path], config=_config(20), extractor=extractor)
    assert [e.size for e in by_size.entries] == [(20, 10)]
    assert style_shape((60, 30), 1.5, size=20) == (30, 15)  # (height, width) in and out


def test_style_grams_of_in_memory_images(extractor, tmp_path):
    from PIL import Image

    from nst.runtime.images import open_image

    path = _write_rgb(tmp_path / "s.png", 24, 36, seed=4)
    [entry] = compute_style_targets(None, [path], config=_config(30), extractor=extractor).entries
    img = open_image(path)
    [grams, same] = style_grams(extractor, [img, img.copy()], sizes=[entry.size, entry.size])
    assert all(np.array_equal(grams[k], entry.grams[k]) for k in STYLE_LAYERS)
    assert _max_relative_error(same, grams) <= 1e-6
    [native] = style_grams(extractor, [Image.new("RGB", (9, 7), (10, 200, 30))], layers=["relu2_1"])
    assert list(native) == ["relu2_1"] and native["relu2_1"].shape == (128, 128)


def test_model_without_gram_outputs_gives_the_same_grams(extractor, make_onnx, tmp_path):
    path = _write_rgb(tmp_path / "s.png", 20, 20, seed=9)
    with_graph = compute_style_targets(None, [path], config=_config(20), extractor=extractor)
    numpy_grams = compute_style_targets(make_onnx(grams=False), [path], config=_config(20, provider="cpu"))
    assert _max_relative_error(numpy_grams.entries[0].grams, with_graph.entries[0].grams) <= 1e-5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(style_scales=(1.0, 0.0)), "--style-scales must be in (0, 16], got (1.0, 0.0)"),
        (dict(style_scales=()), "--style-scales needs at least one value"),
        (dict(size=8), "--size must be 0 (the original size) or between 16 and 30000, got 8"),
        (dict(batch_size=0), "--batch-size must be between 1 and 1024, got 0"),
        (dict(provider="tpu"), "--provider must be one of auto, cpu, cuda, tensorrt, openvino, got 'tpu'"),
    ],
)
def test_bad_settings(options, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        PrecomputeConfig(**options)


def test_bad_width(extractor, tmp_path):
    path = _write_rgb(tmp_path / "s.png", 16, 16, seed=0)
    with pytest.raises(ConfigError, match=r"^style width must be at least 1 px, not 0$"):
        compute_style_targets(None, [path], width=0, extractor=extractor)


def test_broken_style_image(extractor, tmp_path):
    good = _write_rgb(tmp_path / "good.png", 16, 16, seed=0)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ImageError, match=r"^cannot read image .*broken.jpg"):
        compute_style_targets(None, [good, broken], config=_config(16), extractor=extractor)
    with pytest.raises(ImageError, match=r"^image not found: .*missing.png$"):
        compute_style_targets(None, [tmp_path / "missing.png"], config=_config(16), extractor=extractor)


def test_grayscale_style_file_gives_the_grams_of_its_rgb_twin(extractor, tmp_path):
    from PIL import Image

    gray = np.random.default_rng(8).integers(0, 256, (20, 24), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB").save(tmp_path / "rgb.png")
    a, b = compute_style_targets(
        None, [tmp_path / "gray.png", tmp_path / "rgb.png"], config=_config(24), extractor=extractor
    ).entries
    assert all(np.array_equal(a.grams[k], b.grams[k]) for k in STYLE_LAYERS)
