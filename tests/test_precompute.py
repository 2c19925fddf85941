"""`nst precompute-style`: the onnxruntime extractor, batched style Grams, style images, the CLI."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nst.cli import main
from nst.errors import ConfigError, ImageError, LayerError
from nst.models.layers import STYLE_LAYERS
from nst.runtime.ort_extractor import OrtExtractor, cuda_unavailable_reason, physical_cores, resolve_providers
from nst.runtime.targets import compute_style_targets, load_targets, style_grams, style_shape


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


# ---------------------------------------------------------------- the extractor


def test_extractor_outputs_and_defaults(extractor):
    assert extractor.provider == "cpu"
    assert extractor.output_names[-5:] == tuple(f"gram_{n}" for n in STYLE_LAYERS)
    assert extractor.threads == physical_cores() >= 1
    assert extractor.session.get_session_options().intra_op_num_threads == physical_cores()
    batch = np.random.default_rng(0).uniform(0, 255, (2, 3, 20, 28)).astype(np.float32)
    out = extractor.run(batch, ["relu4_2", "gram_relu3_1"])
    assert list(out) == ["relu4_2", "gram_relu3_1"]
    assert out["relu4_2"].shape == (2, 512, 3, 4)  # ceil-mode pooling: 20 -> 10 -> 5 -> 3
    assert out["gram_relu3_1"].shape == (2, 256, 256)
    with pytest.raises(LayerError, match=r"has no output 'relu9_9'; it has relu1_1, relu2_1"):
        extractor.run(batch, ["relu9_9"])


def test_ort_grams_equal_mirror_grams(extractor, vgg19_onnx):
    import torch

    from nst.runtime.mirror import VGGMirror

    mirror = VGGMirror.from_onnx(vgg19_onnx)
    batch = np.random.default_rng(1).uniform(0, 255, (2, 3, 48, 40)).astype(np.float32)
    ort = extractor.run(batch, [f"gram_{n}" for n in STYLE_LAYERS])
    with torch.no_grad():
        torch_out = mirror(torch.from_numpy(batch), layers=STYLE_LAYERS, grams=STYLE_LAYERS)
    error = _max_relative_error(ort, {k: torch_out[k].numpy() for k in ort})
    print(f"ORT vs mirror Grams: max relative error {error:.2e}")
    assert error <= 1e-4


def test_auto_provider_is_silent_without_a_gpu(vgg19_onnx, capfd):
    if cuda_unavailable_reason() is None:
        pytest.skip("CUDA is usable here")
    assert resolve_providers("auto") == ["CPUExecutionProvider"]
    extractor = OrtExtractor(vgg19_onnx)  # auto
    assert extractor.provider == "cpu"
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # no provider-load errors printed


def test_provider_errors(vgg19_onnx):
    with pytest.raises(ConfigError, match=r"^unknown provider 'tpu'; choose one of auto, cpu, cuda$"):
        OrtExtractor(vgg19_onnx, provider="tpu")
    if cuda_unavailable_reason() is not None:
        with pytest.raises(ConfigError, match=r"^provider cuda is not usable: .*; use --provider cpu \(or auto\)$"):
            OrtExtractor(vgg19_onnx, provider="cuda")


def test_model_that_onnxruntime_rejects(vgg19_onnx, tmp_path):
    import onnx

    from nst.errors import ModelError

    model = onnx.load(str(vgg19_onnx))
    next(node for node in model.graph.node if node.op_type == "Conv").input[1] = "no_such_tensor"
    onnx.save(model, str(tmp_path / "broken.onnx"))
    with pytest.raises(ModelError, match=r"^onnxruntime cannot open .*broken.onnx \(.*\); export it again with `nst export-vgg`$"):
        OrtExtractor(tmp_path / "broken.onnx", provider="cpu")


@pytest.mark.cuda
def test_cuda_provider(vgg19_onnx):
    if cuda_unavailable_reason() is not None:
        pytest.skip(cuda_unavailable_reason())
    assert OrtExtractor(vgg19_onnx, provider="cuda").provider == "cuda"


# ---------------------------------------------------------------- batched precompute


def test_batched_equals_one_at_a_time_in_fewest_calls(extractor, tmp_path):
    # Three landscape images of one shape, two portrait of another, one odd.
    shapes = [(30, 40), (30, 40), (30, 40), (40, 30), (40, 30), (25, 40)]
    paths = [_write_rgb(tmp_path / f"s{i}.png", h, w, seed=i) for i, (h, w) in enumerate(shapes)]
    batched = CountingExtractor(extractor)
    done: list[int] = []
    targets = compute_style_targets(None, paths, size=40, scales=(1.0, 0.5), batch_size=2,
                                    extractor=batched, progress=done.append)
    # Scale 1: 3 x (30, 40) -> 2 calls, 2 x (40, 30) -> 1, (25, 40) -> 1; scale 0.5 the same.
    assert len(batched.calls) == 8
    assert sorted(n for n, *_ in batched.calls) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert sum(done) == len(paths) * 2

    single = CountingExtractor(extractor)
    alone = compute_style_targets(None, paths, size=40, scales=(1.0, 0.5), batch_size=1, extractor=single)
    assert len(single.calls) == 12
    assert [(e.style, e.scale, e.size) for e in targets.entries] == [(e.style, e.scale, e.size) for e in alone.entries]
    assert [e.size for e in targets.grams_for(3)] == [(40, 30), (20, 15)]
    error = max(_max_relative_error(a.grams, b.grams) for a, b in zip(targets.entries, alone.entries))
    print(f"batched vs one at a time: max relative error {error:.2e}")
    assert error <= 1e-5


def test_loading_overlaps_inference(extractor, tmp_path, monkeypatch):
    import threading
    import time

    import nst.runtime.targets as targets_module

    events: list[tuple[str, int, float]] = []
    load = targets_module._load_style

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

    monkeypatch.setattr(targets_module, "_load_style", slow_load)
    paths = [_write_rgb(tmp_path / f"s{i}.png", 12, 12, seed=i) for i in range(3)]
    compute_style_targets(None, paths, size=12, batch_size=1, extractor=SlowExtractor(extractor))
    when = {(kind, i): t for kind, i, t in events}
    assert when[("load", 2)] < when[("run end", 0)]  # image 2 was read while image 0 ran


def test_targets_metadata_and_sources(extractor, tmp_path):
    import hashlib

    path = _write_rgb(tmp_path / "style.png", 16, 32, seed=7)
    targets = compute_style_targets(None, [path, path], size=32, extractor=extractor)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert [(s.name, s.sha256) for s in targets.sources] == [("style.png", digest)] * 2
    info = extractor.info
    assert (targets.weights_sha256, targets.architecture, targets.pooling, targets.gram_normalization) == (
        info.weights_sha256, "vgg19", "max", "G = F F^T / (C*H*W)")
    assert targets.layers == STYLE_LAYERS and targets.size == 32 and targets.scales == (1.0,)
    assert {k: v.shape for k, v in targets.entries[0].grams.items()} == {
        "relu1_1": (64, 64), "relu2_1": (128, 128), "relu3_1": (256, 256), "relu4_1": (512, 512), "relu5_1": (512, 512)}


def test_width_sizes_styles_like_the_reference(extractor, tmp_path):
    path = _write_rgb(tmp_path / "tall.png", 60, 30, seed=2)
    by_width = compute_style_targets(None, [path], width=20, scales=(1.0, 2.0), extractor=extractor)
    assert [e.size for e in by_width.entries] == [(40, 20), (80, 40)]
    assert (by_width.size, by_width.width) == (None, 20)
    by_size = compute_style_targets(None, [path], size=20, extractor=extractor)
    assert [e.size for e in by_size.entries] == [(20, 10)]
    assert style_shape((30, 60), 1.5, size=20) == (30, 15)


def test_style_grams_of_in_memory_images(extractor, tmp_path):
    from PIL import Image

    from nst.runtime.images import open_image

    path = _write_rgb(tmp_path / "s.png", 24, 36, seed=4)
    [entry] = compute_style_targets(None, [path], size=30, extractor=extractor).entries
    img = open_image(path)
    [grams, same] = style_grams(extractor, [img, img.copy()], sizes=[entry.size, entry.size])
    assert all(np.array_equal(grams[k], entry.grams[k]) for k in STYLE_LAYERS)
    assert _max_relative_error(same, grams) <= 1e-6
    [native] = style_grams(extractor, [Image.new("RGB", (9, 7), (10, 200, 30))], layers=["relu2_1"])
    assert list(native) == ["relu2_1"] and native["relu2_1"].shape == (128, 128)


def test_model_without_gram_outputs_gives_the_same_grams(extractor, make_onnx, tmp_path):
    path = _write_rgb(tmp_path / "s.png", 20, 20, seed=9)
    with_graph = compute_style_targets(None, [path], size=20, extractor=extractor)
    numpy_grams = compute_style_targets(make_onnx(grams=False), [path], size=20, provider="cpu")
    assert _max_relative_error(numpy_grams.entries[0].grams, with_graph.entries[0].grams) <= 1e-5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(scales=(1.0, 0.0)), "style scales must be positive numbers, not 1.0,0.0"),
        (dict(size=0), "style size must be at least 1 px, not 0"),
        (dict(batch_size=0), "batch size must be at least 1, not 0"),
        (dict(width=0), "style width must be at least 1 px, not 0"),
    ],
)
def test_bad_settings(extractor, tmp_path, options, message):
    path = _write_rgb(tmp_path / "s.png", 8, 8, seed=0)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        compute_style_targets(None, [path], **{"size": 8, **options}, extractor=extractor)


def test_broken_style_image(extractor, tmp_path):
    good = _write_rgb(tmp_path / "good.png", 8, 8, seed=0)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ImageError, match=r"^cannot read image .*broken.jpg"):
        compute_style_targets(None, [good, broken], size=8, extractor=extractor)
    with pytest.raises(ImageError, match=r"^image not found: .*missing.png$"):
        compute_style_targets(None, [tmp_path / "missing.png"], size=8, extractor=extractor)


# ---------------------------------------------------------------- style images as users have them


def _rgb(path: Path) -> np.ndarray:
    from nst.runtime.images import open_image

    img = open_image(path)
    assert img.mode == "RGB"
    return np.asarray(img)


def test_grayscale_becomes_gray_rgb(tmp_path):
    from PIL import Image

    gray = np.array([[0, 90], [180, 255]], dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    assert np.array_equal(_rgb(tmp_path / "g.png"), np.repeat(gray[..., None], 3, axis=2))


def test_palette_becomes_its_colours(tmp_path):
    from PIL import Image

    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    img.save(tmp_path / "p.gif")
    for name in ("p.png", "p.gif"):
        assert _rgb(tmp_path / name).tolist() == [[[255, 0, 0], [0, 0, 255]]]


def test_alpha_is_composited_on_white(tmp_path):
    from PIL import Image

    rgba = np.array([[[255, 0, 0, 0], [0, 0, 0, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    transparent, opaque, half = _rgb(tmp_path / "a.png")[0].tolist()
    assert transparent == [255, 255, 255]  # not the hidden red
    assert opaque == [0, 0, 0]
    assert all(abs(v - 127) <= 1 for v in half)
    Image.fromarray(np.array([[[50, 0]]], dtype=np.uint8), "LA").save(tmp_path / "la.png")
    assert _rgb(tmp_path / "la.png").tolist() == [[[255, 255, 255]]]
    # A palette with a transparent index, as GIFs have.
    img = Image.new("P", (2, 1))
    img.putpalette([0, 255, 0, 10, 20, 30] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "t.png", transparency=0)
    assert _rgb(tmp_path / "t.png").tolist() == [[[255, 255, 255], [10, 20, 30]]]


def test_16_bit_is_scaled_to_8_bit(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0, 32896, 65535, 257]], dtype=np.uint16)).save(tmp_path / "16.png")
    assert _rgb(tmp_path / "16.png")[0, :, 0].tolist() == [0, 128, 255, 1]
    # A dark 16-bit image stays dark (its values are not mistaken for 8-bit ones).
    Image.fromarray(np.array([[0, 200]], dtype=np.uint16)).save(tmp_path / "dark.png")
    assert _rgb(tmp_path / "dark.png")[0, :, 0].tolist() == [0, 1]


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    stored = np.zeros((16, 32, 3), dtype=np.uint8)  # 32 wide, 16 tall: left half red, right half blue
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif, quality=95)
    shown = _rgb(tmp_path / "r.jpg").astype(int)
    assert shown.shape == (32, 16, 3)  # displayed portrait
    assert np.abs(shown[4, 8] - (255, 0, 0)).max() < 40  # the stored left (red) is now on top
    assert np.abs(shown[28, 8] - (0, 0, 255)).max() < 40


def test_grayscale_style_file_gives_the_grams_of_its_rgb_twin(extractor, tmp_path):
    from PIL import Image

    gray = np.random.default_rng(8).integers(0, 256, (20, 24), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB").save(tmp_path / "rgb.png")
    a, b = compute_style_targets(None, [tmp_path / "gray.png", tmp_path / "rgb.png"], size=24,
                                 extractor=extractor).entries
    assert all(np.array_equal(a.grams[k], b.grams[k]) for k in STYLE_LAYERS)


# ---------------------------------------------------------------- the command


def test_cli_writes_targets(vgg19_onnx, tmp_path):
    a = _write_rgb(tmp_path / "a.png", 20, 30, seed=1)
    b = _write_rgb(tmp_path / "b.jpg", 30, 20, seed=2)
    out = tmp_path / "style.targets"
    result = CliRunner().invoke(main, ["precompute-style", str(a), str(b), "-m", str(vgg19_onnx), "-o", str(out),
                                       "--size", "30", "--style-scales", "1,0.5", "--batch-size", "4",
                                       "--provider", "cpu"])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        rf"wrote {re.escape(str(out))}: 2 styles x 2 scales \(1,0.5\), 5 layers "
        r"\(relu1_1,relu2_1,relu3_1,relu4_1,relu5_1\), \d+\.\d MB in \d+\.\d s\n",
        result.stdout,
    ), result.output
    targets = load_targets(out)
    assert [s.name for s in targets.sources] == ["a.png", "b.jpg"]
    assert [e.size for e in targets.entries] == [(20, 30), (10, 15), (30, 20), (15, 10)]


_OUT = "-o {tmp}/s.targets"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("{style} -m {tmp}/none.onnx " + _OUT,
         "model file not found: {tmp}/none.onnx; create one with `nst export-vgg WEIGHTS -o {tmp}/none.onnx`"),
        ("{style} -m {model} --style-scales 1,-2 " + _OUT, "style scales must be positive numbers, not 1.0,-2.0"),
        ("{style} -m {model} --style-scales , " + _OUT, "style scales must be positive numbers, not none"),
        ("{tmp}/missing.png -m {model} " + _OUT, "image not found: {tmp}/missing.png"),
        ("{style} -m {model} -o {tmp}/no/folder/s.targets", "folder {tmp}/no/folder does not exist; create it first"),
    ],
)
def test_cli_user_errors(vgg19_onnx, tmp_path, argv, message):
    style = _write_rgb(tmp_path / "s.png", 8, 8, seed=0)
    argv = argv.format(style=style, model=vgg19_onnx, tmp=tmp_path).split()
    result = CliRunner().invoke(main, ["precompute-style", *argv, "--size", "8"])
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {message.format(tmp=tmp_path)}\n"  # one line, no traceback
    assert not (tmp_path / "s.targets").exists()


def test_cli_refuses_to_overwrite(vgg19_onnx, tmp_path):
    style = _write_rgb(tmp_path / "s.png", 8, 8, seed=0)
    out = tmp_path / "s.targets"
    out.write_bytes(b"keep me")
    argv = ["precompute-style", str(style), "-m", str(vgg19_onnx), "-o", str(out), "--size", "8"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {out} exists; pass --overwrite to replace it"
    assert out.read_bytes() == b"keep me"
    assert CliRunner().invoke(main, [*argv, "--overwrite"]).exit_code == 0
    assert load_targets(out).sources[0].name == "s.png"


def test_cli_usage_errors(vgg19_onnx, tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["precompute-style", "-m", str(vgg19_onnx), "-o", "x"]).exit_code == 2  # no STYLE
    result = runner.invoke(main, ["precompute-style", "s.png", "-m", "m.onnx", "-o", "x", "--provider", "tpu"])
    assert result.exit_code == 2 and "'tpu' is not one of 'auto', 'cpu', 'cuda'" in result.output
    result = runner.invoke(main, ["precompute-style", "s.png", "-m", "m.onnx", "-o", "x", "--style-scales", "a"])
    assert result.exit_code == 2 and "is not a comma-separated list of float" in result.output


def test_cli_provider_cuda_without_gpu(vgg19_onnx, tmp_path):
    if cuda_unavailable_reason() is None:
        pytest.skip("CUDA is usable here")
    style = _write_rgb(tmp_path / "s.png", 8, 8, seed=0)
    result = CliRunner().invoke(main, ["precompute-style", str(style), "-m", str(vgg19_onnx),
                                       "-o", str(tmp_path / "s.targets"), "--provider", "cuda"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: provider cuda is not usable: {cuda_unavailable_reason()}; use --provider cpu (or auto)"
    )


def test_every_config_field_is_an_option_in_help():
    from nst.cli.precompute_cmd import PrecomputeConfig, precompute_style

    result = CliRunner().invoke(main, ["precompute-style", "--help"])
    assert result.exit_code == 0
    options = {opt for param in precompute_style.params for opt in param.opts}
    defaults = {param.name: param.default for param in precompute_style.params}
    for f in dataclasses.fields(PrecomputeConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in options and flag in result.output, f.name
        assert f.name in defaults
    assert defaults["size"] == PrecomputeConfig.size == 512
    assert defaults["style_scales"] == "1.0" and defaults["batch_size"] == 8 and defaults["provider"] == "auto"


def test_help_does_not_import_heavy_modules():
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from nst.cli import main; "
            "r = CliRunner().invoke(main, ['precompute-style', '--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
