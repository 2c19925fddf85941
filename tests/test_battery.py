"""Real photos and real failures, as CLI calls: every user mistake or odd input ends in one
clear line and the right exit status, never a traceback, and no file that was there before
changes (checked by SHA-256). The large and odd files are built at test time."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from odd_files import animated_gif, png_header_only, rgb, truncated

from nst.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory, vgg19_onnx, make_onnx, make_mat):
    """Every input the cases name, by placeholder."""
    from nst.runtime.config import PrecomputeConfig
    from nst.runtime.grams import compute_style_targets
    from nst.runtime.targets import save_targets

    d = tmp_path_factory.mktemp("world")
    files = {
        "C": rgb(d / "content.png", 40, 32, seed=0),
        "S": rgb(d / "style.png", 36, 36, seed=1),
        "M": vgg19_onnx,
        "MAT": make_mat(),
        "BIG": png_header_only(d / "phone-12k.png", 12000, 12000, padded=True),
        "HOLLOW": png_header_only(d / "hollow-12k.png", 12000, 12000),
        "BOMB": png_header_only(d / "bomb.png", 14000, 14000),
        "TINY": rgb(d / "tiny.png", 1, 1),
        "THIN": rgb(d / "thin.png", 1000, 30),
        "GIF": animated_gif(d / "animated.gif"),
        "DIR": d / "folder.png",
        "FILE": d / "afile",
        "TEXT": d / "notes.jpg",
        "EMPTY": d / "empty.jpg",
        "EXISTING": d / "existing.png",
        "BADONNX": d / "bad.onnx",
        "FOREIGN": d / "foreign.onnx",
        "BADMAT": d / "bad.mat",
        "BADTARGETS": d / "bad.targets",
        "BADSTATE": d / "bad.state",
    }
    files["TRUNC"] = truncated(d / "truncated.png", files["C"])
    files["DIR"].mkdir()
    files["FILE"].write_text("a file, not a folder")
    files["TEXT"].write_text("not an image")
    files["EMPTY"].write_bytes(b"")
    files["EXISTING"].write_bytes(b"precious")
    files["BADONNX"].write_text("not a protobuf")
    files["BADMAT"].write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    files["BADTARGETS"].write_bytes(b"PK\x03\x04 not really")
    files["BADSTATE"].write_bytes(b"nonsense")
    _foreign_onnx(files["FOREIGN"])
    files["OTHER_TARGETS"] = save_targets(
        compute_style_targets(make_onnx(seed=1), [files["S"]], config=PrecomputeConfig(size=32)), d / "other.targets"
    )
    files["BIG_TARGETS"] = save_targets(
        compute_style_targets(vgg19_onnx, [files["S"]], config=PrecomputeConfig(size=160)), d / "big.targets"
    )
    return d, files


def _foreign_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])  # fmt: skip
    onnx.save(helper.make_model(graph), str(path))


RUN = "stylize {C} {S} -m {M} --size 0 --iterations 2 -q --no-log"
ERR = [
    # inputs that are not images, or not usable ones
    ("missing content", "stylize {D}/none.jpg {S} -m {M} -o {O}/o.png", 1, r"image not found: .*none\.jpg"),
    ("text as image", "stylize {TEXT} {S} -m {M} -o {O}/o.png", 1, r"cannot read image .*notes\.jpg: .*is it a complete"),
    ("empty file", "stylize {EMPTY} {S} -m {M} -o {O}/o.png", 1, r"cannot read image .*empty\.jpg"),
    ("truncated png", "stylize {TRUNC} {S} -m {M} -o {O}/o.png --size 0", 1, r"cannot read image .*truncated\.png"),
    ("folder as content", "stylize {DIR} {S} -m {M} -o {O}/o.png", 2, r"is a directory"),
    ("text as style", "stylize {C} {TEXT} -m {M} -o {O}/o.png", 1, r"cannot read image .*notes\.jpg"),
    ("pixel bomb content", "stylize {BOMB} {S} -m {M} -o {O}/o.png", 1,
     r"bomb\.png has more pixels than the limit of 179 megapixels .*; downscale it first"),
    ("pixel bomb style", "stylize {C} {BOMB} -m {M} -o {O}/o.png", 1, r"more pixels than the limit of 179 megapixels"),
    ("huge content at full size", "stylize {BIG} {S} -m {M} -o {O}/o.png --size 12000", 1,
     r"this run needs about \d+\.\d GiB of RAM and \d+\.\d GiB is available .*try a smaller --size \(now 12000 px\), "
     r"--low-memory, --optimizer adam or a shorter --lbfgs-history"),
    ("huge content, adam, low memory", "stylize {BIG} {S} -m {M} -o {O}/o.png --size 12000 --optimizer adam "
     "--low-memory", 1, r"this run needs about .*; try a smaller --size \(now 12000 px\)$"),
    ("1x1 content", "stylize {TINY} {S} -m {M} -o {O}/o.png", 1,
     r"tiny\.png is 1x1 px; the network needs at least 16x16 \(it pools four times"),
    ("panorama too thin once resized", "stylize {THIN} {S} -m {M} -o {O}/o.png", 1,
     r"thin\.png would be resized to 512x15 px; .*choose a larger --size or --width"),
    # outputs
    ("empty output", "stylize {C} {S} -m {M} -o ''", 1, r"the output path is empty; give a file name"),
    ("unwritable folder", "stylize {C} {S} -m {M} -o /proc/nst_out.png", 1, r"cannot write in folder /proc \("),
    ("file as folder", "stylize {C} {S} -m {M} -o {FILE}/x.png", 1, r"afile is a file, not a folder"),
    ("missing folder", "stylize {C} {S} -m {M} -o {O}/no/x.png", 1, r"folder .*/no does not exist; create it first"),
    ("unknown format", "stylize {C} {S} -m {M} -o {O}/o.xyz", 1, r"cannot tell the image format of .*o\.xyz"),
    ("existing output", "stylize {C} {S} -m {M} -o {EXISTING}", 1, r"existing\.png exists; pass --overwrite"),
    ("folder as output", "stylize {C} {S} -m {M} -o {DIR}", 2, r"folder\.png' is a directory"),
    # option values
    ("seed too large", RUN + " -o {O}/o.png --seed 99999999999999999999", 2, r"--seed.*between 0 and 18446744073709551615"),
    ("negative seed", RUN + " -o {O}/o.png --seed -1", 2, r"--seed"),
    ("infinite content weight", RUN + " -o {O}/o.png --content-weight inf", 2, r"--content-weight.*between 0 and 1e\+15"),
    ("absurd content weight", RUN + " -o {O}/o.png --content-weight 1e39", 2, r"--content-weight.*got '1e39'"),
    ("nan style weight", RUN + " -o {O}/o.png --style-weight nan", 2, r"--style-weight"),
    ("negative tv weight", RUN + " -o {O}/o.png --tv-weight -1", 2, r"--tv-weight"),
    ("no iterations", RUN + " -o {O}/o.png --iterations 0", 2, r"--iterations"),
    ("size below the minimum", RUN + " -o {O}/o.png --size 8", 2, r"must be 0 \(the original size\) or between 16"),
    ("zero style scale", RUN + " -o {O}/o.png --style-scales 0", 2, r"--style-scales.*each value must be in \(0, 16\]"),
    ("zero learning rate", RUN + " -o {O}/o.png --optimizer adam --learning-rate 0", 2, r"--learning-rate"),
    ("beta2 of one", RUN + " -o {O}/o.png --optimizer adam --beta2 1", 2, r"--beta2.*in \[0, 1\)"),
    ("unknown optimizer", RUN + " -o {O}/o.png --optimizer sgd", 2, r"'sgd' is not one of 'adam', 'lbfgs'"),
    ("unknown precision", RUN + " -o {O}/o.png --precision fp8", 2, r"--precision"),
    ("lbfgs history zero", RUN + " -o {O}/o.png --lbfgs-history 0", 2, r"--lbfgs-history"),
    ("cuda without cuda", RUN + " -o {O}/o.png --device cuda", 1, r"no CUDA device is available"),
    ("template without checkpoints", RUN + " -o {O}/o.png --checkpoint-output 'c_%s.png'", 1,
     r"--checkpoint-output needs --checkpoint-iterations N"),
    ("misplaced blend weight", "stylize {C} {S} 0.2 -m {M} -o {O}/o.png --style-blend-weights 0.8", 1,
     r"list values with commas"),
    # models, targets, states
    ("missing model", "stylize {C} {S} -m {D}/none.onnx -o {O}/o.png", 1, r"model file not found: .*none\.onnx"),
    ("corrupt model", "stylize {C} {S} -m {BADONNX} -o {O}/o.png", 1, r"cannot read .*bad\.onnx as an ONNX model"),
    ("foreign model", "stylize {C} {S} -m {FOREIGN} -o {O}/o.png", 1, r"is an ONNX model but not an nst extractor"),
    ("model and weights", "stylize {C} {S} -m {M} --weights vgg16 -o {O}/o.png", 1, r"give -m MODEL\.onnx or --weights"),
    ("targets of another model", "stylize {C} --targets {OTHER_TARGETS} -m {M} -o {O}/o.png --size 0", 1,
     r"the style targets were computed with model weights \w+, but .* has weights \w+"),
    ("corrupt targets", "stylize {C} --targets {BADTARGETS} -m {M} -o {O}/o.png", 1, r"bad\.targets is truncated or corrupt"),
    ("styles and targets", "stylize {C} {S} --targets {BIG_TARGETS} -m {M} -o {O}/o.png", 1,
     r"give style images or --targets, not both"),
    ("no style", "stylize {C} -m {M} -o {O}/o.png", 1, r"no style given; pass one or more style images"),
    ("blend weights per style", "stylize {C} {S} {S} -m {M} -o {O}/o.png --style-blend-weights 1", 1,
     r"--style-blend-weights has 1 values for 2 style\(s\)"),
    ("missing state", RUN + " -o {O}/o.png --resume {D}/none.state", 1, r"state file not found: .*none\.state"),
    ("corrupt state", RUN + " -o {O}/o.png --resume {BADSTATE}", 1, r"bad\.state is not a readable nst run state"),
    # the cache folder
    ("NST_HOME is a file", "stylize {C} {S} -o {O}/o.png", 1, r"NST_HOME=.*afile cannot be used: .*afile is a file"),
    ("NST_HOME unwritable", "stylize {C} {S} -o {O}/o.png", 1, r"NST_HOME=/proc/nst-home cannot be used \("),
    ("cache list on a file", "cache list", 1, r"the cache folder .*afile is a file, not a folder"),
    ("cache clear on a file", "cache clear -y", 1, r"the cache folder .*afile is a file, not a folder"),
    # the other commands
    ("precompute missing style", "precompute-style {D}/none.png -m {M} -o {O}/s.targets", 1, r"image not found"),
    ("precompute pixel bomb", "precompute-style {BOMB} -m {M} -o {O}/s.targets", 1, r"more pixels than the limit"),
    ("precompute size too small", "precompute-style {S} -m {M} -o {O}/s.targets --size 8", 2, r"--size"),
    ("precompute existing output", "precompute-style {S} -m {M} -o {EXISTING}", 1, r"exists; pass --overwrite"),
    ("export missing weights", "export-vgg {D}/none.mat -o {O}/m.onnx", 1, r"weights file not found"),
    ("export corrupt weights", "export-vgg {BADMAT} -o {O}/m.onnx", 1, r"cannot read .*bad\.mat as a MatConvNet"),
    ("export unknown layer", "export-vgg {MAT} -o {O}/m.onnx --layers relu9_9", 1, r"unknown layer 'relu9_9'"),
    ("export empty output", "export-vgg {MAT} -o ''", 1, r"the output path is empty"),
]  # fmt: skip
ENV = {
    "NST_HOME is a file": {"NST_HOME": "{FILE}"},
    "NST_HOME unwritable": {"NST_HOME": "/proc/nst-home"},
    "cache list on a file": {"NST_HOME": "{FILE}"},
    "cache clear on a file": {"NST_HOME": "{FILE}"},
}

WARN = [
    ("adam options with lbfgs", RUN + " -o {O}/o.png --learning-rate 3 --beta1 0.5",
     r"warning: --learning-rate and --beta1 only apply to --optimizer adam; lbfgs ignores them"),
    ("lbfgs history with adam", RUN + " -o {O}/o.png --optimizer adam --lbfgs-history 5",
     r"warning: --lbfgs-history only applies to --optimizer lbfgs; adam ignores it"),
    ("min-size above the size", RUN + " -o {O}/o.png --size 48 --min-size 200",
     r"warning: --min-size 200 runs 1 stage: the content \(48x38 px\) is no larger than it"),
    ("panorama style", "stylize {C} {THIN} -m {M} -o {O}/o.png --size 0 --iterations 2 -q",
     r"warning: style thin\.png is resized to 40x1 px \(style scale 1\), under 16 px on a side"),
    ("tiny style scale", RUN + " -o {O}/o.png --style-scales 0.01",
     r"warning: style style\.png is resized to 1x1 px \(style scale 0\.01\), under 16 px on a side"),
    ("scales collapse", RUN + " -o {O}/o.png --scales 3",
     r"warning: --scales 3 runs 1 stage\(s\): the content \(40x32 px\) is no larger than --min-size 128"),
    ("targets of another size", "stylize {C} --targets {BIG_TARGETS} -m {M} -o {O}/o.png --size 0 --iterations 2 -q",
     r"warning: the style targets were computed with style 1 160 px wide, but this content \(40 px wide\) would use 40"),
    ("animated content", "stylize {GIF} {S} -m {M} -o {O}/o.png --size 0 --iterations 2 -q",
     r"warning: .*animated\.gif is animated \(3 frames\); nst uses its first frame"),
]  # fmt: skip


def _digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _invoke(world, command: str, out: Path, env: dict[str, str] | None = None):
    folder, files = world
    names = {key: str(value) for key, value in files.items()} | {"D": str(folder), "O": str(out)}
    argv = [arg.format(**names) for arg in shlex.split(command)]
    env = {key: value.format(**names) for key, value in (env or {}).items()}
    before = _digests(folder)
    result = CliRunner().invoke(main, argv, env=env)
    assert _digests(folder) == before, "a file that was there before changed or went away"
    return result


@pytest.mark.parametrize("name, command, code, message", ERR, ids=[case[0] for case in ERR])
def test_each_mistake_is_one_line(world, tmp_path, name, command, code, message):
    result = _invoke(world, command, tmp_path, ENV.get(name))
    lines = result.output.splitlines()
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert re.search(message, lines[0]), lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize("name, command, message", WARN, ids=[case[0] for case in WARN])
def test_each_oddity_is_one_warning_line(world, tmp_path, name, command, message):
    result = _invoke(world, command, tmp_path)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and re.search(message, warnings[0]), result.output
    assert (tmp_path / "o.png").is_file()


def test_the_battery_is_large_enough():
    assert len(ERR) + len(WARN) >= 40


def test_the_png_records_what_applied_and_where(world, tmp_path):
    _, files = world
    result = _invoke(world, RUN + " -o {O}/o.png --seed 5 --learning-rate 3", tmp_path)
    assert result.exit_code == 0, result.output
    from PIL import Image

    from nst.contract import read_model_info

    with Image.open(tmp_path / "o.png") as img:
        params = json.loads(img.text["nst:parameters"])
        software = img.text["Software"]
    assert params["seed"] == 5 and params["optimizer"] == "lbfgs"
    assert "learning_rate" not in params and "beta1" not in params and params["lbfgs_history"] == 100
    assert params["device"] == "cpu" and params["precision_used"] in ("fp32", "bf16")
    assert params["model_weights_sha256"] == read_model_info(files["M"]).weights_sha256
    assert params["nst_version"] and software == f"nst {params['nst_version']}"


def test_the_closing_line_gives_the_written_images_loss(world, tmp_path):
    result = _invoke(world, "stylize {C} {S} -m {M} --size 0 --iterations 6 -q -o {O}/o.png --seed 1", tmp_path)
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "o.losses.csv").read_text().splitlines()[1:]
    best = min(float(row.split(",")[5]) for row in rows)
    match = re.search(r"loss (\S+)\) in", result.output)
    assert match and float(match.group(1)) == pytest.approx(best, rel=1e-5)


def test_a_failed_final_write_keeps_the_image(world, tmp_path, monkeypatch):
    from nst.errors import OutputError
    from nst.runtime import record

    calls = []
    original = record.save_image

    def flaky(image, path, **kwargs):
        calls.append(Path(path))
        if len(calls) == 1:
            raise OutputError(f"cannot write {path} (No space left on device); choose another output path")
        return original(image, path, **kwargs)

    monkeypatch.setattr(record, "save_image", flaky)
    result = _invoke(world, RUN + " -o {O}/o.png", tmp_path)
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    match = re.fullmatch(r"Error: cannot write .*o\.png \(No space left on device\); choose another output path; "
                         r"the image was saved to (\S+) instead", line)  # fmt: skip
    assert match, line
    saved = Path(match.group(1))
    assert saved.is_file() and saved.stat().st_size > 0
    saved.unlink()


def test_ctrl_c_exits_130_in_every_command(world, tmp_path, monkeypatch):
    import nst.runtime.grams as grams

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(grams, "_batched", interrupted)
    result = _invoke(world, "precompute-style {S} -m {M} -o {O}/s.targets", tmp_path)
    assert result.exit_code == 130 and result.output.strip().endswith("Interrupted")
    assert not (tmp_path / "s.targets").exists()
