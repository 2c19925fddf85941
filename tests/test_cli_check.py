"""`nst check-model` through click's CliRunner: the table, exit codes, one-line errors."""

from __future__ import annotations

import re

import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from nst.cli import main

SMALL = ("relu1_1", "relu2_1")


@pytest.fixture(scope="module")
def model(make_onnx):
    return make_onnx(layers=SMALL)


def test_table_and_exit_codes(model, make_mat, tmp_path):
    args = ["check-model", str(model), "--runtime", "onnxruntime", "--size", "16x20", "--weights", str(make_mat())]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{model}: a float32 graph, opset 17, fp32 input and outputs"
    assert lines[1].startswith(f"input 1x3x16x20 from chelsea.jpg; reference: float32 PyTorch mirror of {make_mat()}")
    assert lines[2].split() == [
        "runtime",
        "output",
        "max",
        "abs",
        "err",
        "max",
        "rel",
        "err",
        "tolerance",
        "result",
        "ms/run",
    ]
    assert [line.split()[1] for line in lines[4:-1]] == ["relu1_1", "relu2_1", "gram_relu1_1", "gram_relu2_1"]
    assert all(re.fullmatch(r"onnxruntime +\S+ +\S+ +\S+ +1e-04 +pass +[\d.]+", line) for line in lines[4:-1])
    assert lines[-1] == "all 4 checks passed"

    bad = onnx.load(str(model))
    tensor = next(t for t in bad.graph.initializer if t.name == "conv1_2.weight")
    values = numpy_helper.to_array(tensor).copy()
    values[0, 0, 0, 0] -= 1.0
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    result = CliRunner().invoke(main, ["check-model", str(tmp_path / "bad.onnx"), *args[2:]])
    assert result.exit_code == 1
    assert "FAIL" in result.output and result.output.endswith("2 of 4 checks FAILED\n")


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--size", "16"], 2, "Invalid value for '--size': '16' is not HxW (2 integers from 1 to 30000, e.g. 256x256)"),
        (["--runtime", "tensorflow"], 2, "Invalid value for '--runtime': 'tensorflow' is not one of"),
        (["--provider", "tensorrt"], 1, "Error: provider tensorrt is not usable: "),
        (["--image", "{tmp}/none.png"], 1, "Error: image not found: {tmp}/none.png"),
        (["--weights", "{tmp}/none.mat"], 1, "Error: weights file not found: {tmp}/none.mat"),
        (["--size", "8x8"], 1, "Error: --size must be between 16 and 30000, got (8, 8)"),
    ],
)
def test_user_errors(model, tmp_path, extra, code, message):
    from nst.runtime.ort_extractor import provider_unavailable_reason

    if "tensorrt" in extra and provider_unavailable_reason("tensorrt") is None:
        pytest.skip("TensorRT is usable here")
    extra = [e.format(tmp=tmp_path) for e in extra]
    result = CliRunner().invoke(main, ["check-model", str(model), "--runtime", "onnxruntime", *extra])
    assert result.exit_code == code, result.output
    assert message.format(tmp=tmp_path) in result.output
    assert "Traceback" not in result.output
    if code == 1:
        assert result.output.count("\n") == 1


def test_hash_mismatch_one_line(model, make_mat):
    result = CliRunner().invoke(main, ["check-model", str(model), "--weights", str(make_mat(seed=2))])
    assert result.exit_code == 1
    assert re.fullmatch(
        rf"Error: {re.escape(str(make_mat(seed=2)))} \(sha256 \w{{12}}\) is not the file {re.escape(str(model))} "
        r"was exported from \(sha256 \w{12}\); pass that .mat\n",
        result.output,
    )
