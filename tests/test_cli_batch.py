"""`nst stylize-batch` through click's CliRunner: sweeps and the contact sheet, failures, the
summary, resuming, Ctrl-C, and users' mistakes as one line."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner
from odd_files import rgb
from PIL import Image

from nst.cli import main
from nst.runtime.config import StylizeConfig

FAST = ["--iterations", "2", "--size", "0", "--seed", "0", "-q"]


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rgb(folder / "a.png", 40, 32, seed=1)
    rgb(folder / "b.png", 40, 32, seed=2)
    rgb(tmp_path / "style.png", 36, 36, seed=3)
    return tmp_path


def _invoke(model, args):
    return CliRunner().invoke(main, ["stylize-batch", *map(str, args), "-m", str(model), *FAST])


def test_sweep_names_the_outputs_and_the_sheet_has_a_cell_for_each(vgg19_onnx, inputs):
    out, sheet = inputs / "out", inputs / "sheet.png"
    result = _invoke(vgg19_onnx, [inputs / "photos", "-s", inputs / "style.png", "-o", out, "--no-log",
                                  "--sweep", "style-weight=50,5000", "--sweep", "tv-weight=1,100",
                                  "--contact-sheet", sheet])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == [
        f"{c}-style-style-weight={s}-tv-weight={t}.png" for c in "ab" for s in (50, 5000) for t in (1, 100)]  # fmt: skip
    assert f"8 output(s) in {out}: 8 written" in result.output and f"contact sheet {sheet}" in result.output
    with Image.open(sheet) as img:  # 2 rows of 48 px cells (the 40 px outputs fit), 4 columns, 2 label lines
        width, height = img.size
    assert height == 8 + 2 * (48 + 8) + 2 * 16 + 8
    label = width - 4 * (48 + 8) - 8  # the row labels' column: 'a' and 'b', and a margin
    assert 8 < label <= 2 * 48 + 8
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert lines[0]["parameters"] == {"style_weight": 50.0, "tv_weight": 1.0} and lines[0]["seed"] == 0


def test_a_bad_image_fails_alone_exit_1_and_a_rerun_skips(vgg19_onnx, inputs):
    (inputs / "photos" / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = inputs / "out"
    args = [inputs / "photos", "--style", inputs / "style.png", "-o", out]
    result = _invoke(vgg19_onnx, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "failed: c-style.png: cannot read image" in result.output
    assert f"3 output(s) in {out}: 2 written, 1 failed" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("Error: 1 of 3 output(s) failed")
    assert sorted(p.name for p in out.iterdir()) == [
        "a-style.losses.csv", "a-style.png", "b-style.losses.csv", "b-style.png", "manifest.jsonl"]  # fmt: skip
    (inputs / "photos" / "c.jpg").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = _invoke(vgg19_onnx, args)
    assert again.exit_code == 0 and "2 skipped (they exist" in again.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_ctrl_c_keeps_finished_outputs_and_exits_130(vgg19_onnx, inputs, monkeypatch):
    from nst.runtime.stylize import Stylizer

    real = Stylizer.render

    def second_interrupted(self, content, **kwargs):
        if "b.png" in str(content):
            raise KeyboardInterrupt
        return real(self, content, **kwargs)

    monkeypatch.setattr(Stylizer, "render", second_interrupted)
    out = inputs / "out"
    result = _invoke(vgg19_onnx, [inputs / "photos", "-s", inputs / "style.png", "-o", out, "--no-log"])
    assert result.exit_code == 130
    assert "Interrupted: 1 output(s) written this run" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a-style.png", "manifest.jsonl"]


def test_every_stylize_option_is_accepted():
    from nst.cli.batch_cmd import stylize_batch_cmd

    result = CliRunner().invoke(main, ["stylize-batch", "--help"])
    assert result.exit_code == 0
    options = {param.name: param for param in stylize_batch_cmd.params}
    for field in dataclasses.fields(StylizeConfig):
        assert field.name in options and options[field.name].opts[0] in result.output, field.name


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        ([], 1, "no style given; pass style images (--style STYLE) or --targets FILE"),
        (
            ["-s", "STYLE", "--sweep", "style-weight=-1"],
            2,
            "--sweep: style-weight: must be between 0 and 1e+15, got '-1'",
        ),
        (["-s", "STYLE", "--sweep", "style-weight=5,x"], 2, "'x' is not a number"),
        (["-s", "STYLE", "--sweep", "stile-weight=5"], 1, "--sweep: no option --stile-weight; sweep one of"),
        (["-s", "STYLE", "--sweep", "device=cpu"], 1, "--sweep cannot vary --device"),
        (["-s", "STYLE", "--sweep", "provider=cpu,auto"], 1, "--sweep cannot vary --provider"),
        (["-s", "STYLE", "--sweep", "style-weight"], 2, "is not OPTION=V,V..."),
        (["-s", "STYLE", "--sweep", "optimizer=adam,sgd"], 2, "'sgd' is not one of 'adam', 'lbfgs'"),
        (["-s", "STYLE", "--ray", "photos"], 2, "--ray takes an address such as ray://HOST:10001"),
        (["-s", "STYLE", "--workers", "2", "--ray=auto"], 1, "give --workers or --ray, not both"),
        (["-s", "STYLE", "--checkpoint-iterations", "1"], 1, "stylize-batch writes no checkpoints"),
        (["-s", "STYLE", "--name", "{content}.png", "OTHER"], 1, "names two outputs a.png"),
        (["-s", "STYLE", "--name", "{colour}.png"], 1, "--name '{colour}.png': no field {colour}"),
        (["-s", "missing.png"], 1, "style image not found: missing.png"),
        (["-s", "STYLE", "nowhere/*.jpg"], 1, "nowhere/*.jpg matches no image"),
        (["-s", "STYLE", "--style-blend-weights", "1,2"], 1, "--style-blend-weights has 2 values for 1 style(s)"),
    ],
)
def test_mistakes_are_one_line(vgg19_onnx, inputs, monkeypatch, extra, code, message):
    monkeypatch.chdir(inputs)
    other = inputs / "other"
    other.mkdir()
    rgb(other / "a.png", 40, 32)
    args = [inputs / "photos", "-o", inputs / "out",
            *[inputs / "style.png" if a == "STYLE" else other if a == "OTHER" else a for a in extra]]  # fmt: skip
    result = _invoke(vgg19_onnx, args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not any((inputs / "out").glob("*.png"))


def test_ray_without_the_extra_is_one_line(vgg19_onnx, inputs, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    result = _invoke(vgg19_onnx, [inputs / "photos", "-s", inputs / "style.png", "-o", inputs / "out", "--ray"])
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: --ray needs Ray: pip install 'nst[ray]' (or pip install 'ray[client]')"
    )


def test_ray_without_a_cluster_is_one_line(vgg19_onnx, inputs, monkeypatch):
    """Ray's own failure to start or join (here as `ray.init(address="auto")` raises it when no
    instance runs) is one line, not Ray's traceback."""
    import types

    import nst.batch.cluster as cluster

    def no_cluster(**kwargs):
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by ...")

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=no_cluster, shutdown=lambda: None)
    monkeypatch.setattr(cluster, "import_ray", lambda: fake)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = _invoke(vgg19_onnx, [inputs / "photos", "-s", inputs / "style.png", "-o", inputs / "out", "--ray=auto"])
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: --ray: could not join the Ray cluster at auto (ConnectionError: Could not find any running Ray "
        "instance. Please specify the one to connect to by ...)"
    )


def test_a_provider_that_cannot_run_fails_once_before_any_work(vgg19_onnx, inputs, monkeypatch):
    import nst.runtime.ort_extractor as ort_extractor

    monkeypatch.setattr(ort_extractor, "provider_unavailable_reason", lambda provider: "not on this machine")
    out = inputs / "out"
    result = _invoke(vgg19_onnx, [inputs / "photos", "-s", inputs / "style.png", "-o", out, "--provider", "tensorrt"])
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: provider tensorrt is not usable: not on this machine; use --provider cpu (or auto)"
    )
    assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_from_a_terminal_stops_the_workers(vgg19_onnx, inputs):
    """SIGINT to the whole process group, as a terminal sends it, with two worker processes:
    exit 130 in one line, the finished outputs whole and in the manifest, no process left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    for i in range(6):
        rgb(inputs / "photos" / f"more{i}.png", 40, 32, seed=10 + i)
    out = inputs / "out"
    argv = [sys.executable, "-c", "from nst.cli import main; main()", "stylize-batch", str(inputs / "photos"),
            "-s", str(inputs / "style.png"), "-o", str(out), "-m", str(vgg19_onnx), "--workers", "2", "--no-log",
            "--iterations", "30", "--size", "0", "--seed", "0", "-q"]  # fmt: skip
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120

    def finished():  # not the temporaries (.name.*.part.png) that become outputs when renamed
        return sorted(p.name for p in out.glob("*.png") if not p.name.startswith("."))

    while not finished() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert output.strip().startswith("Interrupted: ") and "Traceback" not in output, output
    made = finished()
    assert 1 <= len(made) < 8 and not list(out.glob(".*.part.png")), sorted(p.name for p in out.iterdir())
    for path in out.glob("*.png"):
        with Image.open(path) as img:
            img.load()
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(line["output"] for line in lines if line["status"] == "ok") == made
    for _ in range(100):  # multiprocessing's resource tracker ends once it reads the parent's exit
        left = subprocess.run(["pgrep", "-a", "-g", str(proc.pid)], capture_output=True, text=True).stdout
        if not left:
            break
        time.sleep(0.1)
    assert not left, left
