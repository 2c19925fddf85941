"""Hardware that differs: bf16 on a CPU without bf16 units warns that it is emulated, and a run's
first line names the precision and device it uses. The CPU is stood in for both kinds."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner
from odd_files import rgb

from nst.cli import main
from nst.runtime import hardware
from nst.runtime.hardware import cpu_model, emulated_bf16, precision_line

CPU = torch.device("cpu")


@pytest.mark.parametrize("units", [True, False])
def test_the_precision_line_names_what_is_used(units):
    said = "bf16 units" if units else "no bf16 units"
    assert precision_line(CPU, "auto", has_bf16=lambda: units) == f"nst: float32 on cpu ({cpu_model()}, {said})"
    assert precision_line(CPU, "bf16", has_bf16=lambda: units) == f"nst: bf16 on cpu ({cpu_model()}, {said})"


def test_bf16_warns_only_on_a_cpu_that_emulates_it():
    assert emulated_bf16(CPU, "bf16", has_bf16=lambda: True) is None
    assert emulated_bf16(CPU, "fp32", has_bf16=lambda: False) is None
    assert emulated_bf16(CPU, "auto", has_bf16=lambda: False) is None  # auto stays float32 on the CPU
    assert emulated_bf16(CPU, "bf16", has_bf16=lambda: False) == (
        f"--precision bf16 on this CPU ({cpu_model()}) is emulated: it has no AMX or AVX512-BF16 units, and runs "
        "about 50x slower than float32; use --precision auto or fp32"
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("hw")
    return rgb(d / "content.png", 24, 20, seed=0), rgb(d / "style.png", 24, 24, seed=1)


def _stylize(vgg19_onnx, images, tmp_path, *extra):
    content, style = images
    argv = ["stylize", str(content), str(style), "-m", str(vgg19_onnx), "--size", "0", "--iterations", "1",
            "--no-log", "-o", str(tmp_path / "o.png"), *extra]  # fmt: skip
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


@pytest.mark.parametrize("units", [True, False])
def test_stylize_says_the_precision_first_and_warns_of_emulated_bf16(vgg19_onnx, images, tmp_path, monkeypatch, units):
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: units)
    lines = _stylize(vgg19_onnx, images, tmp_path, "--precision", "bf16")
    warned = [line for line in lines if line.startswith("warning: --precision bf16")]
    assert len(warned) == (0 if units else 1)
    first = lines[len(warned)]
    assert re.fullmatch(rf"nst: bf16 on cpu \(.*, {'bf16 units' if units else 'no bf16 units'}\)", first), lines
    assert lines[len(warned) + 1].startswith("loss scale ")


def test_quiet_runs_say_nothing_first(vgg19_onnx, images, tmp_path):
    lines = _stylize(vgg19_onnx, images, tmp_path, "-q")
    assert not any(line.startswith("nst: ") for line in lines)
    assert lines[-1].startswith("wrote ")


@pytest.mark.parametrize("quiet", [False, True])
def test_a_batch_says_the_precision_once_when_planned(vgg19_onnx, images, tmp_path, monkeypatch, quiet):
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    content, style = images
    argv = ["stylize-batch", str(content), "-s", str(style), "-m", str(vgg19_onnx), "-o", str(tmp_path / "out"),
            "--size", "0", "--iterations", "1", "--no-log", "--precision", "bf16", *(["-q"] if quiet else [])]  # fmt: skip
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("warning: --precision bf16 on this CPU") and "is emulated" in lines[0]
    said = [line for line in lines if line.startswith("nst: ")]
    assert said == ([] if quiet else [f"nst: bf16 on cpu ({cpu_model()}, no bf16 units)"]), lines


def test_a_video_says_the_precision_once_when_planned(vgg19_onnx, tmp_path):
    pytest.importorskip("cv2")
    pytest.importorskip("av")
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.fromarray(torch.randint(0, 256, (24, 32, 3), dtype=torch.uint8).numpy()).save(frames / f"f{i}.png")
    style = rgb(tmp_path / "style.png", 24, 24, seed=1)
    argv = ["stylize-video", str(frames), "-s", str(style), "-m", str(vgg19_onnx), "-o", str(tmp_path / "out"),
            "--size", "0", "--iterations", "1", "--no-log"]  # fmt: skip
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("nst: ")] == [precision_line(CPU, "auto")], (
        result.output
    )
