"""`nst export-vgg`'s deployment options: each graph passes onnx's checker and strict shape
inference, records its choices, and matches the PyTorch mirror within its precision's
tolerance in onnxruntime and in onnx's reference evaluator."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from nst.contract import gram_output, model_info, read_model_info
from nst.errors import ConfigError, ModelError
from nst.export.onnx_graph import MIN_OPSET, ExportConfig, build_onnx, check_graph, max_opset
from nst.models.matconvnet import read_matconvnet
from nst.runtime.mirror import VGGMirror

from reference_forward import max_rel_error

SMALL = ("relu1_1", "relu2_1", "relu3_1")  # every option acts alike at any depth; this is fast
# max |output - mirror| / max |mirror|; fp16 measured below 1e-3 (onnx.reference computes in fp16)
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3}


def _image(n=2, h=12, w=17, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, h, w)).astype(np.float32)


def _expected(path, image: np.ndarray) -> dict[str, np.ndarray]:
    """The float32 mirror of the model's own weights, at the model's outputs."""
    info = read_model_info(path)
    mirror = VGGMirror.from_onnx(path)
    with torch.no_grad():
        out = mirror(torch.from_numpy(image), layers=info.feature_outputs or info.grams, grams=info.grams)
    names = [*info.feature_outputs, *(gram_output(n) for n in info.grams)]
    return {name: out[name].double().numpy() for name in names}


def _ort(path, image: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": image})))


def _assert_matches(path, image: np.ndarray, runtimes=("onnxruntime", "onnx-reference")) -> dict[str, float]:
    info = read_model_info(path)
    expected = _expected(path, image)
    feed = image.astype(np.float16 if info.io == "fp16" else np.float32)
    errors = {}
    for runtime in runtimes:
        if runtime == "onnxruntime":
            out = _ort(path, feed)
        else:
            model = onnx.load(str(path))
            out = dict(zip([o.name for o in model.graph.output], ReferenceEvaluator(model).run(None, {"image": feed})))
        assert list(out) == list(expected), runtime
        for name, value in out.items():
            assert value.dtype == (np.float16 if info.io == "fp16" else np.float32)
            errors[f"{runtime} {name}"] = error = max_rel_error(value, expected[name])
            assert error <= TOLERANCE["fp16" if "fp16" in (info.precision, info.io) else "fp32"], (runtime, name)
    return errors


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "fp16"},
        {"precision": "fp16", "io": "fp16"},
        {"io": "fp16"},
        {"static": (2, 12, 17)},
        {"outputs": "grams"},
        {"outputs": "features"},
        {"precision": "fp16", "static": (2, 12, 17), "outputs": "grams", "opset": MIN_OPSET, "pooling": "avg"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_option_parity(make_onnx, options):
    path = make_onnx(layers=SMALL, **options)
    model = onnx.load(str(path))
    check_graph(model)  # full checker and strict shape inference, on the file as written
    info = model_info(model, path)
    config = ExportConfig(layers=SMALL, **options)
    assert (info.precision, info.io, info.static, info.opset) == (
        config.precision,
        config.io,
        config.static,
        config.opset,
    )
    props = {p.key: p.value for p in model.metadata_props}
    assert props["nst.static"] == ("x".join(map(str, config.static)) if config.static else "dynamic")
    assert props["nst.gram_precision"] == "fp32" and props["nst.quantize"] == "none"
    errors = _assert_matches(path, _image())
    print(options, f"max relative error {max(errors.values()):.2e}")


def test_outputs_and_truncation(make_onnx):
    grams_only = onnx.load(str(make_onnx(layers=("relu1_1", "relu2_1", "relu2_2"), outputs="grams")))
    assert [o.name for o in grams_only.graph.output] == ["gram_relu1_1", "gram_relu2_1"]
    weights = {t.name for t in grams_only.graph.initializer}
    assert "conv2_1.weight" in weights and "conv2_2.weight" not in weights  # ends at the deepest Gram
    info = model_info(grams_only, "g.onnx")
    assert info.outputs == "grams" and info.feature_outputs == () and info.layers == ("relu1_1", "relu2_1")
    assert info.describe() == "a float32 Grams-only deployment graph"
    features = model_info(onnx.load(str(make_onnx(layers=SMALL, outputs="features"))), "f.onnx")
    assert features.grams == () and features.outputs == "features"
    assert model_info(onnx.load(str(make_onnx(layers=SMALL, grams=False))), "n.onnx").outputs == "features"


def test_static_shapes_are_concrete(make_onnx):
    model = onnx.load(str(make_onnx(layers=SMALL, static=(3, 21, 30))))
    dims = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert dims == {
        "relu1_1": [3, 64, 21, 30],
        "relu2_1": [3, 128, 11, 15],
        "relu3_1": [3, 256, 6, 8],
        "gram_relu1_1": [3, 64, 64],
        "gram_relu2_1": [3, 128, 128],
        "gram_relu3_1": [3, 256, 256],
    }
    assert not any(node.op_type in ("Shape", "ReduceProd") for node in model.graph.node)  # constant sizes


def test_fp16_weights_are_half_and_grams_float(make_onnx):
    model = onnx.load(str(make_onnx(layers=SMALL, precision="fp16")))
    types = {t.name: t.data_type for t in model.graph.initializer}
    assert types["conv1_1.weight"] == onnx.TensorProto.FLOAT16
    assert types["mean_pixel"] == onnx.TensorProto.FLOAT  # the mean is subtracted in float32
    casts = {n.output[0] for n in model.graph.node if n.op_type == "Cast"}
    assert {"relu1_1", "gram_relu1_1.features"} & casts  # the Grams read float32 features
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    inferred = onnx.shape_inference.infer_shapes(model)
    value_types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    assert matmuls and all(value_types[m.input[0]] == onnx.TensorProto.FLOAT for m in matmuls)


def test_every_opset(make_mat):
    """A one-conv graph at each opset from 13 to onnx's newest: checked, and equal to the
    opset-17 graph in onnx.reference and in onnxruntime where onnxruntime reads the opset."""
    weights = read_matconvnet(make_mat())
    image = _image(n=1, h=9, w=11)
    baseline = _ort_model(build_onnx(weights, ExportConfig(layers=("relu1_1",))), image)
    for opset in range(MIN_OPSET, max_opset() + 1):
        model = build_onnx(weights, ExportConfig(layers=("relu1_1",), opset=opset))
        assert model.opset_import[0].version == opset
        assert model.ir_version == onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
        assert model_info(model, "m.onnx").opset == opset
        ref = dict(zip(["relu1_1", "gram_relu1_1"], ReferenceEvaluator(model).run(None, {"image": image})))
        for name, value in baseline.items():
            assert max_rel_error(ref[name], value.astype(np.float64)) <= 1e-5, (opset, name)
        try:
            out = _ort_model(model, image)
        except Exception as exc:  # an opset newer than this onnxruntime reads
            assert "opset" in str(exc).lower() or "ir version" in str(exc).lower(), str(exc)
            assert opset > 17
            continue
        for name, value in baseline.items():
            assert max_rel_error(out[name], value.astype(np.float64)) <= 1e-6, (opset, name)


def _ort_model(model, image):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": image})))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"quantize": "int8", "precision": "fp16"}, "--quantize int8 quantizes a float32 graph; drop --precision fp16"),
        ({"outputs": "grams", "grams": False}, "--outputs grams with --no-grams leaves the graph no output"),
        ({"calibrate": "examples"}, "--calibrate chooses the images of --quantize int8"),
        ({"opset": 12}, "--opset must be an integer from 13"),
        ({"static": (1, 0, 5)}, "--static must be NxHxW with each value from 1 to 30000"),
        ({"precision": "bf16"}, "--precision must be one of fp32, fp16, not 'bf16'"),
        ({"outputs": "some"}, "--outputs must be one of all, features, grams"),
        ({"quantize": "int4"}, "--quantize must be int8"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        ExportConfig(**options)


def test_opset_beyond_onnx_and_grams_without_style_layer(make_mat):
    weights = read_matconvnet(make_mat())
    with pytest.raises(ConfigError, match=rf"^--opset {max_opset() + 1}: the installed onnx supports opsets 13 to"):
        build_onnx(weights, ExportConfig(opset=max_opset() + 1))
    with pytest.raises(ConfigError, match=r"^--outputs grams needs a style layer .* among --layers relu4_2$"):
        build_onnx(weights, ExportConfig(layers=("relu4_2",), outputs="grams"))


def test_metadata_missing_a_key_is_refused_naming_it(vgg19_onnx):
    """Every file of this format version holds every nst.* key; one without is not read with
    guessed defaults (nst 0.1 has no older files to keep reading)."""
    model = onnx.load(str(vgg19_onnx), load_external_data=False)
    kept = [p for p in model.metadata_props if p.key != "nst.opset"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    with pytest.raises(ModelError) as err:
        model_info(model, "old.onnx")
    assert str(err.value) == "old.onnx: nst metadata is incomplete (no nst.opset); export it again"
