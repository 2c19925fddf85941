"""`nst stylize-video` through click's CliRunner on tiny clips (8 frames of 128x96, stylized at 64x48 with
a few iterations): a frame folder and an mp4 end to end, re-runs that keep what is made (by mtimes), the
flow cache serving a second style, 16-bit frames, a frame that fails, and users' mistakes as one line."""

from __future__ import annotations

import json
import sys
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("cv2")
pytest.importorskip("av")

from nst.cli import main
from nst.errors import ImageError

from video_clips import make_video, pan

FAST = ["--size", "64", "--iterations", "3", "--later-iterations", "1", "--seed", "0", "-q"]
NTSC = Fraction(30000, 1001)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    (root / "frames").mkdir()
    frames = pan(8, (3, 1))
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(root / "frames" / f"f{i + 1}.png")
    make_video(root / "clip.mp4", frames, fps=NTSC, audio=True)
    for name, seed in (("style.png", "chelsea"), ("other.png", "astronaut")):
        Image.fromarray(pan(1, (0, 0), seed)[0][::-1]).save(root / name)
    return root


def _invoke(model, *args):
    return CliRunner().invoke(main, ["stylize-video", *map(str, args), "-m", str(model), *FAST])


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.png"))}


def test_a_frame_folder_in_and_out_and_a_rerun_keeps_what_is_made(vgg19_onnx, clip, tmp_path):
    out = tmp_path / "out"
    result = _invoke(vgg19_onnx, clip / "frames", "-s", clip / "style.png", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (8 frames: 8 made) in" in result.output
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}.png" for i in range(1, 9)] + ["manifest.jsonl"]
    with Image.open(out / "00001.png") as img:
        assert img.size == (64, 48) and json.loads(img.text["nst:parameters"])["content"] == "frames frame 1"
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [line["iterations"] for line in lines] == [3] + [1] * 7 and len(lines[0]["losses"]) == 3
    made = _mtimes(out)
    again = _invoke(vgg19_onnx, clip / "frames", "-s", clip / "style.png", "-o", out)
    assert again.exit_code == 0 and "(8 frames: 0 made, 8 kept)" in again.output and _mtimes(out) == made
    for name in ("00006.png", "00007.png", "00008.png"):  # as if the run had stopped after frame 5
        (out / name).unlink()
    rest = _invoke(vgg19_onnx, clip / "frames", "-s", clip / "style.png", "-o", out)
    assert rest.exit_code == 0 and "(8 frames: 3 made, 5 kept)" in rest.output
    now = _mtimes(out)
    assert {n: now[n] for n in list(made)[:5]} == {n: made[n] for n in list(made)[:5]} and len(now) == 8


def test_an_mp4_keeps_its_frame_count_rate_and_sound(vgg19_onnx, clip, tmp_path):
    from nst.video.reading import read_clip

    out = tmp_path / "out.mp4"
    result = _invoke(vgg19_onnx, clip / "clip.mp4", "-s", clip / "style.png", "-o", out)
    assert result.exit_code == 0, result.output
    made = read_clip(out)
    assert len(made.frames) == 8 and made.fps == NTSC and made.audio and made.frames[0].shape == (48, 64, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out.mp4"]  # the frame folder is gone
    exists = _invoke(vgg19_onnx, clip / "clip.mp4", "-s", clip / "style.png", "-o", out)
    assert exists.exit_code == 1 and exists.output == f"Error: {out} exists; pass --overwrite to replace it\n"


def test_a_second_style_estimates_no_flow(vgg19_onnx, clip, tmp_path, monkeypatch):
    from nst.video import flow

    first = _invoke(vgg19_onnx, clip / "frames", "-s", clip / "style.png", "-o", tmp_path / "a")
    assert first.exit_code == 0, first.output
    (folder,) = (tmp_path / "home" / "flow").iterdir()
    assert folder.name.startswith("frames-") and len(list(folder.glob("flow-*.npz"))) == 7

    def no_flow(*args, **kwargs):
        raise AssertionError("a flow was estimated")

    monkeypatch.setattr(flow, "estimate_flow", no_flow)
    second = _invoke(vgg19_onnx, clip / "frames", "-s", clip / "other.png", "-o", tmp_path / "b")
    assert second.exit_code == 0, second.output


def test_sixteen_bit_frames(vgg19_onnx, clip, tmp_path):
    out = tmp_path / "out"
    result = _invoke(vgg19_onnx, clip / "frames", "-s", clip / "style.png", "-o", out, "--bit-depth", "16")
    assert result.exit_code == 0, result.output
    header = (out / "00002.png").read_bytes()[:26]
    assert header[12:16] == b"IHDR" and header[24] == 16  # bits per channel


def test_a_frame_that_fails_stops_the_run_and_keeps_the_frames_before(vgg19_onnx, clip, tmp_path, monkeypatch):
    from nst.runtime.stylize import Stylizer

    render, calls = Stylizer.render, []

    def failing(self, content, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise ImageError("the disk hiccuped")
        return render(self, content, **kwargs)

    monkeypatch.setattr(Stylizer, "render", failing)
    out = tmp_path / "out"
    result = _invoke(vgg19_onnx, clip / "frames", "-s", clip / "style.png", "-o", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"Error: frames: frame 4 failed: the disk hiccuped; the frames made are kept in {out}; "
        "run the same command again to continue"
    ]
    assert sorted(_mtimes(out)) == ["00001.png", "00002.png", "00003.png"]


def test_other_settings_are_refused_then_overwritten(vgg19_onnx, clip, tmp_path):
    out = tmp_path / "out"
    assert _invoke(vgg19_onnx, clip / "frames", "-s", clip / "style.png", "-o", out).exit_code == 0
    made = _mtimes(out)
    args = [clip / "frames", "-s", clip / "style.png", "-o", out, "--style-weight", "50", "--temporal-weight", "9"]
    refused = _invoke(vgg19_onnx, *args)
    assert refused.exit_code == 1 and refused.output == (
        f"Error: {out} holds frames made with other settings (--style-weight, --temporal-weight); pass "
        "--overwrite to make them again, or choose another output\n"
    )
    redone = _invoke(vgg19_onnx, *args, "--overwrite")
    assert redone.exit_code == 0 and "(8 frames: 8 made)" in redone.output
    assert all(_mtimes(out)[name] != made[name] for name in made)
    args[2] = clip / "other.png"
    style = _invoke(vgg19_onnx, *args)
    assert style.exit_code == 1 and "holds frames made with other settings (the style images); pass" in style.output


@pytest.mark.parametrize(
    "case, args, message",
    [
        ("corrupt", ["{bad}", "-o", "{tmp}/out.mp4"], "Error: cannot read video {bad} ("),
        ("16 bits in a video", ["{frames}", "-o", "{tmp}/out.mp4", "--bit-depth", "16"],
         "Error: --bit-depth 16 needs a folder of PNG frames; out.mp4 holds 8 bits"),
        ("no name", ["{frames}", "{bad}", "-o", "{tmp}/out.mp4"],
         "Error: with several INPUTs, -o must contain {{name}}, e.g. -o 'out/{{name}}.mp4' (see"),
        ("a stranger", ["{frames}", "-o", "{tmp}"], "Error: {tmp} holds files that are not frames of nst stylize-video"),
        ("plot", ["{frames}", "-o", "{tmp}/o", "--plot"], "Error: stylize-video plots no losses;"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line(vgg19_onnx, clip, tmp_path, case, args, message):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 but then nothing a decoder wants")
    (tmp_path / "notes.txt").write_text("mine")
    values = {"bad": bad, "frames": clip / "frames", "tmp": tmp_path}
    result = _invoke(vgg19_onnx, *(a.format(**values) for a in args), "-s", clip / "style.png")
    assert result.exit_code in (1, 2) and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith(message.format(**values))


def test_without_the_extra_one_line_says_what_to_install(vgg19_onnx, clip, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    result = _invoke(vgg19_onnx, clip / "frames", "-s", clip / "style.png", "-o", tmp_path / "o")
    assert result.exit_code == 1
    assert result.output == "Error: stylize-video needs OpenCV and PyAV: pip install 'nst[video]'\n"


def test_regions_apply_to_every_frame(vgg19_onnx, clip, tmp_path):
    """A mask per style (the left half one style, the right half the other) holds for every frame."""
    left = np.zeros((96, 128), np.uint8)
    left[:, :64] = 255
    for name, mask in (("left.png", left), ("right.png", 255 - left)):
        Image.fromarray(mask).save(tmp_path / name)
    out = tmp_path / "out"
    args = ["-s", clip / "style.png", "-s", clip / "other.png", "--style-mask", tmp_path / "left.png"]
    result = _invoke(vgg19_onnx, clip / "frames", *args, "--style-mask", tmp_path / "right.png", "-o", out)
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == 8
    with Image.open(out / "00008.png") as img:
        parameters = json.loads(img.text["nst:parameters"])
    assert [m.rsplit("/", 1)[-1] for m in parameters["style_masks"]] == ["left.png", "right.png"]
    one = _invoke(vgg19_onnx, clip / "frames", *args, "-o", tmp_path / "unmasked")
    assert one.exit_code != 0 and "--style-mask" in one.output  # one mask for two styles is one line
