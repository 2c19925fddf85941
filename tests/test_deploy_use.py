"""precompute-style and stylize given deployment graphs: fp16, Grams-only and static graphs are
used where that is sound (and give the float graph's results), int8 graphs are refused in one
line that names the export they need."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from nst.cli import main
from nst.errors import ConfigError, LayerError, ModelError
from nst.runtime.config import PrecomputeConfig, StylizeConfig
from nst.runtime.grams import compute_style_targets
from nst.runtime.mirror import VGGMirror
from nst.runtime.stylize import stylize

SMALL = ("relu1_1", "relu2_1", "relu3_1")


def _write(path, height: int, width: int, seed: int):
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC).save(path)
    return path


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles")
    return [_write(folder / "a.png", 24, 24, 1), _write(folder / "b.png", 18, 24, 2)]


def _targets(path, styles, **config):
    return compute_style_targets(path, styles, config=PrecomputeConfig(size=24, provider="cpu", **config))


def test_precompute_with_fp16_and_grams_only_graphs(make_onnx, styles):
    """Their targets equal the float graph's to fp16 precision, and an fp16 export has the same
    network digest, so its targets serve stylize with the float graph."""
    float_targets = _targets(make_onnx(layers=SMALL), styles)
    for options in ({"precision": "fp16"}, {"precision": "fp16", "io": "fp16"}, {"outputs": "grams"}):
        targets = _targets(make_onnx(layers=SMALL, **options), styles)
        assert targets.weights_sha256 == float_targets.weights_sha256 and targets.layers == SMALL
        for entry, reference in zip(targets.entries, float_targets.entries, strict=True):
            for layer in SMALL:
                a, b = entry.grams[layer], reference.grams[layer]
                assert np.linalg.norm(a - b) <= 1e-3 * np.linalg.norm(b), (options, layer)


def test_precompute_with_a_static_graph_only_at_its_size(make_onnx, styles):
    static = make_onnx(layers=SMALL, static=(2, 24, 24))
    targets = _targets(static, styles[:1], style_scales=(1.0,))
    reference = _targets(make_onnx(layers=SMALL), styles[:1], style_scales=(1.0,))
    np.testing.assert_allclose(
        targets.entries[0].grams["relu3_1"], reference.entries[0].grams["relu3_1"], rtol=1e-4, atol=1e-6
    )
    with pytest.raises(ConfigError, match=r"it takes 24x24 images, not 18x24; export a dynamic graph"):
        _targets(static, styles[1:])


def test_int8_graphs_are_refused(make_onnx, calibration_dir, styles):
    int8 = make_onnx(layers=SMALL, quantize="int8", calibrate=calibration_dir)
    with pytest.raises(
        ModelError,
        match=r"is an int8 deployment graph; style targets need float Grams: export without --quantize \(fp16, "
        r"static and Grams-only exports work\): nst export-vgg WEIGHTS -o M.onnx$",
    ):
        _targets(int8, styles)
    with pytest.raises(
        ModelError, match=r"is an int8 deployment graph; stylize needs a float export .*: nst export-vgg WEIGHTS -o"
    ):
        VGGMirror.from_onnx(int8)
    result = CliRunner().invoke(
        main, ["precompute-style", str(styles[0]), "-m", str(int8), "-o", str(calibration_dir / "t.targets")]
    )
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "is an int8 deployment graph" in result.output


def test_mirror_widens_fp16_weights(make_onnx):
    import onnx
    from onnx import numpy_helper

    path = make_onnx(layers=SMALL, precision="fp16")
    mirror = VGGMirror.from_onnx(path)
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    assert mirror.conv2_1.weight.dtype == torch.float32
    np.testing.assert_array_equal(mirror.conv2_1.weight.numpy(), stored["conv2_1.weight"].astype(np.float32))


def test_stylize_with_a_static_fp16_grams_only_graph(make_onnx):
    """The mirror runs at any size and holds relu4_2 (the graph ends at relu5_1); the style
    pass goes through the mirror, since the static graph takes one size only."""
    path = make_onnx(outputs="grams", static=(1, 16, 16), precision="fp16")
    rng = np.random.default_rng(0)
    content = Image.fromarray(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8))
    style = Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8))
    out = stylize(content, [style], config=StylizeConfig(size=0, iterations=2, seed=0, provider="cpu"), model=path)
    assert out.size == (28, 20)
    with pytest.raises(
        LayerError,
        match=r"layer relu5_2 is deeper than .* \(ends at relu5_1\); export a model with that layer \(without --outputs grams",
    ):
        stylize(content, [style], config=StylizeConfig(size=0, iterations=1, content_weight_blend=0.5), model=path)


def test_stylize_provider_option(vgg19_onnx, tmp_path):
    from nst.runtime.ort_extractor import provider_unavailable_reason

    help_text = CliRunner().invoke(main, ["stylize", "--help"]).output
    assert "--provider [auto|cpu|cuda|tensorrt|openvino]" in help_text
    if provider_unavailable_reason("openvino") is None:
        pytest.skip("onnxruntime's OpenVINO provider is usable here")
    content = _write(tmp_path / "c.png", 20, 20, 3)
    args = [
        "stylize",
        str(content),
        str(content),
        "-m",
        str(vgg19_onnx),
        "-o",
        str(tmp_path / "o.png"),
        "--iterations",
        "1",
        "--provider",
        "openvino",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.output.startswith("Error: provider openvino is not usable: ")
    assert result.output.count("\n") == 1
