"""`nst stylize CONTENT STYLE -o OUT` with no model: weights downloaded from a local server,
verified, exported into the cache, and reused by the next run."""

from __future__ import annotations

import time

from click.testing import CliRunner
from PIL import Image

from nst.cli import main

from weights_server import closed_port_url, fixture_weights, weights_home  # noqa: F401 (fixtures)

ROOT_EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples"


def _images(tmp_path):
    content, style = tmp_path / "photo.png", tmp_path / "painting.png"
    Image.open(ROOT_EXAMPLES / "astronaut.jpg").resize((40, 32)).save(content)
    Image.open(ROOT_EXAMPLES / "hubble-deep-field.jpg").resize((36, 36)).save(style)
    return content, style


def _stylize(content, style, out, *extra):
    args = [
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        "--iterations",
        "3",
        "--seed",
        "1",
        "--size",
        "0",
        "--no-log",
        *extra,
    ]
    return CliRunner().invoke(main, args)


def test_first_run_downloads_exports_and_stylizes_second_run_reuses(fixture_weights, tmp_path):
    content, style = _images(tmp_path)
    result = _stylize(content, style, tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert "downloading vgg19 weights" in result.output
    assert "exporting " in result.output and "(once; later runs reuse it)" in result.output
    assert Image.open(tmp_path / "out.png").size == (40, 32)
    assert len(fixture_weights.server.requests) == 1
    models = list((fixture_weights.home / "models").glob("*.onnx"))
    assert len(models) == 1
    mtime = models[0].stat().st_mtime_ns

    start = time.perf_counter()
    result = _stylize(content, style, tmp_path / "again.png")
    second = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert "downloading" not in result.output and "exporting" not in result.output
    assert f"using cached model {models[0]}" in result.output
    assert len(fixture_weights.server.requests) == 1  # nothing downloaded
    assert models[0].stat().st_mtime_ns == mtime  # nothing exported
    # Same seed, same model: the second run reproduces the first.
    assert Image.open(tmp_path / "again.png").tobytes() == Image.open(tmp_path / "out.png").tobytes()
    print(f"second run: {second:.2f} s, 0 bytes downloaded")


def test_pooling_selects_a_matching_cached_model(fixture_weights, tmp_path):
    content, style = _images(tmp_path)
    assert _stylize(content, style, tmp_path / "a.png", "--pooling", "avg").exit_code == 0
    assert _stylize(content, style, tmp_path / "b.png").exit_code == 0
    assert len(list((fixture_weights.home / "models").glob("*.onnx"))) == 2  # one per pooling
    assert len(fixture_weights.server.requests) == 1  # the weights once


def test_local_weights_file(make_mat, weights_home, tmp_path):
    content, style = _images(tmp_path)
    result = _stylize(content, style, tmp_path / "out.png", "--weights", str(make_mat("vgg16", "old")))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.png").is_file()


def test_model_and_weights_together(tmp_path, vgg19_onnx):
    content, style = _images(tmp_path)
    result = _stylize(content, style, tmp_path / "out.png", "-m", str(vgg19_onnx), "--weights", "vgg19")
    assert result.exit_code == 1
    assert result.output == "Error: give -m MODEL.onnx or --weights, not both\n"


def test_no_server_fails_cleanly_before_writing(weights_home, monkeypatch, tmp_path):
    url = closed_port_url()
    monkeypatch.setenv("NST_WEIGHTS_URL", url)
    content, style = _images(tmp_path)
    result = _stylize(content, style, tmp_path / "out.png")
    assert result.exit_code == 1
    error = result.output.strip().splitlines()[-1]
    assert error.startswith(
        f"Error: cannot download imagenet-vgg-verydeep-19.mat ({url}/imagenet-vgg-verydeep-19.mat: connection"
    )
    assert "--weights PATH" in error
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.png").exists()
