"""No output is ever one of the run's inputs: `nst stylize -o` naming the content (or a style),
and a batch whose --name maps an input onto itself, are refused before any work, with and
without --overwrite, and the input keeps its bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from odd_files import rgb

from nst.cli import main

FAST = ["--size", "0", "--iterations", "1", "-q", "--no-log"]


@pytest.fixture
def photos(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out, rgb(out / "photo.png", 40, 32, seed=0), rgb(tmp_path / "style.png", 36, 36, seed=1)


def _unchanged(path: Path, run) -> str:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = run()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (line,) = result.output.splitlines()
    return line


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_batch_never_writes_over_its_content(vgg19_onnx, photos, overwrite):
    out, photo, style = photos
    argv = ["stylize-batch", str(photo), "-s", str(style), "-o", str(out), "--name", "{content}.png",
            "-m", str(vgg19_onnx), *FAST, *overwrite]  # fmt: skip
    line = _unchanged(photo, lambda: CliRunner().invoke(main, argv))
    assert line == (
        f"Error: {out / 'photo.png'} is the content image 1 of this run; nst never writes over an input: "
        "choose another --name or -o folder"
    )
    assert not (out / "manifest.jsonl").exists()  # before any work


def test_a_batch_never_writes_over_a_style(vgg19_onnx, photos):
    _, photo, style = photos
    argv = ["stylize-batch", str(photo), "-s", str(style), "-o", str(style.parent), "--name", "style.png",
            "-m", str(vgg19_onnx), *FAST, "--overwrite"]  # fmt: skip
    line = _unchanged(style, lambda: CliRunner().invoke(main, argv))
    assert line.startswith(f"Error: {style} is style 1 of this run; nst never writes over an input")


@pytest.mark.parametrize("role", ["content", "style", "link to the content"])
def test_stylize_never_writes_over_an_input(vgg19_onnx, photos, role):
    out, photo, style = photos
    target = {"content": photo, "style": style, "link to the content": out / "link.png"}[role]
    if role.startswith("link"):
        os.link(photo, target)
    argv = ["stylize", str(photo), str(style), "-m", str(vgg19_onnx), "-o", str(target), "--overwrite", *FAST]
    line = _unchanged(target, lambda: CliRunner().invoke(main, argv))
    expected = "style 1" if role == "style" else "the content"
    assert (
        line
        == f"Error: {target} is {expected} of this run; nst never writes over an input: choose another -o or --checkpoint-output"
    )
