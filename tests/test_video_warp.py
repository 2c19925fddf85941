"""Warping along the flow: a static clip warps to itself, a known shift moves the image and fills what
comes from outside with the mean pixel, DIS flow brings one frame onto the next; and the multi-pass
helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nst.video.multipass import blend_init, pass_order
from nst.video.warp import warp

from video_clips import pan

MEAN = (123.68, 116.779, 103.939)  # VGG's mean pixel


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame.astype(np.float32).transpose(2, 0, 1))[None]  # (1, 3, H, W)


def test_a_static_clip_warps_to_itself():
    image = _tensor(pan(1)[0])
    out = warp(image, np.zeros((96, 128, 2), np.float32), fill=MEAN)
    assert out.dtype == torch.float32 and torch.equal(out, image)  # edges included: nothing is filled


@pytest.mark.parametrize("dx, dy", [(3, 0), (-2, 1)])
def test_a_shift_moves_the_image_and_fills_the_strip_with_the_mean_pixel(dx, dy):
    image = _tensor(pan(1)[0]).double()
    flow = np.zeros((96, 128, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    out = warp(image, flow, fill=torch.tensor(MEAN).reshape(1, 3, 1, 1))
    h, w = 96, 128
    ys, xs = slice(max(-dy, 0), h - max(dy, 0)), slice(max(-dx, 0), w - max(dx, 0))  # where p + flow is inside
    src_ys, src_xs = slice(ys.start + dy, ys.stop + dy), slice(xs.start + dx, xs.stop + dx)
    torch.testing.assert_close(out[..., ys, xs], image[..., src_ys, src_xs], atol=1e-9, rtol=0)
    outside = torch.ones(h, w, dtype=torch.bool)
    outside[ys, xs] = False
    filled = out[0][:, outside]  # (3, N)
    assert filled.shape[1] > 0 and torch.equal(filled, torch.tensor(MEAN).double()[:, None].expand_as(filled))


def test_half_a_pixel_past_the_edge_takes_the_edge_value():
    image = _tensor(pan(1)[0])
    flow = np.zeros((96, 128, 2), np.float32)
    flow[:, -1, 0] = 0.4  # the last column samples 0.4 px past the last centre: still on the frame
    flow[:, 0, 0] = -0.6  # the first samples 0.6 px before the first centre: outside
    out = warp(image, flow, fill=MEAN)
    torch.testing.assert_close(out[..., -1], image[..., -1])
    assert torch.equal(out[0, :, :, 0], torch.tensor(MEAN)[:, None].expand(3, 96))


def test_dis_flow_warps_the_previous_frame_onto_the_next():
    pytest.importorskip("cv2")
    from nst.video.flow import frame_pair

    earlier, later = pan(2, (3, 2))
    pair = frame_pair(earlier, later)
    warped = warp(_tensor(earlier), pair.backward, fill=MEAN)[0].numpy().transpose(1, 2, 0)  # (H, W, 3)
    reliable = pair.reliable_later > 0.5
    error = np.abs(warped - later.astype(np.float32)).mean(axis=-1)  # (H, W)
    assert error[reliable].mean() < 2.0  # in 0-255 levels
    unwarped = np.abs(earlier.astype(np.float32) - later).mean(axis=-1)
    assert unwarped[reliable].mean() > 10 * error[reliable].mean()  # the warp did the work


def test_a_flow_of_another_size_is_refused():
    with pytest.raises(ValueError, match=r"the flow is \(48, 64, 2\), the image \(1, 3, 96, 128\)"):
        warp(_tensor(pan(1)[0]), np.zeros((48, 64, 2)), fill=MEAN)


def test_multipass_blends_by_mask_and_weight():
    own = torch.full((1, 3, 4, 5), 10.0)
    prev, following = torch.full_like(own, 40.0), torch.full_like(own, 100.0)
    mask = np.zeros((4, 5), np.float32)
    mask[:, 2:] = 1.0
    blended = blend_init(own, [(prev, mask, 1.0), (following, np.ones((4, 5)), 0.0)])
    assert torch.equal(blended[..., :2], own[..., :2])  # where the mask is 0 the frame keeps its own
    assert torch.allclose(blended[..., 2:], torch.tensor(25.0))  # (10 + 1 * 40) / (1 + 1)
    both = blend_init(own, [(prev, mask, 1.0), (following, mask, 1.0)])
    assert torch.allclose(both[..., 2:], torch.tensor(50.0))  # (10 + 40 + 100) / 3


def test_passes_alternate_direction():
    assert list(pass_order(4, 1)) == [0, 1, 2, 3] and list(pass_order(4, 2)) == [3, 2, 1, 0]
    assert list(pass_order(4, 3)) == [0, 1, 2, 3]
