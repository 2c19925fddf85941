"""Optical flow: DIS and Farnebäck recover a known pan, and the per-pair cache serves a second run
without estimating anything."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from nst.errors import VideoError
from nst.video import flow as flow_module
from nst.video.flow import FlowCache, FlowSettings, estimate_flow, frame_key, frame_pair

from video_clips import pan

MARGIN = 8  # px left out at the borders, where the pan brings in new content


@pytest.mark.parametrize("shift", [(3, 0), (3, 2), (-2, 1)])
@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_dis_recovers_a_shift_within_a_tenth_of_a_pixel(shift, name):
    earlier, later = pan(2, shift, name)
    backward = estimate_flow(later, earlier)  # later(p) = earlier(p + shift)
    inner = backward[MARGIN:-MARGIN, MARGIN:-MARGIN]
    assert np.abs(inner - np.array(shift)).mean(axis=(0, 1)).max() < 0.1
    assert np.abs(np.median(inner, axis=(0, 1)) - np.array(shift)).max() < 0.1
    forward = estimate_flow(earlier, later)
    assert np.abs(np.median(forward[MARGIN:-MARGIN, MARGIN:-MARGIN], axis=(0, 1)) + np.array(shift)).max() < 0.1


def test_farneback_recovers_the_shift_too():
    earlier, later = pan(2, (3, 2))
    backward = estimate_flow(later, earlier, settings=FlowSettings(method="farneback"))
    assert np.abs(np.median(backward[MARGIN:-MARGIN, MARGIN:-MARGIN], axis=(0, 1)) - np.array([3, 2])).max() < 0.1


def test_a_pair_holds_both_flows_and_both_masks():
    earlier, later = pan(2, (3, 0))
    pair = frame_pair(earlier, later)
    assert pair.forward.shape == pair.backward.shape == (96, 128, 2)
    assert pair.reliable_later.shape == pair.reliable_earlier.shape == (96, 128)
    # New content enters the later frame on the right, and leaves the earlier frame on the left.
    assert pair.reliable_later[:, -3:].max() == 0 and pair.reliable_later[:, :60].mean() > 0.95
    assert pair.reliable_earlier[:, :3].max() == 0 and pair.reliable_earlier[:, -60:].mean() > 0.95


def test_the_cache_serves_a_second_run_without_estimating(tmp_path, monkeypatch):
    earlier, later = pan(2, (3, 0))
    first = FlowCache(tmp_path / "flow").pair(earlier, later)

    def refuse(*args, **kwargs):
        raise AssertionError("flow estimated although it was cached")

    monkeypatch.setattr(flow_module, "estimate_flow", refuse)
    cache = FlowCache(tmp_path / "flow")  # a new run, as the next style's
    again = cache.pair(earlier, later, keys=(frame_key(earlier), frame_key(later)))
    assert (cache.hits, cache.misses) == (1, 0)
    for name in ("forward", "backward", "reliable_later", "reliable_earlier"):
        assert getattr(again, name).dtype == np.float32
        assert np.array_equal(getattr(first, name), getattr(again, name))  # estimated or read back: the same
    assert len(list((tmp_path / "flow").iterdir())) == 1  # nothing but the one pair, no temporary file


def test_the_cache_rounds_flows_and_masks_within_what_warping_notices(tmp_path):
    earlier, later = pan(2, (3, 2))
    exact = frame_pair(earlier, later)
    cached = FlowCache(tmp_path).pair(earlier, later)
    assert np.abs(cached.backward - exact.backward).max() < 0.005  # float16 below 4 px of motion
    assert np.abs(cached.reliable_later - exact.reliable_later).max() <= 0.5 / 255 + 1e-7
    # 10 bytes a pixel, and the zip headers.
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 96 * 128 * 10 + 4000


def test_the_cache_key_is_the_frames_and_the_settings(tmp_path):
    earlier, later = pan(2, (3, 0))
    cache = FlowCache(tmp_path)
    cache.pair(earlier, later)
    cache.pair(earlier, later, settings=FlowSettings(preset="fast"))  # other settings
    cache.pair(later, earlier)  # the other order is another pair
    other = later.copy()
    other[0, 0] ^= 1  # one pixel differs
    cache.pair(earlier, other)
    assert (cache.hits, cache.misses) == (0, 4)
    cache.pair(earlier, later, settings=FlowSettings(preset="fast"))
    assert (cache.hits, cache.misses) == (1, 4)


def test_an_unreadable_cache_file_is_estimated_again(tmp_path):
    earlier, later = pan(2, (3, 0))
    fresh = FlowCache(tmp_path).pair(earlier, later)
    (stored,) = tmp_path.iterdir()
    stored.write_bytes(b"not a zip")
    cache = FlowCache(tmp_path)
    again = cache.pair(earlier, later)
    assert (cache.hits, cache.misses) == (0, 1) and np.array_equal(fresh.backward, again.backward)
    assert FlowCache(tmp_path).pair(earlier, later) is not None and stored.stat().st_size > 1000  # rewritten


def test_without_opencv_one_line_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    earlier, later = pan(2, (3, 0))
    with pytest.raises(VideoError, match=r"^optical flow needs OpenCV; pip install 'nst\[video\]'$"):
        estimate_flow(later, earlier)
