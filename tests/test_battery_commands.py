"""The battery, continued: the same checks as tests/test_battery.py (exit status, one line, no
traceback, no file that was there before changed) for the faults of issue 23 and for
stylize-batch, serve, check-model, the cache and stylize-video. A case is one line of a table."""

from __future__ import annotations

import hashlib
import re
import shlex
import socket
from pathlib import Path

import pytest
import test_battery
from click.testing import CliRunner
from odd_files import png_header_only, rgb
from test_battery import world  # noqa: F401  (the shared inputs)

from nst.cli import main


@pytest.fixture(scope="module")
def more(world, tmp_path_factory):
    """The battery's world, and: states that cannot be resumed, a hollow PNG, an NST_HOME with a
    link out of it and a hashes.json nst did not write, a port that is taken."""
    import torch

    from nst.runtime.state import load_state, save_state

    folder, files = world
    d = tmp_path_factory.mktemp("more")
    extra = {"HOLLOW": png_header_only(d / "hollow-12k.png", 12000, 12000), "S2": rgb(d / "style2.png", 30, 30, seed=4)}
    argv = [*_argv(RUN, files | extra, folder, d), "-o", str(d / "run.png"), "--checkpoint-iterations", "2"]
    assert CliRunner().invoke(main, argv).exit_code == 0
    good = load_state(d / "run.0002.state")
    for name, change in (("FINISHED", {"iteration": 4}), ("PAST", {"iteration": 9}),
                         ("SMALL", {"image": torch.zeros(1, 3, 20, 24), "best_image": None}),
                         ("NAN", {"image": torch.full_like(good.image, float("nan"))})):  # fmt: skip
        state = load_state(d / "run.0002.state")
        for key, value in change.items():
            setattr(state, key, value)
        extra[name] = save_state(state, d / f"{name.lower()}.state")
    extra["GOOD"] = d / "run.0002.state"
    home = d / "home"
    (home / "models").mkdir(parents=True)
    (d / "outside.txt").write_text("not nst's")
    (home / "models" / "link.onnx").symlink_to(d / "outside.txt")
    (home / "hashes.json").write_text('{"mine": "not nst\'s"}')
    extra["HOME"], extra["EMPTYDIR"], extra["MORE"] = home, d / "emptydir", d
    extra["EMPTYDIR"].mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        extra["PORT"] = taken.getsockname()[1]
        yield folder, d, files | extra


RUN = "stylize {C} {S} -m {M} --size 0 --iterations 4 -q --no-log --seed 3"
R2 = RUN.replace("--iterations 4", "--iterations 2")
BATCH = "stylize-batch {C} -s {S} -m {M} -o {O}/out --size 0 --iterations 1 -q"
CHECK = "check-model {M} --runtime onnxruntime"

STYLIZE = [
    # issue 23: files that are not what their header says, states that cannot be resumed
    ("hollow png content", "stylize {HOLLOW} {S} -m {M} -o {O}/o.png", 1,
     r"cannot read image .*hollow-12k\.png: its header declares 12000x12000 px but it holds \d+ bytes"),
    ("hollow png style", "stylize {C} {HOLLOW} -m {M} -o {O}/o.png", 1, r"hollow-12k\.png: its header declares"),
    ("hollow png initial", RUN + " -o {O}/o.png --initial {HOLLOW}", 1, r"hollow-12k\.png: its header declares"),
    ("resume another size", RUN + " -o {O}/o.png --resume {SMALL}", 1,
     r"the state is for a 24x20 image, this run makes 40x32; resume with the content, --size and --scales"),
    ("resume a finished run", RUN + " -o {O}/o.png --resume {FINISHED}", 1,
     r"finished\.state holds a finished run \(iteration 4 of 4\); there is nothing to resume"),
    ("resume past the end", RUN + " -o {O}/o.png --resume {PAST}", 1, r"holds a finished run \(iteration 9 of 4\)"),
    ("resume NaNs", RUN + " -o {O}/o.png --resume {NAN}", 1,
     r"nan\.state holds non-finite values \(NaN or infinity\); start without --resume"),
    ("resume other settings", RUN + " -o {O}/o.png --resume {GOOD} --style-weight 7", 1,
     r"the state comes from a run with other settings \(--style-weight\); leave them as they were"),
    ("resume other iterations", R2 + " -o {O}/o.png --resume {GOOD}", 1, r"other settings \(--iterations\)"),
    ("resume another content", "stylize {S} {S} -m {M} --size 0 --iterations 4 -q --seed 3 -o {O}/o.png "
     "--resume {GOOD}", 1, r"the state comes from another content image; resume with the same CONTENT"),
    ("resume other styles", "stylize {C} {S2} -m {M} --size 0 --iterations 4 -q --seed 3 -o {O}/o.png "
     "--resume {GOOD}", 1, r"the state comes from other style images or targets; resume with the same styles"),
    ("resume a text file", RUN + " -o {O}/o.png --resume {TEXT}", 1, r"notes\.jpg is not a readable nst run state"),
    ("resume an image", RUN + " -o {O}/o.png --resume {C}", 1, r"content\.png is not a readable nst run state"),
    ("resume targets", RUN + " -o {O}/o.png --resume {BIG_TARGETS}", 1, r"big\.targets is not an nst run state"),
    # outputs that are inputs
    ("output is the content", R2 + " -o {C} --overwrite", 1,
     r"content\.png is the content of this run; nst never writes over an input: choose another -o or --checkpoint"),
    ("output is the style", R2 + " -o {S} --overwrite", 1, r"style\.png is style 1 of this run; nst never writes"),
    ("output is the initial image", R2 + " -o {S2} --initial {S2} --overwrite", 1,
     r"style2\.png is the --initial image of this run"),
    ("output is the content, no overwrite", R2 + " -o {C}", 1, r"content\.png is the content of this run"),
    ("checkpoint is the output", RUN + " -o {O}/c_2.png --checkpoint-iterations 2 --checkpoint-output {O}/c_%s.png",
     1, r"the output and checkpoint 2 would both be written to .*c_2\.png; choose another --checkpoint-output or -o"),
    ("checkpoint without the iteration", RUN + " -o {O}/o.png --checkpoint-iterations 2 --checkpoint-output c.png",
     1, r"--checkpoint-output 'c\.png' must contain the iteration as %s or \{\}"),
    ("checkpoint over an input", "stylize {C} {S2} -m {M} --size 0 --iterations 4 -q -o {O}/o.png "
     "--checkpoint-iterations 2 --checkpoint-output {MORE}/style%s.png", 1,
     r"style2\.png is style 1 of this run; nst never writes over an input: choose another -o or --checkpoint-output"),
    ("checkpoint template broken", RUN + " -o {O}/o.png --checkpoint-iterations 2 --checkpoint-output 'c_{{x}}.png'",
     1, r"--checkpoint-output 'c_\{x\}\.png' is not a valid template"),
    # more option values
    ("initial not found", R2 + " -o {O}/o.png --initial {D}/none.png", 1, r"image not found: .*none\.png"),
    ("initial not an image", R2 + " -o {O}/o.png --initial {TEXT}", 1, r"cannot read image .*notes\.jpg"),
    ("noise blend above one", R2 + " -o {O}/o.png --initial-noiseblend 2", 2, r"--initial-noiseblend"),
    ("content blend above one", R2 + " -o {O}/o.png --content-weight-blend 2", 2, r"--content-weight-blend"),
    ("too many scales", R2 + " -o {O}/o.png --scales 99", 2, r"--scales"),
    ("min size too small", R2 + " -o {O}/o.png --min-size 8", 2, r"--min-size"),
    ("unknown pooling", R2 + " -o {O}/o.png --pooling median", 2, r"--pooling"),
    ("unknown colours", R2 + " -o {O}/o.png --preserve-colors yes", 2, r"--preserve-colors"),
    ("unknown loss scale", R2 + " -o {O}/o.png --loss-scale huge", 2, r"--loss-scale"),
    ("unknown device", R2 + " -o {O}/o.png --device tpu", 2, r"--device.*must be auto, cpu, cuda or cuda:N"),
    ("missing cuda device", R2 + " -o {O}/o.png --device cuda:7", 1, r"--device cuda:7"),
    ("unknown provider", R2 + " -o {O}/o.png --provider rocm", 2, r"--provider"),
    ("16 bits in a jpeg", R2 + " -o {O}/o.jpg --bit-depth 16", 1, r"16"),
    ("unknown bit depth", R2 + " -o {O}/o.png --bit-depth 12", 2, r"--bit-depth"),
    ("unknown output profile", R2 + " -o {O}/o.png --output-profile p3", 2, r"--output-profile"),
    ("negative style scale", R2 + " -o {O}/o.png --style-scales -1", 2, r"--style-scales"),
    ("huge style scale", R2 + " -o {O}/o.png --style-scales 99", 2, r"--style-scales"),
    ("negative blend weight", "stylize {C} {S} {S2} -m {M} -o {O}/o.png --style-blend-weights 1,-1", 2,
     r"--style-blend-weights"),
    ("zero print interval", R2 + " -o {O}/o.png --print-iterations 0", 2, r"--print-iterations"),
    ("width too small", R2 + " -o {O}/o.png --width 4", 2, r"--width"),
    ("targets not found", "stylize {C} --targets {D}/none.targets -m {M} -o {O}/o.png", 1,
     r"style-targets file not found: .*none\.targets; create it with `nst precompute-style"),
    ("weights layout unknown", R2 + " -o {O}/o.png --weights-layout tf", 2, r"--weights-layout"),
    ("style mask missing", R2 + " -o {O}/o.png --style-mask {D}/none.png", 1, r"--style-mask not found: .*none"),
    ("plot without matplotlib", R2 + " -o {O}/o.png --plot", 1, r"matplotlib"),
    # precompute-style
    ("precompute hollow png", "precompute-style {HOLLOW} -m {M} -o {O}/s.targets", 1, r"its header declares"),
    ("precompute text", "precompute-style {TEXT} -m {M} -o {O}/s.targets", 1, r"cannot read image"),
    ("precompute missing model", "precompute-style {S} -m {D}/none.onnx -o {O}/s.targets", 1, r"model file not found"),
    ("precompute corrupt model", "precompute-style {S} -m {BADONNX} -o {O}/s.targets", 1, r"as an ONNX model"),
    ("precompute foreign model", "precompute-style {S} -m {FOREIGN} -o {O}/s.targets", 1, r"not an nst extractor"),
    ("precompute zero scale", "precompute-style {S} -m {M} -o {O}/s.targets --style-scales 0", 2, r"--style-scales"),
    ("precompute empty output", "precompute-style {S} -m {M} -o ''", 1, r"the output path is empty"),
    ("precompute missing folder", "precompute-style {S} -m {M} -o {O}/no/s.targets", 1, r"does not exist"),
    # export-vgg and the weights
    ("export existing output", "export-vgg {MAT} -o {EXISTING}", 1, r"exists; pass --overwrite"),
    ("export missing folder", "export-vgg {MAT} -o {O}/no/m.onnx", 1, r"does not exist"),
    ("export text as weights", "export-vgg {TEXT} -o {O}/m.onnx", 1, r"notes\.jpg"),
    ("weights url not a url", "download-weights vgg19", 1, r"NST_WEIGHTS_URL='notaurl' is not a URL"),
    ("unknown weights name", "stylize {C} {S} --weights vgg99 -o {O}/o.png", 1, r"weights file not found: vgg99"),
]  # fmt: skip

BATCH_CASES = [
    ("batch missing content", "stylize-batch {D}/none.png -s {S} -m {M} -o {O}/out", 1,
     r"content image not found: .*none\.png"),
    ("batch empty folder", "stylize-batch {EMPTYDIR} -s {S} -m {M} -o {O}/out", 1, r"emptydir holds no images"),
    ("batch glob matches nothing", "stylize-batch '{D}/*.tiff' -s {S} -m {M} -o {O}/out", 1, r"matches no image"),
    ("batch no style", "stylize-batch {C} -m {M} -o {O}/out", 1, r"no style given"),
    ("batch missing style", "stylize-batch {C} -s {D}/none.png -m {M} -o {O}/out", 1, r"style image not found"),
    ("batch text style", BATCH + " -s {TEXT}", 1, r"cannot read image .*notes\.jpg: .*is it a complete image file"),
    ("batch styles and targets", BATCH + " --targets {BIG_TARGETS}", 1, r"not both"),
    ("batch outdir is a file", "stylize-batch {C} -s {S} -m {M} -o {FILE}", 2, r"afile"),
    ("batch name with a folder", BATCH + " --name 'a/{{content}}.png'", 1, r"must be a file name"),
    ("batch name unknown field", BATCH + " --name '{{nope}}.png'", 1, r"no field \{nope\}"),
    ("batch name broken template", BATCH + " --name '{{content.png'", 1, r"is not a valid template"),
    ("batch name positional field", BATCH + " --name '{{}}.png'", 1, r"name each field"),
    ("batch name unknown format", BATCH + " --name '{{content}}.xyz'", 1, r"cannot tell the image format"),
    ("batch two outputs one name", "stylize-batch {C} {S} -s {S2} -m {M} -o {O}/out --name same.png", 1,
     r"names two outputs same\.png"),
    ("batch name maps the content onto itself", "stylize-batch {C} -s {S} -m {M} -o {D} --name '{{content}}.png'", 1,
     r"content\.png is the content image 1 of this run; nst never writes over an input"),
    ("batch overwrites the content", "stylize-batch {C} -s {S} -m {M} -o {D} --name '{{content}}.png' --overwrite",
     1, r"content\.png is the content image 1 of this run"),
    ("batch overwrites a style", "stylize-batch {C} -s {S} -m {M} -o {D} --name style.png --overwrite", 1,
     r"style\.png is style 1 of this run"),
    ("batch sweep unknown option", BATCH + " --sweep colour=1,2", 1, r"--sweep: no option --colour"),
    ("batch sweep device", BATCH + " --sweep device=cpu,cuda", 1, r"--sweep cannot vary --device"),
    ("batch sweep without values", BATCH + " --sweep style-weight", 2, r"is not OPTION=V,V"),
    ("batch sweep twice", BATCH + " --sweep style-weight=1 --sweep style-weight=2", 2, r"names an option twice"),
    ("batch sweep bad value", BATCH + " --sweep style-weight=a,b", 2, r"--sweep: style-weight: 'a' is not a number"),
    ("batch checkpoints", BATCH + " --checkpoint-iterations 1", 1, r"stylize-batch writes no checkpoints"),
    ("batch zero workers", BATCH + " --workers 0", 2, r"--workers"),
    ("batch negative retries", BATCH + " --retries -1", 2, r"--retries"),
    ("batch ray nobody listening", BATCH + " --ray=127.0.0.1:1", 1,
     r"--ray: no Ray cluster answers at 127\.0\.0\.1:1 \(connection refused\)"),
    ("batch missing model", "stylize-batch {C} -s {S} -m {D}/none.onnx -o {O}/out", 1, r"model file not found"),
    ("batch corrupt model", "stylize-batch {C} -s {S} -m {BADONNX} -o {O}/out", 1, r"as an ONNX model"),
    ("batch foreign model", "stylize-batch {C} -s {S} -m {FOREIGN} -o {O}/out", 1, r"not an nst extractor"),
    ("batch bad weight", BATCH + " --style-weight nan", 2, r"--style-weight"),
    ("batch cuda without cuda", BATCH + " --device cuda", 1, r"no CUDA device is available"),
    ("batch sheet format", BATCH + " --contact-sheet {O}/sheet.xyz", 1, r"sheet\.xyz"),
    ("batch sheet in a missing folder", BATCH + " --contact-sheet {O}/no/sheet.png", 1, r"does not exist"),
]  # fmt: skip

SERVE = [
    ("serve port too large", "serve --port 70000", 2, r"--port.*70000 is not in the range 0<=x<=65535"),
    ("serve port not a number", "serve --port abc", 2, r"--port"),
    ("serve negative port", "serve --port -1", 2, r"--port"),
    ("serve port taken", "serve -m {M} --port {PORT} --outdir {O}/g", 1,
     r"cannot listen on 127\.0\.0\.1:\d+ \(.*\); pass another --port or --host"),
    ("serve no upload", "serve --max-upload-mb 0", 2, r"--max-upload-mb"),
    ("serve huge upload", "serve --max-upload-mb 5000", 2, r"--max-upload-mb"),
    ("serve unknown device", "serve --device tpu", 2, r"--device.*must be auto, cpu, cuda or cuda:N"),
    ("serve outdir is a file", "serve -m {M} --outdir {FILE}", 2, r"--outdir.*afile.*is a file"),
    ("serve outdir parent missing", "serve -m {M} --outdir {O}/no/gallery", 1,
     r"folder .*/no does not exist; create it first, or give another --outdir"),
    ("serve unknown host", "serve -m {M} --host 999.1.1.1 --outdir {O}/g", 1,
     r"cannot listen on 999\.1\.1\.1:8765 \(.*\); pass another --port or --host"),
    ("serve host not resolvable", "serve -m {M} --host nowhere.invalid --outdir {O}/g", 1, r"cannot listen on nowhere"),
    ("serve missing model", "serve -m {D}/none.onnx --outdir {O}/g --port 0", 1, r"model file not found"),
    ("serve corrupt model", "serve -m {BADONNX} --outdir {O}/g --port 0", 1, r"as an ONNX model"),
    ("serve foreign model", "serve -m {FOREIGN} --outdir {O}/g --port 0", 1, r"not an nst extractor"),
    ("serve unknown weights", "serve --weights vgg99 --outdir {O}/g --port 0", 1, r"weights file not found: vgg99"),
    ("serve cuda without cuda", "serve -m {M} --device cuda --outdir {O}/g --port 0", 1, r"no CUDA device"),
]  # fmt: skip

CHECK_MODEL = [
    ("check missing model", "check-model {D}/none.onnx", 1, r"model file not found: .*none\.onnx"),
    ("check corrupt model", "check-model {BADONNX}", 1, r"cannot read .*bad\.onnx as an ONNX model"),
    ("check foreign model", "check-model {FOREIGN}", 1, r"is an ONNX model but not an nst extractor"),
    ("check a folder", "check-model {DIR}", 2, r"is a directory"),
    ("check unknown runtime", CHECK.replace("onnxruntime", "tflite"), 2, r"--runtime.*'tflite' is not one of"),
    ("check unknown provider", CHECK + " --provider rocm", 2, r"--provider"),
    ("check zero size", CHECK + " --size 0x0", 2, r"'0x0' is not HxW"),
    ("check size not HxW", CHECK + " --size abc", 2, r"'abc' is not HxW"),
    ("check huge size", CHECK + " --size 99999x2", 2, r"is not HxW"),
    ("check missing image", CHECK + " --image {D}/none.png", 1, r"image not found"),
    ("check text image", CHECK + " --image {TEXT}", 1, r"notes\.jpg"),
    ("check missing weights", CHECK + " --weights {D}/none.mat", 1, r"weights file not found"),
    ("check corrupt weights", CHECK + " --weights {BADMAT}", 1, r"bad\.mat"),
]  # fmt: skip

VIDEO = [  # skipped in a build without stylize-video (the video extra is optional)
    ("video missing input", "stylize-video {D}/none.mp4 -s {S} -m {M} -o {O}/o.mp4", 1, r"none\.mp4"),
    ("video text as video", "stylize-video {TEXT} -s {S} -m {M} -o {O}/o.mp4", 1, r"notes\.jpg"),
    ("video missing style", "stylize-video {GIF} -s {D}/none.png -m {M} -o {O}/o.mp4", None, r"none\.png"),
    ("video missing folder", "stylize-video {GIF} -s {S} -m {M} -o {O}/no/o.mp4", 1, r"does not exist"),
    ("video output is an image", "stylize-video {GIF} -s {S} -m {M} -o {EXISTING}", 1, r"is a file; give a folder"),
    ("video negative temporal", "stylize-video {GIF} -s {S} -m {M} -o {O}/o.mp4 --temporal-weight -1", 2, r"temporal-weight"),
    ("video long-term without 1", "stylize-video {GIF} -s {S} -m {M} -o {O}/o.mp4 --long-term 2,4", None, r"--long-term"),
    ("video unknown flow", "stylize-video {GIF} -s {S} -m {M} -o {O}/o.mp4 --flow lucas", 2, r"--flow"),
    ("video zero passes", "stylize-video {GIF} -s {S} -m {M} -o {O}/o.mp4 --passes 0", 2, r"--passes"),
    ("video no style", "stylize-video {GIF} -m {M} -o {O}/o.mp4", None, r"style"),
    ("video missing model", "stylize-video {GIF} -s {S} -m {D}/none.onnx -o {O}/o.mp4", 1, r"model file not found"),
]  # fmt: skip

OK = [  # runs that must work (exit 0), with a line that says what happened
    ("all weights zero with lbfgs", R2 + " -o {O}/o.png --content-weight 0 --style-weight 0 --tv-weight 0", r"^wrote "),
    ("all weights zero with adam", R2 + " -o {O}/o.png --content-weight 0 --style-weight 0 --tv-weight 0 "
     "--optimizer adam", r"^wrote "),
    ("no noise, no style, no tv", R2 + " -o {O}/o.png --initial-noiseblend 0 --style-weight 0 --tv-weight 0",
     r"^wrote "),
    ("cache list with a link out", "cache list", r"link\.onnx .*a link to .*outside\.txt; not nst's: cache clear leaves it"),
    ("cache clear keeps what nst did not write", "cache clear -y",
     r"left 2 file\(s\) that nst did not put there: .*(link\.onnx|hashes\.json)"),
    ("check-model with onnxruntime", CHECK, r"checks? passed"),
    ("precompute a panorama", "precompute-style {THIN} -m {M} -o {O}/s.targets",
     r"^warning: style thin\.png is resized to 512x15 px \(style scale 1\), under 16 px on a side"),
    ("precompute a tiny scale", "precompute-style {S} -m {M} -o {O}/s.targets --style-scales 0.01",
     r"^warning: style style\.png is resized to 5x5 px \(style scale 0\.01\)"),
]  # fmt: skip

ENV = {
    "weights url not a url": {"NST_WEIGHTS_URL": "notaurl", "NST_HOME": "{O}/home"},
    "cache list with a link out": {"NST_HOME": "{HOME}"},
    "cache clear keeps what nst did not write": {"NST_HOME": "{HOME}"},
    "unknown weights name": {"NST_HOME": "{O}/home"},
    "serve unknown weights": {"NST_HOME": "{O}/home"},
}
ERRORS = STYLIZE + BATCH_CASES + SERVE + CHECK_MODEL


def _argv(command: str, files: dict, folder: Path, out: Path) -> list[str]:
    names = {key: str(value) for key, value in files.items()} | {"D": str(folder), "O": str(out)}
    return [arg.format(**names) for arg in shlex.split(command)]


def _run(more, name: str, command: str, out: Path):
    folder, d, files = more
    names = {key: str(value) for key, value in files.items()} | {"D": str(folder), "O": str(out)}
    env = {key: value.format(**names) for key, value in ENV.get(name, {}).items()}
    before = {**_digests(folder), **_digests(d)}
    result = CliRunner().invoke(main, _argv(command, files, folder, out), env=env)
    after = {**_digests(folder), **_digests(d)}
    assert {path: after.get(path) for path in before} == before, "a file that was there before changed or went away"
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_server(monkeypatch):
    """A serve case that does not fail would serve forever: fail the test instead."""
    from nst.serve import server

    monkeypatch.setattr(server.Server, "run", lambda self, **kwargs: pytest.fail("the server started"))


@pytest.mark.parametrize("name, command, code, message", ERRORS, ids=[case[0] for case in ERRORS])
def test_each_mistake_is_one_line(more, tmp_path, no_server, name, command, code, message):
    result = _run(more, name, command, tmp_path)
    lines = result.output.splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert re.search(message, lines[0]), lines[0]


@pytest.mark.parametrize("name, command, code, message", VIDEO, ids=[case[0] for case in VIDEO])
def test_each_video_mistake_is_one_line(more, tmp_path, name, command, code, message):
    if "stylize-video" not in main.list_commands(None):  # type: ignore[arg-type]
        pytest.skip("nst stylize-video is not in this build yet")
    result = _run(more, name, command, tmp_path)
    lines = result.output.splitlines()
    assert result.exit_code == (code if code is not None else result.exit_code) != 0, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and re.search(message, lines[0]), result.output


@pytest.mark.parametrize("name, command, message", OK, ids=[case[0] for case in OK])
def test_each_odd_but_valid_run_works(more, tmp_path, name, command, message):
    result = _run(more, name, command, tmp_path)
    assert result.exit_code == 0, result.output
    assert any(re.search(message, line) for line in result.output.splitlines()), result.output


def test_the_battery_is_large_enough():
    tables = (test_battery.ERR, test_battery.WARN, ERRORS, VIDEO, OK)
    assert sum(map(len, tables)) >= 150
