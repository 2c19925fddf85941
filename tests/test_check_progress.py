"""`nst check-model` says what it is doing: every runtime reports its timed runs, onnx's
reference evaluator each node it runs, and the CLI names the slow evaluator (and how to skip
it) before it starts."""

from __future__ import annotations

import onnx
import pytest
from click.testing import CliRunner

from nst.check import CheckConfig, check_model
from nst.cli import main


@pytest.fixture(scope="module")
def model(make_onnx):
    return make_onnx(layers=("relu1_1", "relu2_1"))


def test_each_runtime_reports_its_progress(model):
    heard: list[tuple[str, int, int]] = []
    config = CheckConfig(runtime="all", size=(16, 20))
    report = check_model(model, config=config, progress=lambda *tick: heard.append(tick))
    assert report.ok
    nodes = len(onnx.load(str(model)).graph.node)
    assert [t for t in heard if t[0] == "onnx-reference"] == [("onnx-reference", i, nodes) for i in range(nodes + 1)]
    assert [t for t in heard if t[0] == "onnxruntime"] == [("onnxruntime", i, 4) for i in range(5)]  # warm-up + 3


def test_the_cli_names_the_slow_evaluator_first(model):
    result = CliRunner().invoke(main, ["check-model", str(model), "--runtime", "onnx-reference", "--size", "16x20"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "onnx-reference: onnx's evaluator is pure Python and takes minutes on large or fp16 graphs "
        "(--runtime onnxruntime skips it)"
    )
    assert lines[1].startswith(f"{model}: a float32 graph") and lines[-1] == "all 4 checks passed"
    quiet = CliRunner().invoke(main, ["check-model", str(model), "--runtime", "onnxruntime", "--size", "16x20"])
    assert "onnx-reference" not in quiet.output
