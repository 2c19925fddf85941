"""`nst stylize` through click's CliRunner: outputs, options, messages and exit codes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nst.cli import main
from nst.runtime.config import StylizeConfig


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    paths = {}
    for name, (w, h) in {"content": (40, 32), "style": (36, 36), "style2": (30, 45)}.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[name])
    paths["corrupt"] = folder / "corrupt.jpg"
    paths["corrupt"].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return paths


def _invoke(args, model, files, out, extra=()):
    argv = [
        "stylize",
        str(files["content"]),
        *[str(files[a]) if a in files else a for a in args],
        "-m",
        str(model),
        "-o",
        str(out),
        "--iterations",
        "3",
        "--seed",
        "0",
        "--size",
        "0",
        "-q",
        *extra,
    ]
    return CliRunner().invoke(main, argv)


def test_writes_image_log_and_metadata(vgg19_onnx, files, tmp_path):
    out = tmp_path / "out.png"
    result = _invoke(["style"], vgg19_onnx, files, out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (40x32" in result.output
    with Image.open(out) as img:
        assert img.size == (40, 32)
        params = json.loads(img.text["nst:parameters"])
    assert params["seed"] == 0 and params["iterations"] == 3 and params["styles"] == ["style.png"]
    rows = (tmp_path / "out.losses.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,") and len(rows) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.losses.csv", "out.png"]


def test_seed_reproduces_and_jpeg_output(vgg19_onnx, files, tmp_path):
    for name in ("a.png", "b.png"):
        assert _invoke(["style"], vgg19_onnx, files, tmp_path / name, ["--no-log"]).exit_code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    result = _invoke(["style"], vgg19_onnx, files, tmp_path / "c.jpg", ["--no-log"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "c.jpg") as img:
        assert img.format == "JPEG"


def test_checkpoints_at_their_iterations(vgg19_onnx, files, tmp_path):
    out = tmp_path / "out.png"
    result = _invoke(
        ["style"], vgg19_onnx, files, out, ["--iterations", "7", "--checkpoint-iterations", "3", "--no-log"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.0003.png", "out.0003.state", "out.0006.png", "out.0006.state", "out.png"]  # fmt: skip
    template = str(tmp_path / "ck_%s.jpg")
    result = _invoke(
        ["style"],
        vgg19_onnx,
        files,
        tmp_path / "o2.png",
        ["--iterations", "4", "--checkpoint-iterations", "2", "--checkpoint-output", template, "--no-log"],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ck_2.jpg").is_file() and not (tmp_path / "ck_4.jpg").exists()


def test_every_option_at_once(vgg19_onnx, files, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out.png"
    result = _invoke(
        ["style", "style2"],
        vgg19_onnx,
        files,
        out,
        [
            "--width",
            "32",
            "--style-scales",
            "1,0.8",
            "--content-weight",
            "4",
            "--content-weight-blend",
            "0.5",
            "--style-weight",
            "300",
            "--style-layer-weight-exp",
            "1.5",
            "--style-blend-weights",
            "0.7,0.3",
            "--tv-weight",
            "50",
            "--optimizer",
            "adam",
            "--learning-rate",
            "5",
            "--beta1",
            "0.8",
            "--beta2",
            "0.99",
            "--epsilon",
            "1e-6",
            "--initial",
            str(files["style"]),
            "--initial-noiseblend",
            "0.5",
            "--preserve-colors",
            "histogram",
            "--pooling",
            "avg",
            "--device",
            "cpu",
            "--scales",
            "2",
            "--min-size",
            "16",
            "--print-iterations",
            "1",
            "--plot",
            "--iterations",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "iteration     4/4: total" in result.output
    with Image.open(out) as img:
        assert img.size == (32, 26)
        params = json.loads(img.text["nst:parameters"])
    assert params["preserve_colors"] == "histogram" and params["style_blend_weights"] == [0.7, 0.3]
    with Image.open(tmp_path / "out.losses.png") as plot:
        assert plot.format == "PNG"


def test_preserve_colors_flag_alone_means_luminance(vgg19_onnx, files, tmp_path):
    out = tmp_path / "out.png"
    result = _invoke(["style"], vgg19_onnx, files, out, ["--preserve-colors", "--no-log"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert json.loads(img.text["nst:parameters"])["preserve_colors"] == "luminance"


def test_targets_instead_of_styles(vgg19_onnx, make_onnx, files, tmp_path):
    from nst.runtime.config import PrecomputeConfig
    from nst.runtime.grams import compute_style_targets
    from nst.runtime.targets import save_targets

    good = save_targets(compute_style_targets(vgg19_onnx, [files["style"]], width=40), tmp_path / "g.targets")
    result = _invoke(["--targets", str(good)], vgg19_onnx, files, tmp_path / "out.png", ["--no-log"])
    assert result.exit_code == 0, result.output
    bad = save_targets(
        compute_style_targets(make_onnx(seed=1), [files["style"]], config=PrecomputeConfig(size=32)),
        tmp_path / "b.targets",
    )
    result = _invoke(["--targets", str(bad)], vgg19_onnx, files, tmp_path / "bad.png", ["--no-log"])
    assert result.exit_code == 1 and result.output.startswith(
        "Error: the style targets were computed with model weights"
    )
    assert not (tmp_path / "bad.png").exists()


def test_existing_output_needs_overwrite(vgg19_onnx, files, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    result = _invoke(["style"], vgg19_onnx, files, out)
    assert result.exit_code == 1 and "exists; pass --overwrite" in result.output
    assert out.read_bytes() == b"precious" and list(tmp_path.iterdir()) == [out]
    result = _invoke(["style"], vgg19_onnx, files, out, ["--overwrite"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != b"precious"


@pytest.mark.parametrize(
    "args, extra, code, message",
    [
        (["style"], ["--content-weight-blend", "2"], 2, "--content-weight-blend"),
        (["style"], ["--optimizer", "sgd"], 2, "--optimizer"),
        (["style"], ["--iterations", "0"], 2, "--iterations"),
        (["missing.jpg"], [], 1, "Error: image not found"),
        (["corrupt"], [], 1, "Error: cannot read image"),
        ([], [], 1, "Error: no style given"),
        (
            ["style", "style2"],
            ["--style-blend-weights", "1"],
            1,
            "Error: --style-blend-weights has 1 values for 2 style(s)",
        ),
        (["style", "0.2"], ["--style-blend-weights", "0.8"], 1, "list values with commas"),
        (
            ["style"],
            ["--checkpoint-iterations", "1", "--checkpoint-output", "fixed.png"],
            1,
            "must contain the iteration",
        ),
        (["style"], ["--device", "cuda"], 1, None),
    ],
)
def test_bad_inputs(vgg19_onnx, files, tmp_path, args, extra, code, message):
    import torch

    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out.png"
    result = _invoke(args, vgg19_onnx, files, out, extra)
    assert result.exit_code == code, result.output
    assert (message or "no CUDA device") in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_unwritable_or_unknown_outputs(vgg19_onnx, files, tmp_path):
    result = _invoke(["style"], vgg19_onnx, files, tmp_path / "no" / "out.png")
    assert result.exit_code == 1 and "does not exist" in result.output
    result = _invoke(["style"], vgg19_onnx, files, tmp_path / "out.xyz")
    assert result.exit_code == 1 and "cannot tell the image format" in result.output
    result = _invoke(["style"], tmp_path / "none.onnx", files, tmp_path / "out.png")
    assert result.exit_code == 1 and "model file not found" in result.output


def test_plot_without_matplotlib_is_a_clear_error(vgg19_onnx, files, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    result = _invoke(["style"], vgg19_onnx, files, tmp_path / "out.png", ["--plot"])
    assert result.exit_code == 1 and "pip install 'nst[plot]'" in result.output
    assert list(tmp_path.iterdir()) == []


def _interrupt_at(monkeypatch, iteration: int) -> None:
    """Make the CLI's run raise KeyboardInterrupt (as Ctrl-C does) after `iteration`."""
    from nst.runtime.stylize import Stylizer

    real = Stylizer.render

    def interrupted(self, *args, callback=None, **kwargs):
        def stop(step):
            callback(step)
            if step.iteration == iteration:
                raise KeyboardInterrupt

        return real(self, *args, callback=stop, **kwargs)

    monkeypatch.setattr(Stylizer, "render", interrupted)


def test_ctrl_c_writes_the_best_image_and_the_state(vgg19_onnx, files, tmp_path, monkeypatch):
    _interrupt_at(monkeypatch, 2)
    out = tmp_path / "out.png"
    result = _invoke(["style"], vgg19_onnx, files, out, ["--iterations", "10"])
    assert result.exit_code == 130
    assert (
        f"Interrupted at iteration 2: wrote the best image so far to {out}; "
        f"continue with --resume {tmp_path / 'out.state'} --overwrite"
    ) in result.output
    assert Image.open(out).size == (40, 32)
    assert len((tmp_path / "out.losses.csv").read_text().splitlines()) == 3
    assert (tmp_path / "out.state").is_file()


def test_every_config_field_has_an_option():
    """Each field is the destination of an option shown in --help (repeated options, such as
    --style-mask for style_masks, are named in the singular)."""
    from nst.cli.stylize_cmd import stylize_cmd

    result = CliRunner().invoke(main, ["stylize", "--help"])
    assert result.exit_code == 0
    options = {param.name: param for param in stylize_cmd.params}
    for field in dataclasses.fields(StylizeConfig):
        assert field.name in options, field.name
        assert options[field.name].opts[0] in result.output, field.name


def test_resume_from_a_checkpoint_writes_the_same_image(vgg19_onnx, files, tmp_path):
    whole, part = tmp_path / "whole.png", tmp_path / "part.png"
    args = ["--iterations", "6", "--checkpoint-iterations", "3", "--no-log"]
    assert _invoke(["style"], vgg19_onnx, files, whole, args).exit_code == 0
    assert _invoke(["style"], vgg19_onnx, files, part, args).exit_code == 0
    # Resume the second run from its checkpoint; only the options' defaults differ (none given).
    argv = ["stylize", str(files["content"]), str(files["style"]), "-m", str(vgg19_onnx), "-o", str(part),
            "--resume", str(tmp_path / "part.0003.state"), "--overwrite", "-q", "--no-log"]  # fmt: skip
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert part.read_bytes() == whole.read_bytes()


def test_ctrl_c_then_resume_finishes_the_run(vgg19_onnx, files, tmp_path, monkeypatch):
    whole, out = tmp_path / "whole.png", tmp_path / "out.png"
    assert _invoke(["style"], vgg19_onnx, files, whole, ["--iterations", "6"]).exit_code == 0
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 4)
        assert _invoke(["style"], vgg19_onnx, files, out, ["--iterations", "6"]).exit_code == 130
    result = _invoke(["style"], vgg19_onnx, files, out,
                     ["--iterations", "6", "--resume", str(tmp_path / "out.state"), "--overwrite"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == whole.read_bytes()
    rows = (tmp_path / "out.losses.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3, 4, 5, 6]  # the log holds the whole run


def test_resume_refuses_changed_options_in_one_line(vgg19_onnx, files, tmp_path):
    out = tmp_path / "out.png"
    assert (
        _invoke(["style"], vgg19_onnx, files, out, ["--iterations", "4", "--checkpoint-iterations", "2"]).exit_code == 0
    )
    before = out.read_bytes()
    result = _invoke(["style"], vgg19_onnx, files, out,
                     ["--resume", str(tmp_path / "out.0002.state"), "--overwrite", "--iterations", "4",
                      "--style-weight", "7"])  # fmt: skip
    assert result.exit_code == 1
    assert result.output == (
        "Error: the state comes from a run with other settings (--style-weight); leave them as they were\n"
    )
    assert out.read_bytes() == before
