"""The frame driver and `stylize_video` on tiny clips (8 frames of 64x48, a few iterations): a run
stopped at Ctrl-C mid-frame continues to the very bytes of one never stopped, multi-pass and long-term
frames, cuts into shots (in worker processes too), both loss scales and precisions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("cv2")
pytest.importorskip("av")

from nst.runtime.config import StylizeConfig
from nst.runtime.device import cpu_has_bf16
from nst.video.run import VideoInterrupted, stylize_video
from nst.video.settings import VideoSettings

from video_clips import pan

CONFIG = StylizeConfig(iterations=4, size=64, seed=0, device="cpu")
VIDEO = VideoSettings(later_iterations=2)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A folder of 8 frames of a pan (96x128, read at 64x48) and a style image."""
    root = tmp_path_factory.mktemp("clip")
    (root / "pan").mkdir()
    for i, frame in enumerate(pan(8, (3, 1))):
        Image.fromarray(frame).save(root / "pan" / f"frame{i}.png")
    Image.fromarray(pan(1, (0, 0), "chelsea")[0]).save(root / "style.png")
    return root


def _run(clip, out, model, **kwargs):
    options = {"styles": [clip / "style.png"], "config": CONFIG, "video": VIDEO, "model": model, **kwargs}
    source = options.pop("source", clip / "pan")
    return stylize_video([(source, out)], **options)


def _frames(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def _lines(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def whole(clip, vgg19_onnx, tmp_path_factory):
    """The clip made in one run, never stopped."""
    out = tmp_path_factory.mktemp("whole") / "out"
    (result,) = _run(clip, out, vgg19_onnx)
    assert result.complete and result.made == 8 and result.frames == 8
    return _frames(out)


def test_a_run_stopped_mid_frame_continues_to_the_same_bytes(clip, vgg19_onnx, whole, tmp_path):
    """Ctrl-C at frame 4's first iteration saves its state; the run again keeps frames 1-3, resumes
    frame 4 at iteration 2, and every frame is the one an uninterrupted run makes."""
    out = tmp_path / "out"

    def stop(event):
        if getattr(event, "kind", "") == "step" and event.frame == 3:
            raise KeyboardInterrupt

    with pytest.raises(VideoInterrupted) as info:
        _run(clip, out, vgg19_onnx, callback=stop)
    assert info.value.made == 3
    assert sorted(_frames(out)) == ["00001.png", "00002.png", "00003.png"]
    assert [p.name for p in (out / ".nst").iterdir()] == ["00004-1.state"]
    kept = {name: (out / name).stat().st_mtime_ns for name in _frames(out)}
    events = []
    (result,) = _run(clip, out, vgg19_onnx, callback=events.append)
    planned, steps = events[0], [e for e in events[1:] if e.kind == "step"]
    assert (planned.to_make, planned.done, planned.resumed) == (5, 1, {0: 1})
    assert (steps[0].frame, steps[0].iteration) == (3, 2)  # frame 4 goes on from its state
    assert result.made == 5 and _frames(out) == whole
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept
    assert not (out / ".nst").exists() or not any((out / ".nst").iterdir())
    assert [line["frame"] for line in _lines(out)] == list(range(1, 9))


def test_a_finished_clip_is_kept_as_it_is(clip, vgg19_onnx, tmp_path):
    out = tmp_path / "out"
    _run(clip, out, vgg19_onnx)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    events = []
    (result,) = _run(clip, out, vgg19_onnx, callback=events.append)
    assert result.made == 0 and result.complete and events[0].to_make == 0 and len(events) == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


# A run stopped after a frame's last iteration leaves no state to resume (it once left one that the
# continuing run refused with a warning, making the frame again).
@pytest.mark.filterwarnings("error::nst.errors.NSTWarning")
def test_multi_pass_alternates_and_continues(clip, vgg19_onnx, tmp_path):
    """Two passes: forward, then backward from the last frame; a run stopped in the second pass goes
    on to the bytes of one that was not."""
    video = VideoSettings(later_iterations=2, passes=2)
    whole = tmp_path / "whole"
    _run(clip, whole, vgg19_onnx, video=video)
    lines = _lines(whole)
    assert [(line["pass"], line["frame"]) for line in lines] == [(1, f) for f in range(1, 9)] + [
        (2, f) for f in range(8, 0, -1)
    ]
    assert lines[0]["iterations"] == 2 and lines[1]["iterations"] == 1  # the budgets spread over the passes

    def stop(event):
        if getattr(event, "kind", "") == "step" and (event.pass_index, event.frame) == (2, 4):
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(VideoInterrupted):
        _run(clip, out, vgg19_onnx, video=video, callback=stop)
    _run(clip, out, vgg19_onnx, video=video)
    assert _frames(out) == _frames(whole)


def test_long_term_frames_get_disjoint_weights(clip, vgg19_onnx):
    """Frame 4 with --long-term 1,2,4 is held to frames 3 and 2 (frame 0 is before the clip), starts
    from frame 3's output warped, and the farther frame weighs only where the nearer cannot see."""
    from nst.runtime.mirror import VGGMirror
    from nst.runtime.stylize import Stylizer
    from nst.video.driver import Shot, ShotFrames, plan_frame
    from nst.video.flow import FlowCache

    session = Stylizer(VGGMirror.from_onnx(vgg19_onnx), config=CONFIG)
    config = session.resolve(CONFIG)  # loss scale auto settled for the model, as stylize_video does
    video = VideoSettings(long_term=(4, 1, 2)).resolved(config)
    shot = Shot(index=0, clip=0, source=str(clip / "pan"), start=0, stop=8, size=(48, 64), config=config, video=video)
    rng = np.random.default_rng(0)
    outputs = {f: torch.from_numpy(rng.uniform(0, 255, (1, 3, 48, 64)).astype(np.float32)) for f in range(3)}
    cache = FlowCache(clip / "flows")
    plan = plan_frame(shot, 1, 3, frames=ShotFrames(shot), outputs=outputs, cache=cache, session=session)
    (term,) = plan.terms
    assert len(term.targets) == 2 and plan.config.scales == 1 and plan.config.iterations == 1
    near, far = (t.mask[0, 0].numpy() for t in term.targets)
    assert np.all(near + far <= 1 + 1e-6) and far.sum() < near.sum()
    pair = cache.pair(ShotFrames(shot)[2], ShotFrames(shot)[3])
    from nst.video.warp import warp

    assert torch.equal(plan.initial, warp(outputs[2], pair.backward, fill=session.model.mean_pixel))


@pytest.mark.parametrize(
    "loss_scale, precision",
    [("reference", "fp32"),
     pytest.param("balanced", "bf16", marks=pytest.mark.skipif(not cpu_has_bf16(), reason="no bf16 units"))],
)  # fmt: skip
def test_the_temporal_term_runs_on_either_scale_and_precision(clip, vgg19_onnx, tmp_path, loss_scale, precision):
    events = []
    config = CONFIG.replace(loss_scale=loss_scale, precision=precision)
    _run(clip, tmp_path / "out", vgg19_onnx, config=config, source=str(clip / "pan" / "frame[0-2].png"),
         callback=events.append)  # fmt: skip
    steps = [e for e in events[1:] if e.kind == "step"]
    assert "temporal" not in steps[0].terms  # the first frame starts from noise, held to nothing
    for frame in (1, 2):  # later frames start at their target, and move off it where the style pulls
        first, second = (e.terms["temporal"] for e in steps if e.frame == frame)
        assert first == 0.0 and 0 < second < 1e3


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory):
    """4 frames panning over the astronaut, then a cut to 4 over the cat."""
    folder = tmp_path_factory.mktemp("cut")
    for i, frame in enumerate([*pan(4, (3, 1)), *pan(4, (-2, 1), "chelsea")]):
        Image.fromarray(frame).save(folder / f"{i:02d}.png")
    return folder


def test_a_cut_starts_a_new_shot_and_shots_run_on_workers(clip, two_shots, vgg19_onnx, tmp_path):
    """A hard cut splits the clip: the second shot starts from noise with the first frame's budget; two
    worker processes, a shot each, make the frames one process makes."""
    from nst.batch.execution import Execution

    one = tmp_path / "one"
    (result,) = _run(clip, one, vgg19_onnx, source=two_shots)
    assert result.shots == 2
    lines = _lines(one)
    assert [line["shot"] for line in lines] == [[1, 4]] * 4 + [[5, 8]] * 4
    assert [line["iterations"] for line in lines] == [4, 2, 2, 2] * 2
    two = tmp_path / "two"
    _run(clip, two, vgg19_onnx, source=two_shots, execution=Execution(workers=2))
    assert sorted(_frames(two)) == sorted(_frames(one))
    # Both shots went to the pool (which worker takes which is the pool's choice: under load one may take both).
    assert 1 <= len({line["worker"] for line in _lines(two)}) <= 2
    for name in _frames(one):  # a thread a worker against two here: the convolutions may round apart
        a, b = (np.asarray(Image.open(folder / name), dtype=np.int16) for folder in (one, two))
        assert np.abs(a - b).max() <= 2 and (a != b).mean() < 0.01, name


@pytest.mark.slow
def test_shots_run_on_a_local_ray_instance(clip, two_shots, vgg19_onnx, tmp_path):
    """Each shot a Ray task, its frames sent along (no shared files assumed), written as they return."""
    ray = pytest.importorskip("ray")
    from nst.batch.execution import RAY_LOCAL, Execution

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        (result,) = _run(clip, tmp_path / "ray", vgg19_onnx, source=two_shots, execution=Execution(ray=RAY_LOCAL))
    finally:
        ray.shutdown()
    assert result.complete and result.shots == 2 and len(_frames(tmp_path / "ray")) == 8
    lines = _lines(tmp_path / "ray")
    assert sorted(line["frame"] for line in lines) == list(range(1, 9))  # the shots' lines interleave as they return
    assert sorted({tuple(line["shot"]) for line in lines}) == [(1, 4), (5, 8)]
