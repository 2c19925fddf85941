"""`--quantize int8`: the QDQ graph onnxruntime.quantization writes, its metadata, the weight
rounding the bias correction assumes, and the calibration images (parity: tests/test_check.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from nst.contract import model_info
from nst.errors import ConfigError
from nst.export.onnx_graph import check_graph
from nst.export.quantize import calibration_batches, calibration_paths, rounded_weights

SMALL = ("relu1_1", "relu2_1", "relu3_1")


@pytest.fixture(scope="module")
def int8_path(make_onnx, calibration_dir):
    return make_onnx(layers=SMALL, quantize="int8", calibrate=calibration_dir)


def test_int8_graph(int8_path):
    model = onnx.load(str(int8_path))
    check_graph(model)
    info = model_info(model, int8_path)
    assert info.quantize == "int8" and info.describe() == "an int8 deployment graph"
    assert info.calibration.startswith("MinMax ranges from 3 images in ") and "cal0.png" in info.calibration
    quantized = {
        n.input[1] for n in model.graph.node if n.op_type == "Conv" and n.input[1].endswith("_DequantizeLinear_Output")
    }
    expected = {f"conv{c}.weight_DequantizeLinear_Output" for c in ("1_2", "2_1", "2_2", "3_1")}
    assert quantized == expected  # conv1_1 (the first) stays float
    assert not any(n.op_type == "MatMul" and "Quantize" in "".join(n.input) for n in model.graph.node)
    assert {o.name for o in model.graph.output} == {
        "relu1_1",
        "relu2_1",
        "relu3_1",
        "gram_relu1_1",
        "gram_relu2_1",
        "gram_relu3_1",
    }


def test_rounding_is_onnxruntimes(int8_path, make_mat):
    """The bias correction predicts onnxruntime's weight rounding; the graph shows it exactly."""
    from nst.models.matconvnet import read_matconvnet

    model = onnx.load(str(int8_path))
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    source = read_matconvnet(make_mat()).convs["conv2_1"][0]
    q, scale = tensors["conv2_1.weight_quantized"], tensors["conv2_1.weight_scale"]
    dequantized = q.astype(np.float32) * scale.reshape(-1, 1, 1, 1)
    np.testing.assert_array_equal(dequantized, rounded_weights(source))


def test_onnxruntime_keeps_the_grams_float(int8_path, tmp_path):
    """Left to itself onnxruntime fuses DequantizeLinear -> MatMul into an integer matmul, whose
    int32 sum overflows on large images; the Gram's float scaling sits between them."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3  # its note that the file holds hardware-specific kernels
    ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert not ops & {"MatMulInteger", "MatMulIntegerToFloat", "QLinearMatMul"}, ops
    assert "QLinearConv" in ops  # while the convolutions do run in int8


def test_static_int8_calibrates_at_its_shape(make_onnx, calibration_dir):
    path = make_onnx(layers=("relu1_2",), static=(2, 16, 16), quantize="int8", calibrate=calibration_dir)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [2, 3, 16, 16]
    batches = calibration_batches(calibration_paths(calibration_dir), static=(2, 16, 16))
    assert [b.shape for b in batches] == [(2, 3, 16, 16), (2, 3, 16, 16)]  # 3 images cycled to 4


def test_calibration_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match=rf"^calibration folder {tmp_path / 'none'} not found; pass --calibrate DIR"):
        calibration_paths(tmp_path / "none")
    with pytest.raises(ConfigError, match=rf"^no images \(.jpg, .png, ...\) in {tmp_path} to calibrate with"):
        calibration_paths(tmp_path)
    assert [p.name for p in calibration_paths(None)] == ["astronaut.jpg", "chelsea.jpg", "hubble-deep-field.jpg"]
