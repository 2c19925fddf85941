"""Clips in and out: video files (mp4, mov, webm, gif) and frame folders keep their frame count, rate and
sound through a round trip; odd sizes, rotation and natural order; every mistake is one line."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

import av

from nst.errors import NSTWarning, OutputError, VideoError
from nst.video.reading import iter_frames, probe_clip, read_clip, upright
from nst.video.writing import frame_path, write_frames, write_video

from video_clips import SIZE, make_video, pan

NTSC = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def frames():
    return pan(8, (3, 1))


@pytest.fixture(scope="module")
def with_sound(frames, tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("src") / "sound.mp4", frames, fps=NTSC, audio=True)


def _audio_codecs(path):
    with av.open(str(path)) as container:
        return [s.codec_context.name for s in container.streams.audio]


def _close(a, b, tolerance=8.0):
    """Lossy codecs: the mean absolute difference of two clips' frames, in 0-255 levels, is small."""
    return len(a) == len(b) and max(np.abs(x.astype(float) - y).mean() for x, y in zip(a, b)) < tolerance


def test_read_a_video_with_its_rate_and_sound(frames, with_sound):
    clip = read_clip(with_sound)
    assert len(clip.frames) == 8 and clip.fps == NTSC and clip.audio and clip.source == with_sound
    assert clip.frames[0].shape == (*SIZE, 3) and clip.frames[0].dtype == np.uint8
    assert _close(clip.frames, frames)
    info = probe_clip(with_sound)
    assert (info.frames, info.size, info.fps, info.audio) == (8, SIZE, NTSC, True)


@pytest.mark.parametrize("suffix, audio", [(".mp4", "aac"), (".mov", "aac"), (".webm", "opus")])
def test_a_round_trip_keeps_frames_rate_and_sound(frames, with_sound, tmp_path, suffix, audio):
    out = write_video(read_clip(with_sound).frames, tmp_path / f"out{suffix}", fps=NTSC, audio_from=with_sound)
    clip = read_clip(out)
    assert len(clip.frames) == 8 and clip.fps == NTSC and clip.audio
    assert _audio_codecs(out) == [audio]  # AAC is copied into mp4 and mov, re-encoded to Opus for webm
    assert _close(clip.frames, frames, tolerance=10.0)
    assert probe_clip(out).frames == 8  # webm's header has no count: the packets are counted
    with av.open(str(out)) as container:  # the sound is cut where the video ends, to within a packet
        seconds = sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))
    assert seconds == pytest.approx(8 / NTSC, abs=0.03)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]  # no temporary file left


def test_a_silent_source_gives_a_silent_video(frames, tmp_path):
    silent = make_video(tmp_path / "silent.mp4", frames, fps=Fraction(24))
    clip = read_clip(silent)
    assert not clip.audio and clip.fps == 24
    out = write_video(clip.frames, tmp_path / "out.mp4", fps=clip.fps, audio_from=silent)
    assert _audio_codecs(out) == [] and len(read_clip(out).frames) == 8


def test_a_gif_round_trip_and_its_missing_sound(frames, with_sound, tmp_path):
    with pytest.warns(NSTWarning, match=r"^a GIF has no sound; the audio of .*sound.mp4 is left out$"):
        out = write_video(frames, tmp_path / "out.gif", fps=25, audio_from=with_sound)
    clip = read_clip(out)
    assert len(clip.frames) == 8 and clip.fps == 25 and not clip.audio
    assert _close(clip.frames, frames)  # one adaptive palette per frame


def test_odd_sizes_repeat_the_last_row_and_column(frames, tmp_path):
    odd = [f[:95, :127] for f in frames]
    clip = read_clip(write_video(odd, tmp_path / "odd.mp4", fps=24))
    assert clip.frames[0].shape == (96, 128, 3)
    first = clip.frames[0].astype(float)
    assert np.abs(first[:, 127] - first[:, 126]).mean() < 4 and np.abs(first[95] - first[94]).mean() < 4
    assert _close([f[:95, :127] for f in clip.frames], odd)


def test_frames_are_read_in_natural_order_from_a_folder_or_a_glob(frames, tmp_path):
    from PIL import Image

    for index in (1, 2, 10):  # frame10 sorts after frame2
        Image.fromarray(frames[index % 8]).save(tmp_path / f"frame{index}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    want = [frames[1], frames[2], frames[10 % 8]]
    for source in (tmp_path, str(tmp_path / "frame*.png")):
        clip = read_clip(source)
        assert clip.fps is None and not clip.audio and clip.source is None
        assert all(np.array_equal(a, b) for a, b in zip(clip.frames, want)) and len(clip.frames) == 3
    assert probe_clip(tmp_path).frames == 3


def test_numbered_png_frames_round_trip_exactly(frames, tmp_path):
    paths = write_frames(frames, tmp_path / "out")
    assert paths == [frame_path(tmp_path / "out", i) for i in range(1, 9)] and paths[0].name == "00001.png"
    assert all(np.array_equal(a, b) for a, b in zip(read_clip(tmp_path / "out").frames, frames))
    with pytest.raises(OutputError, match=r"00001.png exists; pass --overwrite to replace it$"):
        write_frames(frames[:1], tmp_path / "out")


def test_frames_resize_on_reading(with_sound):
    small = list(iter_frames(with_sound, size=(48, 64)))
    assert len(small) == 8 and small[0].shape == (48, 64, 3)


@pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"), reason="PyAV < 17.1")
def test_a_rotated_video_reads_upright(tmp_path):
    coded = np.zeros((32, 64, 3), np.uint8)
    coded[:, :8] = 255  # a bright band down the left edge of the coded (landscape) frame
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)  # as a phone held upright records: show it turned clockwise
        for _ in range(2):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(coded, format="rgb24")))
        out.mux(stream.encode(None))
    frame = read_clip(path).frames[0]
    assert frame.shape == (64, 32, 3)  # portrait
    assert frame[:6].mean() > 200 and frame[10:].mean() < 30  # the left edge, turned clockwise, is the top


def test_upright_turns_by_quarter_turns():
    frame = np.arange(6, dtype=np.uint8).reshape(2, 3, 1).repeat(3, axis=2)
    assert np.array_equal(upright(frame, 0), frame)
    assert np.array_equal(upright(frame, 90), np.rot90(frame))  # counter-clockwise
    assert np.array_equal(upright(frame, -90), np.rot90(frame, -1))
    assert np.array_equal(upright(frame, 180), upright(frame, -180))


def test_unreadable_sources_are_one_line(tmp_path, with_sound, frames):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(with_sound.read_bytes()[:3000])
    sound_only = tmp_path / "sound.m4a"
    with av.open(str(sound_only), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="fltp", layout="mono")
        silence.sample_rate, silence.pts = 48000, 0
        out.mux(stream.encode(silence))
        out.mux(stream.encode(None))
    (tmp_path / "empty").mkdir()
    (tmp_path / "mixed").mkdir()
    from PIL import Image

    Image.fromarray(frames[0]).save(tmp_path / "mixed" / "1.png")
    Image.fromarray(frames[0][:50]).save(tmp_path / "mixed" / "2.png")
    cases = {
        bad: r"^cannot read video .*bad.mp4 \(Invalid data found when processing input\); is it a complete video file\?$",
        truncated: r"^cannot read video .*truncated.mp4 \(.*\); is it a complete video file\?$",
        sound_only: r"^.*sound.m4a has no video stream$",
        tmp_path / "missing.mp4": r"^video not found: .*missing.mp4$",
        tmp_path / "mixed" / "1.png": r"1.png is a single image; give a video file, a folder of frames or a glob",
        tmp_path / "empty": r"^folder .*empty holds no frames \(.png, .jpg",
        str(tmp_path / "nothing*.png"): r"nothing\*.png matches no frame",
        tmp_path / "mixed": r"^frame 2 of .*mixed is 128x50 px but the first is 128x96; the frames of a clip",
    }
    for source, message in cases.items():
        with pytest.raises(VideoError, match=message):
            read_clip(source)


def test_writing_refuses_in_one_line_and_leaves_nothing(frames, tmp_path):
    with pytest.raises(
        OutputError, match=r"^cannot tell the video format of .*out.avi; use one of .mp4, .mov, .webm, .gif$"
    ):
        write_video(frames, tmp_path / "out.avi", fps=24)
    write_video(frames, tmp_path / "out.mp4", fps=24)
    with pytest.raises(OutputError, match=r"out.mp4 exists; pass --overwrite to replace it$"):
        write_video(frames, tmp_path / "out.mp4", fps=24)

    def failing():
        yield from frames[:3]
        raise RuntimeError("the stylizer stopped")

    with pytest.raises(RuntimeError, match="the stylizer stopped"):
        write_video(failing(), tmp_path / "half.mp4", fps=24)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no half-written file, no temporary


def test_without_pyav_one_line_says_what_to_install(monkeypatch, with_sound):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VideoError, match=r"^reading and writing video needs PyAV; pip install 'nst\[video\]'$"):
        read_clip(with_sound)


def test_importing_nst_loads_neither_opencv_nor_pyav():
    import subprocess
    import sys

    code = "import sys, nst, nst.video; print(sorted({'cv2', 'av', 'torch'} & set(sys.modules)))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_a_frame_rate_out_of_range_is_refused(frames, tmp_path):
    from nst.errors import ConfigError

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match=r"^a frame rate must be between 0 and 1000 fps, got 0$"):
            write_video(frames, tmp_path / "out.mp4", fps=0)
