"""`nst export-vgg` through click's CliRunner: output, exit codes, messages."""

from __future__ import annotations

import dataclasses
import re

import onnx
import pytest
from click.testing import CliRunner

from nst.cli import main
from nst.export.onnx_graph import ExportConfig


@pytest.fixture
def runner():
    return CliRunner()


def test_export_summary(runner, make_mat, tmp_path):
    out = tmp_path / "m.onnx"
    result = runner.invoke(
        main,
        [
            "export-vgg",
            str(make_mat("vgg16", "old")),
            "-o",
            str(out),
            "--layers",
            "relu3_1,relu2_1",
            "--pooling",
            "avg",
        ],
    )
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        rf"exported vgg16 \(avg pooling; 2 layers \+ 2 grams: relu2_1,relu3_1\) to {re.escape(str(out))}, [\d.]+ MB in [\d.]+ s\n",
        result.output,
    )
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["nst.pooling"] == "avg" and props["nst.grams"] == "relu2_1,relu3_1"


def test_no_grams_and_swap(runner, make_mat, tmp_path):
    out = tmp_path / "m.onnx"
    result = runner.invoke(
        main, ["export-vgg", str(make_mat()), "-o", str(out), "--layers", "relu1_1", "--no-grams", "--swap-kernel-axes"]
    )
    assert result.exit_code == 0, result.output
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["relu1_1"]
    assert {p.key: p.value for p in model.metadata_props}["nst.kernel_axes"] == "wh"


def test_existing_output_is_kept(runner, make_mat, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    result = runner.invoke(main, ["export-vgg", str(make_mat()), "-o", str(out)])
    assert result.exit_code == 1
    assert result.output == f"Error: {out} exists; pass --overwrite to replace it\n"
    assert out.read_bytes() == b"precious"
    result = runner.invoke(main, ["export-vgg", str(make_mat()), "-o", str(out), "--overwrite", "--layers", "relu1_1"])
    assert result.exit_code == 0 and out.read_bytes() != b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind


@pytest.mark.parametrize(
    "args, code, message",
    [
        (
            ["--layers", "relu4_22"],
            1,
            "Error: unknown layer 'relu4_22' for vgg19. Did you mean 'relu4_2'? Valid layers: conv1_1,",
        ),
        (["--pooling", "median"], 2, "Error: Invalid value for '--pooling': 'median' is not one of 'max', 'avg'."),
    ],
)
def test_bad_options(runner, make_mat, tmp_path, args, code, message):
    result = runner.invoke(main, ["export-vgg", str(make_mat()), "-o", str(tmp_path / "m.onnx"), *args])
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_bad_weights_one_line(runner, tmp_path):
    bad = tmp_path / "w.mat"
    bad.write_text("hello")
    result = runner.invoke(main, ["export-vgg", str(bad), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith(
        f"Error: cannot read {bad} as a MatConvNet .mat file"
    )
    result = runner.invoke(main, ["export-vgg", str(tmp_path / "missing.mat"), "-o", str(tmp_path / "m.onnx")])
    assert result.output == f"Error: weights file not found: {tmp_path / 'missing.mat'}\n"


def test_missing_output_folder(runner, make_mat, tmp_path):
    result = runner.invoke(main, ["export-vgg", str(make_mat()), "-o", str(tmp_path / "no" / "m.onnx")])
    assert result.exit_code == 1
    assert result.output == f"Error: folder {tmp_path / 'no'} does not exist; create it first\n"


def test_every_config_field_has_an_option(runner):
    help_text = runner.invoke(main, ["export-vgg", "--help"]).output
    for field in dataclasses.fields(ExportConfig):
        option = "--" + field.name.replace("_", "-")
        assert option in help_text, f"ExportConfig.{field.name} has no {option} option"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--opset", "12"], 2, "Error: Invalid value for '--opset': 12 is not in 13.."),
        (["--static", "1x2"], 2, "Error: Invalid value for '--static': '1x2' is not NxHxW"),
        (["--precision", "bf16"], 2, "Error: Invalid value for '--precision': 'bf16' is not one of 'fp32', 'fp16'."),
        (["--quantize", "int8", "--precision", "fp16"], 1, "Error: --quantize int8 quantizes a float32 graph"),
        (["--calibrate", "."], 1, "Error: --calibrate chooses the images of --quantize int8"),
        (["--quantize", "int8", "--calibrate", "{tmp}/none"], 1, "Error: calibration folder {tmp}/none not found"),
        (["--outputs", "grams", "--layers", "relu4_2"], 1, "Error: --outputs grams needs a style layer"),
    ],
)
def test_bad_deployment_options(runner, make_mat, tmp_path, args, code, message):
    args = [a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(main, ["export-vgg", str(make_mat()), "-o", str(tmp_path / "m.onnx"), *args])
    assert result.exit_code == code, result.output
    assert message.format(tmp=tmp_path) in result.output and "Traceback" not in result.output
    if code == 1:
        assert result.output.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()


def test_deployment_summary(runner, make_mat, tmp_path):
    out = tmp_path / "m.onnx"
    args = ["--layers", "relu1_1,relu2_1", "--precision", "fp16", "--static", "1x16x16", "--outputs", "grams"]
    result = runner.invoke(main, ["export-vgg", str(make_mat()), "-o", str(out), "--opset", "13", *args])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        rf"exported vgg19 \(max pooling; 2 grams only: relu1_1,relu2_1\) to {re.escape(str(out))} as a static "
        r"1x3x16x16 fp16 Grams-only deployment graph \(opset 13, fp32 input and outputs\), [\d.]+ MB in [\d.]+ s\n",
        result.output,
    )
