"""`nst precompute-style` through click's CliRunner: the file it writes, messages, exit codes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nst.cli import main
from nst.runtime.ort_extractor import cuda_unavailable_reason
from nst.runtime.targets import load_targets


def _write_rgb(path: Path, height: int, width: int, seed: int) -> Path:
    from PIL import Image

    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_cli_writes_targets(vgg19_onnx, tmp_path):
    a = _write_rgb(tmp_path / "a.png", 20, 30, seed=1)
    b = _write_rgb(tmp_path / "b.jpg", 30, 20, seed=2)
    out = tmp_path / "style.targets"
    result = CliRunner().invoke(
        main,
        [
            "precompute-style",
            str(a),
            str(b),
            "-m",
            str(vgg19_onnx),
            "-o",
            str(out),
            "--size",
            "30",
            "--style-scales",
            "1,0.5",
            "--batch-size",
            "4",
            "--provider",
            "cpu",
        ],
    )
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
        (
            "{style} -m {tmp}/none.onnx " + _OUT,
            "model file not found: {tmp}/none.onnx; create one with `nst export-vgg WEIGHTS -o {tmp}/none.onnx`",
        ),
        ("{style} -m {model} --style-scales , " + _OUT, "--style-scales needs at least one value"),
        ("{tmp}/missing.png -m {model} " + _OUT, "image not found: {tmp}/missing.png"),
        ("{style} -m {model} -o {tmp}/no/folder/s.targets", "folder {tmp}/no/folder does not exist; create it first"),
    ],
)
def test_cli_user_errors(vgg19_onnx, tmp_path, argv, message):
    style = _write_rgb(tmp_path / "s.png", 16, 16, seed=0)
    argv = argv.format(style=style, model=vgg19_onnx, tmp=tmp_path).split()
    result = CliRunner().invoke(main, ["precompute-style", *argv, "--size", "16"])
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {message.format(tmp=tmp_path)}\n"  # one line, no traceback
    assert not (tmp_path / "s.targets").exists()


def test_cli_refuses_to_overwrite(vgg19_onnx, tmp_path):
    style = _write_rgb(tmp_path / "s.png", 16, 16, seed=0)
    out = tmp_path / "s.targets"
    out.write_bytes(b"keep me")
    argv = ["precompute-style", str(style), "-m", str(vgg19_onnx), "-o", str(out), "--size", "16"]
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
    result = runner.invoke(main, ["precompute-style", "s.png", "-m", "m.onnx", "-o", "x", "--style-scales", "1,-2"])
    assert result.exit_code == 2 and "each value must be in (0, 16], got '1,-2'" in result.output


def test_cli_provider_cuda_without_gpu(vgg19_onnx, tmp_path):
    if cuda_unavailable_reason() is None:
        pytest.skip("CUDA is usable here")
    style = _write_rgb(tmp_path / "s.png", 16, 16, seed=0)
    result = CliRunner().invoke(
        main,
        [
            "precompute-style",
            str(style),
            "-m",
            str(vgg19_onnx),
            "-o",
            str(tmp_path / "s.targets"),
            "--provider",
            "cuda",
        ],
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: provider cuda is not usable: {cuda_unavailable_reason()}; use --provider cpu (or auto)"
    )


def test_every_config_field_is_an_option_in_help():
    from nst.cli.precompute_cmd import precompute_style
    from nst.runtime.config import PrecomputeConfig

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


def test_auto_provider_fallback_note(vgg19_onnx, tmp_path, monkeypatch):
    """auto on a machine with a GPU that onnxruntime cannot use says so in one line on stderr
    and runs on the CPU; on a machine without a GPU it says nothing. stdout keeps the result."""
    import nst.runtime.ort_extractor as ort_extractor

    style = _write_rgb(tmp_path / "s.png", 16, 16, seed=0)
    args = ["precompute-style", str(style), "-m", str(vgg19_onnx), "-o", str(tmp_path / "s.targets"), "--size", "16"]
    for gpu, expected in ((False, []), (True, ["note: onnxruntime runs on the CPU: its CUDA provider is not usable "
                                                "(cuDNN 9 is missing)"])):  # fmt: skip
        monkeypatch.setattr(ort_extractor, "cuda_unavailable_reason", lambda: "cuDNN 9 is missing")
        monkeypatch.setattr(ort_extractor, "_no_gpu_reason", lambda gpu=gpu: None if gpu else "no GPU here")
        result = CliRunner().invoke(main, [*args, "--overwrite"])
        assert result.exit_code == 0, result.output
        assert [line for line in result.stderr.splitlines() if line.startswith("note:")] == expected
        assert result.stdout.startswith(f"wrote {tmp_path / 's.targets'}")
