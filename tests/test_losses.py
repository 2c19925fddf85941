"""Each stylize loss against a value computed by hand on a tiny tensor."""

from __future__ import annotations

import pytest
import torch

from nst.runtime.losses import content_loss, normalized, style_layer_weights, style_loss, tv_loss


def test_content_loss_by_hand():
    f = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    assert content_loss(f, torch.zeros_like(f)).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert content_loss(f, f).item() == 0


def test_style_loss_by_hand():
    g = torch.tensor([[[1.0, 2.0], [2.0, 5.0]]])
    a = torch.tensor([[[0.0, 0.0], [2.0, 3.0]]])
    assert style_loss(g, a).item() == pytest.approx((1 + 4 + 0 + 4) / 4)


def test_tv_loss_by_hand():
    x = torch.tensor([[0.0, 1.0], [3.0, 5.0]]).reshape(1, 1, 2, 2)
    # vertical differences 3, 4 -> mean 12.5; horizontal 1, 2 -> mean 2.5
    assert tv_loss(x).item() == pytest.approx(15.0)


def test_layer_and_blend_weights():
    layers = ("a", "b", "c", "d", "e")
    assert style_layer_weights(layers, 1.0) == pytest.approx(dict.fromkeys(layers, 0.2))
    assert list(style_layer_weights(layers, 2.0).values()) == pytest.approx([w / 31 for w in (1, 2, 4, 8, 16)])
    assert normalized((1.0, 3.0)) == (0.25, 0.75)
