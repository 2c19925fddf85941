"""The cache: first run downloads and exports, a second run does neither; CLI download-weights, cache, export-vgg NAME."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nst.cli import main
from nst.errors import ConfigError, DownloadError, WeightsError
from nst.export.cached import cached_model, cached_model_path
from nst.export.onnx_graph import ExportConfig
from nst.models import cache, registry

from weights_server import closed_port_url, fixture_weights, weights_home  # noqa: F401 (fixtures)

FILE = "imagenet-vgg-verydeep-19.mat"


def test_nst_home_and_platform_default(weights_home, monkeypatch):
    assert cache.cache_dir() == weights_home
    assert cache.weights_path("vgg19-2015") == weights_home / "weights" / "imagenet-vgg-verydeep-19-2015.mat"
    monkeypatch.delenv("NST_HOME")
    import platformdirs

    assert cache.cache_dir() == Path(platformdirs.user_cache_dir("nst", appauthor=False))


def test_registry_urls_and_override(monkeypatch):
    monkeypatch.delenv("NST_WEIGHTS_URL", raising=False)
    assert registry.get().name == "vgg19" and registry.get().md5 == "106118b7cf60435e6d8e04f6a6dc3657"
    assert registry.get("vgg19-2015").download_urls()[0].endswith("/models/beta16/imagenet-vgg-verydeep-19.mat")
    monkeypatch.setenv("NST_WEIGHTS_URL", "http://mirror.invalid/nst/")
    assert registry.get("vgg16").download_urls() == ("http://mirror.invalid/nst/imagenet-vgg-verydeep-16.mat",)
    with pytest.raises(ConfigError, match=r"unknown weights 'vgg91'.*did you mean vgg19"):
        registry.get("vgg91")


def test_first_run_downloads_and_exports_second_run_does_nothing(fixture_weights, monkeypatch):
    steps: list[str] = []
    progress: list[tuple[int, int | None]] = []
    model = cached_model(None, ExportConfig(), progress=lambda d, t: progress.append((d, t)), notify=steps.append)

    weights = fixture_weights.home / "weights" / FILE
    assert weights.read_bytes() == fixture_weights.mat.read_bytes()
    assert model == cached_model_path(fixture_weights.sha256, ExportConfig())
    assert model.parent == fixture_weights.home / "models" and model.is_file()
    assert fixture_weights.server.requests == [(f"/{FILE}", None)]
    assert progress[-1] == (weights.stat().st_size,) * 2
    assert steps[0].startswith(f"downloading vgg19 weights ({FILE}) from {fixture_weights.server.url}/{FILE}")
    assert steps[1].startswith("exporting ")
    note = json.loads(model.with_suffix(".json").read_text())
    assert note["source_sha256"] == fixture_weights.sha256 and note["architecture"] == "vgg19"
    assert not list((fixture_weights.home / "models").glob(".*"))  # no temporaries left

    # Second run: no request, no export, no hashing of the weights, the model untouched.
    mtime = model.stat().st_mtime_ns

    def forbidden(*args, **kwargs):
        raise AssertionError("the second run must not do this")

    monkeypatch.setattr("nst.export.cached.export_vgg_file", forbidden)
    monkeypatch.setattr("nst.models.cache.file_sha256", forbidden)
    steps.clear()
    assert cached_model(None, ExportConfig(), notify=steps.append) == model
    assert len(fixture_weights.server.requests) == 1
    assert model.stat().st_mtime_ns == mtime
    assert steps == [f"using cached model {model}"]


def test_export_options_and_local_file_share_the_cache(fixture_weights):
    default = cached_model("vgg19")
    avg = cached_model("vgg19", ExportConfig(layers=("relu1_1", "relu2_1"), pooling="avg", grams=False))
    assert avg != default and avg.is_file()
    assert len(fixture_weights.server.requests) == 1  # the weights were downloaded once
    # The same bytes given as a local path: keyed by their SHA-256, so the same model, no export.
    assert cached_model(fixture_weights.mat) == default
    assert len(fixture_weights.server.requests) == 1


def test_cut_first_run_resumes(fixture_weights):
    size = fixture_weights.mat.stat().st_size
    fixture_weights.server.cut_at = size // 2
    cache.ensure_weights()
    assert fixture_weights.server.ranges == [None, f"bytes={size // 2}-"]
    assert cache.known_sha256(fixture_weights.home / "weights" / FILE) == fixture_weights.sha256


def test_corrupt_first_run_is_rejected(fixture_weights):
    fixture_weights.server.corrupt = True
    weights = fixture_weights.home / "weights" / FILE
    with pytest.raises(DownloadError) as err:
        cached_model()
    assert re.fullmatch(
        rf"{FILE} downloaded from {fixture_weights.server.url}/{FILE} failed its check \(sha256 [0-9a-f]{{64}}, "
        rf"expected {fixture_weights.sha256}\): the download is corrupt or the server holds another file\. "
        rf"The partial file {weights}\.part was deleted; run the command again to download it afresh\.",
        str(err.value),
    ), str(err.value)
    assert list((fixture_weights.home / "weights").iterdir()) == []
    assert not weights.exists()


def test_no_server_names_url_and_manual_placement(weights_home, monkeypatch):
    base = closed_port_url()
    monkeypatch.setenv("NST_WEIGHTS_URL", base)
    with pytest.raises(DownloadError) as err:
        cached_model("vgg16")
    dest = weights_home / "weights" / "imagenet-vgg-verydeep-16.mat"
    assert str(err.value) == (
        f"cannot download imagenet-vgg-verydeep-16.mat ({base}/imagenet-vgg-verydeep-16.mat: connection refused). "
        f"Without network, get the file by other means and pass it with --weights PATH, or put it at {dest}."
    )


def test_file_placed_by_hand_is_checked_once(fixture_weights):
    weights = fixture_weights.home / "weights" / FILE
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match=rf"^{weights} is not the vgg19 weights file \(sha256 "):
        cache.ensure_weights()
    weights.write_bytes(fixture_weights.mat.read_bytes())
    assert cache.ensure_weights() == weights
    assert fixture_weights.server.requests == []
    assert cache.known_sha256(weights) == fixture_weights.sha256


def test_unknown_weights_are_a_clear_error(weights_home):
    with pytest.raises(
        WeightsError,
        match=r"weights file not found: nope\.mat \(give a \.mat, \.pth, \.safetensors or \.onnx file, or one of "
        r"the known weights vgg19, vgg16, vgg16-caffe, vgg16-torchvision, vgg19-2015, vgg19-caffe, vgg19-torchvision,",
    ):
        cached_model("nope.mat")


def test_cli_download_list_clear(fixture_weights):
    runner = CliRunner()
    result = runner.invoke(main, ["download-weights", "vgg19"])
    weights = fixture_weights.home / "weights" / FILE
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(weights)
    assert re.search(rf"{FILE}: 100%.*B/s", result.stderr), result.stderr  # the progress bar: size and speed
    again = runner.invoke(main, ["download-weights"])
    assert again.exit_code == 0 and len(fixture_weights.server.requests) == 1

    cached_model()
    listing = runner.invoke(main, ["cache", "list"])
    assert listing.exit_code == 0
    lines = listing.output.splitlines()
    assert lines[0] == f"cache folder: {fixture_weights.home}"
    assert any(line.startswith("weights ") and FILE in line for line in lines)
    assert any(line.startswith("model ") and "vgg19 from" in line for line in lines)

    refused = runner.invoke(main, ["cache", "clear"], input="n\n")
    assert refused.exit_code == 1 and weights.exists()
    only_models = runner.invoke(main, ["cache", "clear", "--only", "models", "--yes"])
    assert only_models.exit_code == 0 and weights.exists()
    assert not list((fixture_weights.home / "models").glob("*.onnx"))
    cleared = runner.invoke(main, ["cache", "clear"], input="y\n")
    assert cleared.exit_code == 0 and "deleted 2 files" in cleared.output  # the weights and hashes.json
    assert runner.invoke(main, ["cache", "list"]).output.splitlines()[1] == "(empty)"


def test_clear_deletes_only_what_nst_put_there(fixture_weights, make_mat):
    import hashlib
    import shutil

    runner = CliRunner()
    assert runner.invoke(main, ["download-weights", "vgg19"]).exit_code == 0
    cached_model()
    weights = fixture_weights.home / "weights"
    # A user's own files in the cache: a .mat under a registry name nst never downloaded, and another.
    mine = shutil.copy(make_mat(seed=3), weights / "imagenet-vgg-verydeep-16.mat")
    other = shutil.copy(make_mat(seed=4), weights / "my-finetuned-vgg.mat")
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (mine, other)}
    listing = runner.invoke(main, ["cache", "list"]).output
    assert "my-finetuned-vgg.mat  (weights; not nst's: cache clear leaves it)" in listing
    result = runner.invoke(main, ["cache", "clear", "-y"])
    assert result.exit_code == 0, result.output
    assert "deleted 4 files" in result.output  # the download, the model, its note, hashes.json
    assert result.output.splitlines()[-1] == (
        "left 2 file(s) that nst did not put there: imagenet-vgg-verydeep-16.mat, my-finetuned-vgg.mat"
    )
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (mine, other)} == digests
    assert not (weights / FILE).exists() and not list((fixture_weights.home / "models").glob("*.onnx"))


def test_cli_download_without_network_is_one_line(weights_home, monkeypatch):
    monkeypatch.setenv("NST_WEIGHTS_URL", closed_port_url())
    result = CliRunner().invoke(main, ["download-weights", "vgg16"])
    assert result.exit_code == 1
    step, error = result.output.splitlines()  # what it tried, then one error line
    assert step.startswith("downloading vgg16 weights (imagenet-vgg-verydeep-16.mat) from http://127.0.0.1:")
    assert error.startswith("Error: cannot download imagenet-vgg-verydeep-16.mat (")
    assert error.endswith(
        "connection refused). Without network, get the file by other means and pass it with "
        f"--weights PATH, or put it at {weights_home}/weights/imagenet-vgg-verydeep-16.mat."
    )


def test_export_vgg_accepts_a_registry_name(fixture_weights, tmp_path):
    out = tmp_path / "vgg19-nst.onnx"
    result = CliRunner().invoke(main, ["export-vgg", "vgg19", "-o", str(out), "--layers", "relu1_1,relu2_1"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (fixture_weights.home / "weights" / FILE).is_file()
    assert fixture_weights.server.requests == [(f"/{FILE}", None)]
