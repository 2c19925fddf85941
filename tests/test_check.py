"""`check_model`: the mirror built from the source weights catches a graph that does not hold
them, a `.mat` that is not the model's source is refused, runtimes are run, skipped or failed."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from nst.check import CheckConfig, check_model
from nst.errors import ConfigError, WeightsError
from nst.export.onnx_graph import max_opset

SMALL = ("relu1_1", "relu2_1", "relu3_1")
QUICK = {"size": (16, 20)}


@pytest.fixture(scope="module")
def small_onnx(make_onnx):
    return make_onnx(layers=SMALL)


@pytest.fixture
def tampered(small_onnx, tmp_path):
    """The small graph with one weight of conv2_1 changed."""
    model = onnx.load(str(small_onnx))
    tensor = next(t for t in model.graph.initializer if t.name == "conv2_1.weight")
    values = numpy_helper.to_array(tensor).copy()
    values[3, 5, 1, 1] += 0.5
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    path = tmp_path / "tampered.onnx"
    onnx.save(model, str(path))
    return path


def test_good_graph_passes_in_every_runtime(small_onnx, make_mat):
    report = check_model(small_onnx, config=CheckConfig(weights=make_mat(), **QUICK))
    print(report.table())
    assert report.ok
    ran = {row.runtime for row in report.rows if row.status == "pass"}
    assert {"onnxruntime", "onnx-reference"} <= ran
    assert len([r for r in report.rows if r.runtime == "onnxruntime"]) == 6  # 3 features + 3 Grams
    assert all(row.max_rel is not None and row.max_rel < 1e-5 for row in report.rows if row.status == "pass")
    assert report.table().endswith("checks passed")


def test_tampered_weight_fails_against_the_source(tampered, make_mat):
    report = check_model(tampered, config=CheckConfig(runtime="onnxruntime", weights=make_mat(), **QUICK))
    failed = {row.output for row in report.rows if row.status == "FAIL"}
    assert not report.ok and failed == {"relu2_1", "relu3_1", "gram_relu2_1", "gram_relu3_1"}
    assert "4 of 6 checks FAILED" in report.table()
    # Without --weights the reference is the graph's own (tampered) weights: nothing to see.
    assert check_model(tampered, config=CheckConfig(runtime="onnxruntime", **QUICK)).ok


def test_weights_of_another_file_are_refused(small_onnx, make_mat):
    other = make_mat(seed=1)
    with pytest.raises(
        WeightsError,
        match=rf"^{other} \(sha256 [0-9a-f]{{12}}\) is not the file .* was exported from \(sha256 [0-9a-f]{{12}}\); pass that .mat$",
    ):
        check_model(small_onnx, config=CheckConfig(weights=other, **QUICK))


def test_runtime_not_installed_is_skipped(small_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    report = check_model(small_onnx, config=CheckConfig(runtime="openvino", **QUICK))
    (row,) = report.rows
    assert (row.runtime, row.status, row.note) == ("openvino", "skipped", "not installed; pip install 'nst[openvino]'")
    assert report.ok and "skipped: not installed; pip install 'nst[openvino]'" in report.table()


def test_runtime_that_cannot_load_the_graph_fails(make_onnx):
    path = make_onnx(layers=("relu1_1",), opset=max_opset())
    report = check_model(path, config=CheckConfig(runtime="onnxruntime", **QUICK))
    if report.ok:
        pytest.skip(f"this onnxruntime reads opset {max_opset()}")
    (row,) = report.rows
    assert row.status == "FAIL" and row.output == "*" and "version" in row.note.lower()


def test_static_and_int8_need_what_they_need(make_onnx, calibration_dir):
    static = make_onnx(layers=("relu1_1",), static=(2, 12, 14))
    report = check_model(static, config=CheckConfig(runtime="onnxruntime"))
    assert report.ok and report.shape == (2, 3, 12, 14)
    with pytest.raises(ConfigError, match=r"is a static 2x3x12x14 float32 deployment graph; it runs only at 12x14"):
        check_model(static, config=CheckConfig(size=(16, 16)))
    int8 = make_onnx(layers=SMALL, quantize="int8", calibrate=calibration_dir)
    with pytest.raises(
        ConfigError, match=r"is an int8 deployment graph: its float weights are not in it; pass --weights"
    ):
        check_model(int8, config=CheckConfig(runtime="onnxruntime"))


def test_int8_matches_the_source_mirror(make_onnx, make_mat, calibration_dir):
    int8_path = make_onnx(layers=SMALL, quantize="int8", calibrate=calibration_dir)
    for runtime in ("onnxruntime", "onnx-reference"):
        config = CheckConfig(runtime=runtime, weights=make_mat(), image=calibration_dir / "cal1.png", size=(30, 40))
        report = check_model(int8_path, config=config)
        print(report.table())
        assert report.ok


def test_openvino(make_onnx, make_mat, calibration_dir):
    pytest.importorskip("openvino")
    for options in ({}, {"precision": "fp16", "io": "fp16"}, {"quantize": "int8", "calibrate": calibration_dir}):
        path = make_onnx(layers=SMALL, **options)
        image = calibration_dir / "cal2.png"
        report = check_model(
            path, config=CheckConfig(runtime="openvino", weights=make_mat(), image=image, size=(30, 40))
        )
        print(report.table())
        assert report.ok and all(row.status == "pass" for row in report.rows), options


def test_noise_without_examples(small_onnx, monkeypatch, tmp_path):
    monkeypatch.setattr("nst.check.EXAMPLES", tmp_path)
    report = check_model(small_onnx, config=CheckConfig(runtime="onnxruntime", **QUICK))
    assert report.image == "seeded noise" and report.ok
    assert np.isfinite([row.max_rel for row in report.rows]).all()
