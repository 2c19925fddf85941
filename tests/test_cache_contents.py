"""`nst cache list|clear` with what users put in the cache folder: links that point outside it
(listed, never followed into a deletion), a hashes.json of their own (kept, never rewritten),
and a mirror setting that is not a URL (one line)."""

from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner

from nst.cli import main

from weights_server import fixture_weights, weights_home  # noqa: F401 (fixtures)

FILE = "imagenet-vgg-verydeep-19.mat"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_links_out_of_the_cache_are_listed_and_left(weights_home, make_mat, vgg19_onnx, tmp_path):
    (weights_home / "weights").mkdir(parents=True)
    (weights_home / "models").mkdir()
    outside = make_mat()
    (weights_home / "weights" / "linked.mat").symlink_to(outside)
    (weights_home / "models" / "linked.onnx").symlink_to(vgg19_onnx)
    (weights_home / "models" / "gone.onnx").symlink_to(tmp_path / "deleted.onnx")  # a broken link
    digests = {outside: _sha(outside), vgg19_onnx: _sha(vgg19_onnx)}
    runner = CliRunner()
    listing = runner.invoke(main, ["cache", "list"])
    assert listing.exit_code == 0, listing.output
    assert f"linked.mat  (weights; a link to {outside}; not nst's: cache clear leaves it)" in listing.output
    assert f"linked.onnx  (exported model; a link to {vgg19_onnx.resolve()}; not nst's" in listing.output
    assert "gone.onnx" not in listing.output
    cleared = runner.invoke(main, ["cache", "clear", "-y"])
    assert cleared.exit_code == 0, cleared.output
    assert cleared.output.splitlines()[-1] == "left 2 file(s) that nst did not put there: linked.mat, linked.onnx"
    assert (weights_home / "weights" / "linked.mat").is_symlink()
    assert {p: _sha(p) for p in digests} == digests


def test_a_hashes_json_of_the_users_is_kept(fixture_weights):
    index = fixture_weights.home / "hashes.json"
    fixture_weights.home.mkdir()
    index.write_text('{"holiday.jpg": "my own notes"}')
    runner = CliRunner()
    assert runner.invoke(main, ["download-weights"]).exit_code == 0
    assert index.read_text() == '{"holiday.jpg": "my own notes"}'  # nst does not write over it
    cleared = runner.invoke(main, ["cache", "clear", "-y"])
    assert cleared.exit_code == 0, cleared.output
    assert "deleted 1 files" in cleared.output  # the download only
    assert cleared.output.splitlines()[-1] == "left 1 file(s) that nst did not put there: hashes.json"
    assert index.read_text() == '{"holiday.jpg": "my own notes"}'


def test_nsts_own_hashes_json_is_cleared(fixture_weights):
    runner = CliRunner()
    assert runner.invoke(main, ["download-weights"]).exit_code == 0
    assert (fixture_weights.home / "hashes.json").is_file()
    cleared = runner.invoke(main, ["cache", "clear", "-y"])
    assert "deleted 2 files" in cleared.output and not (fixture_weights.home / "hashes.json").exists()


@pytest.mark.parametrize("value", ["mirror/models", "localhost:8000/models", "htp://mirror/models", "https://"])
def test_a_mirror_that_is_not_a_url_is_one_line(weights_home, monkeypatch, value):
    monkeypatch.setenv("NST_WEIGHTS_URL", value)
    result = CliRunner().invoke(main, ["download-weights"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: NST_WEIGHTS_URL={value!r} is not a URL; give the folder that holds the weight files, such as "
        "https://mirror.example/models (each file is fetched as $NST_WEIGHTS_URL/<file name>)\n"
    )
    assert not (weights_home / "weights" / FILE).exists()
