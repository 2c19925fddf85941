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


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_matches_the_contract_in_value_and_gradient(channels_last):
    """The loop's Gram (own backward, layout-aware) against autograd through the contract's."""
    from nst.contract import gram as contract_gram
    from nst.runtime.losses import gram

    generator = torch.Generator().manual_seed(0)
    base = torch.randn(2, 8, 5, 7, generator=generator, dtype=torch.float64)
    weight = torch.randn(2, 8, 8, generator=generator, dtype=torch.float64)
    grads = []
    for fn in (contract_gram, gram):
        x = base.clone()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        value = fn(x)
        (value * weight).sum().backward()
        grads.append((value.detach(), x.grad))
        if fn is gram and channels_last:
            assert x.grad.is_contiguous(memory_format=torch.channels_last)  # the features' own layout
    (want, want_grad), (got, got_grad) = grads
    # float32 Grams (of float64 input here): float32's rounding, relative to the Gram's scale
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6 * float(want.abs().max()))
    # The incoming gradient is float32 (the Gram's dtype): float32's rounding again.
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=1e-5 * float(want_grad.abs().max()))


def test_gram_of_bf16_features_is_float32_with_a_bf16_gradient():
    from nst.contract import gram as contract_gram
    from nst.runtime.losses import gram

    x = (torch.rand(1, 16, 12, 12) * 10).bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    value = gram(x)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, contract_gram(x.float()), rtol=1e-6, atol=1e-6)
    value.sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_gram_gradient_of_bf16_features_is_the_float32_gradient_rounded_once():
    """The backward's product runs in float32: each element of the bf16 gradient is within half
    a bf16 step of the exact one, even where the sum over channels cancels (post-ReLU features
    against a residual of either sign), which a bf16 product does not achieve."""
    from nst.runtime.losses import gram

    generator = torch.Generator().manual_seed(0)
    exact = torch.rand(1, 64, 16, 16, generator=generator, dtype=torch.float64) * 10
    x = exact.bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weight = torch.randn(1, 64, 64, generator=generator)
    (gram(x) * weight).sum().backward()
    # the exact gradient of the same bf16 input: (W + W^T) F / (C*H*W), in float64
    f = x.detach().double().reshape(1, 64, 256)
    want = (((weight + weight.transpose(1, 2)).double() @ f) / (64 * 256)).reshape(1, 64, 16, 16)
    error = (x.grad.double() - want).abs()
    assert bool((error <= want.abs() * 2**-8 + 1e-12).all()), float((error / want.abs()).max())
