"""The ONNX extractor: contract, truncation, and parity of onnxruntime, the PyTorch mirror,
onnx's ReferenceEvaluator and an independent numpy forward on every exported layer."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nst.errors import LayerError
from nst.export.onnx_graph import ExportConfig, build_onnx
from nst.models.layers import DEFAULT_LAYERS, STYLE_LAYERS, layer_names
from nst.models.matconvnet import read_matconvnet
from nst.runtime.mirror import VGGMirror

from reference_forward import forward, gram, max_rel_error, raw_convs

TOLERANCE = 1e-4  # max relative error between any two implementations


def _ort(path) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda x: dict(zip(names, session.run(None, {"image": x})))


def _image(n=3, h=37, w=53, seed=0):
    return (np.random.default_rng(seed).random((n, 3, h, w)) * 255).astype(np.float32)


def test_contract(vgg19_onnx):
    model = onnx.load(str(vgg19_onnx))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["image"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]
    outputs = [o.name for o in model.graph.output]
    ordered = [n for n in layer_names("vgg19") if n in DEFAULT_LAYERS]
    assert outputs == ordered + [f"gram_{n}" for n in STYLE_LAYERS]
    names = {t.name for t in model.graph.initializer}
    convs = [f"conv{b}_{i}" for b, d in zip(range(1, 6), (2, 2, 4, 4, 2)) for i in range(1, d + 1)]
    assert {f"{c}.{p}" for c in convs for p in ("weight", "bias")} <= names
    assert "conv5_3.weight" not in names  # truncated after relu5_2
    props = {p.key: p.value for p in model.metadata_props}
    assert props["nst.architecture"] == "vgg19"
    assert props["nst.layers"] == ",".join(ordered)
    assert props["nst.pooling"] == "max"
    assert props["nst.format"] == "1"
    assert props["nst.input"].startswith("image: float32 [N, 3, H, W], RGB, 0-255")
    assert [float(v) for v in props["nst.mean_pixel"].split(",")] == pytest.approx([123.68, 116.779, 103.939], abs=1e-4)
    assert len(props["nst.source_sha256"]) == 64 and len(props["nst.weights_sha256"]) == 64
    assert model.opset_import[0].version == 17


def test_truncation(make_onnx):
    path = make_onnx(layers=("relu2_1",), grams=False)
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["relu2_1"]
    assert sorted(t.name for t in model.graph.initializer) == sorted(
        ["mean_pixel"] + [f"{c}.{p}" for c in ("conv1_1", "conv1_2", "conv2_1") for p in ("weight", "bias")]
    )


def test_unknown_layer_suggests(make_mat):
    weights = read_matconvnet(make_mat())
    with pytest.raises(
        LayerError,
        match=r"unknown layer 'relu4_22' for vgg19\. Did you mean 'relu4_2'\? Valid layers: conv1_1, relu1_1,",
    ):
        build_onnx(weights, ExportConfig(layers=("relu4_22",)))


@pytest.mark.parametrize("version", ["old", "new"])
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_parity_ort_mirror_numpy(make_mat, make_onnx, version, pooling):
    """Odd size 37x53 (pools to 19x27, 10x14, 5x7, 3x4), batch 3, every output and Gram."""
    path = make_onnx(version=version, pooling=pooling)
    image = _image()
    ort_out = _ort(path)(image)
    mirror = VGGMirror.from_onnx(path)
    with torch.no_grad():
        torch_out = mirror(torch.from_numpy(image), grams=STYLE_LAYERS)
    ref = forward(
        image,
        raw_convs(make_mat(version=version)),
        (123.68, 116.779, 103.939),
        layer_names("vgg19"),
        set(DEFAULT_LAYERS),
        pooling,
    )
    ref.update({f"gram_{n}": gram(ref[n]) for n in STYLE_LAYERS})
    assert set(ort_out) == set(torch_out) == set(ref)
    errors = {}
    for name, expected in ref.items():
        assert ort_out[name].shape == torch_out[name].shape == expected.shape
        errors[name] = max(
            max_rel_error(ort_out[name], expected),
            max_rel_error(torch_out[name].numpy(), expected),
            max_rel_error(ort_out[name], torch_out[name].numpy().astype(np.float64)),
        )
    print(f"max relative error ({version}, {pooling}): {max(errors.values()):.2e}")
    assert max(errors.values()) <= TOLERANCE, errors


def test_swap_kernel_axes_matches_reference_reading(make_mat, make_onnx):
    path = make_onnx(layers=("relu1_2",), grams=False, swap_kernel_axes=True)
    image = _image(n=1, h=9, w=11)
    ref = forward(
        image, raw_convs(make_mat(), swap=True), (123.68, 116.779, 103.939), layer_names("vgg19"), {"relu1_2"}
    )
    assert max_rel_error(_ort(path)(image)["relu1_2"], ref["relu1_2"]) <= TOLERANCE
    plain = _ort(make_onnx(layers=("relu1_2",), grams=False))(image)["relu1_2"]
    assert max_rel_error(plain, ref["relu1_2"]) > 1e-2  # the swap really changes the filters


def test_versions_give_identical_initializers(make_onnx):
    old, new = (onnx.load(str(make_onnx(version=v))) for v in ("old", "new"))
    for a, b in zip(old.graph.initializer, new.graph.initializer, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))


def test_vgg16(make_mat, make_onnx):
    path = make_onnx(arch="vgg16")
    image = _image(n=1, h=24, w=20)
    ref = forward(
        image, raw_convs(make_mat("vgg16")), (123.68, 116.779, 103.939), layer_names("vgg16"), set(DEFAULT_LAYERS)
    )
    out = _ort(path)(image)
    assert max(max_rel_error(out[n], ref[n]) for n in DEFAULT_LAYERS) <= TOLERANCE
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["nst.architecture"] == "vgg16"


def test_reference_evaluator_matches_ort(vgg19_onnx):
    """The graph runs in onnx's pure-Python reference runtime too: it deploys beyond onnxruntime."""
    from onnx.reference import ReferenceEvaluator

    image = _image(n=1, h=13, w=17, seed=1)
    model = onnx.load(str(vgg19_onnx))
    names = [o.name for o in model.graph.output]
    ref = dict(zip(names, ReferenceEvaluator(model).run(None, {"image": image})))
    ort_out = _ort(vgg19_onnx)(image)
    for name in names:
        assert max_rel_error(ref[name], ort_out[name].astype(np.float64)) <= TOLERANCE, name
