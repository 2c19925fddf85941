"""Each stylize loss against a value computed by hand on a tiny tensor, and the colour modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nst.runtime.colors import match_color_statistics, preserve_colors, rgb_to_ycbcr
from nst.runtime.losses import content_loss, gram, normalized, style_layer_weights, style_loss, tv_loss
from nst.runtime.stylize import StylizeConfig, initial_image, make_objective, stage_sizes


def test_gram_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # C=2, H=1, W=2
    # F F^T = [[1+4, 3+8], [3+8, 9+16]], divided by C*H*W = 4
    assert torch.equal(gram(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)


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


class _FakeModel:
    """Features that are simple functions of the image, so the objective can be checked by hand."""

    def __call__(self, image, layers, checkpoint=False):
        return {name: image * (i + 1) for i, name in enumerate(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1",
                                                                 "relu4_2", "relu5_2")) if name in layers}


def test_objective_combines_terms_with_the_reference_weights():
    torch.manual_seed(0)
    content = torch.rand(1, 3, 4, 5) * 255
    image = torch.rand(1, 3, 4, 5) * 255
    styles = [{n: torch.rand(1, 3, 3) * 1e3 for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}
              for _ in range(2)]
    config = StylizeConfig(content_weight=5, content_weight_blend=0.25, style_weight=7, tv_weight=3,
                           style_layer_weight_exp=2.0)
    blend = normalized((3.0, 1.0))
    with torch.no_grad():
        objective = make_objective(_FakeModel(), content, styles, blend, config)
    total, (c, s, t) = objective(image)

    feats = _FakeModel()(image, ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2", "relu5_2"))
    targets = _FakeModel()(content, ("relu4_2", "relu5_2"))
    want_c = 5 * (0.25 * ((feats["relu4_2"] - targets["relu4_2"]) ** 2).mean()
                  + 0.75 * ((feats["relu5_2"] - targets["relu5_2"]) ** 2).mean())
    weights = [w / 31 for w in (1, 2, 4, 8, 16)]
    want_s = 7 * sum(
        w * sum(b * ((gram(feats[n]) - style[n]) ** 2).mean() for b, style in zip((0.75, 0.25), styles))
        for w, n in zip(weights, ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
    )
    want_t = 3 * tv_loss(image)
    for got, want in ((c, want_c), (s, want_s), (t, want_t), (total, want_c + want_s + want_t)):
        assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_zero_weights_drop_terms():
    content = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        objective = make_objective(_FakeModel(), content, [], (1.0,), StylizeConfig(content_weight=0, tv_weight=0))
    total, parts = objective(torch.rand(1, 3, 4, 4))
    assert total.item() == 0 and all(p.item() == 0 for p in parts)


def test_initial_image_follows_the_reference():
    content = torch.full((1, 3, 2, 2), 100.0)
    start = torch.full((1, 3, 2, 2), 200.0)
    mean = torch.tensor([120.0, 110.0, 100.0]).reshape(1, 3, 1, 1)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    noise = torch.randn((1, 3, 2, 2), generator=gen()) * 0.256
    # no --initial: pure noise around the mean pixel
    assert torch.allclose(initial_image(content, None, None, mean, gen()), mean + noise)
    # --initial alone: exactly that image
    assert torch.equal(initial_image(content, start, None, mean, gen()), start)
    # a noise blend mixes in mean-subtracted space
    assert torch.allclose(initial_image(content, start, 0.25, mean, gen()), (start - mean) * 0.75 + noise * 0.25 + mean)
    assert torch.allclose(initial_image(content, None, 0.5, mean, gen()), (content - mean) * 0.5 + noise * 0.5 + mean)


def test_stage_sizes():
    assert stage_sizes((400, 300), 1, 128) == [(400, 300)]
    assert stage_sizes((512, 256), 3, 128) == [(128, 64), (256, 128), (512, 256)]
    assert stage_sizes((512, 256), 0, 128) == [(128, 64), (256, 128), (512, 256)]  # one per octave
    assert stage_sizes((100, 80), 3, 128) == [(100, 80)]  # already small


def _mid_tone(seed: int, size=(24, 16)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(70, 190, (size[1], size[0], 3), dtype=np.uint8))


def test_luminance_keeps_content_chroma_and_stylized_luma():
    content, stylized = _mid_tone(0), _mid_tone(1)
    out = preserve_colors(stylized, content, "luminance")
    got, want = rgb_to_ycbcr(np.asarray(out, float)), rgb_to_ycbcr(np.asarray(content, float))
    assert np.abs(got[..., 1:] - want[..., 1:]).max() < 1.5  # 8-bit rounding only
    assert np.abs(got[..., 0] - rgb_to_ycbcr(np.asarray(stylized, float))[..., 0]).max() < 1.5


def test_histogram_matches_mean_and_covariance():
    rng = np.random.default_rng(0)
    pixels = rng.normal(0, 1, (5000, 3)) @ np.array([[30, 5, 0], [0, 20, 3], [2, 0, 10]]) + 40
    reference = rng.normal(0, 1, (4000, 3)) @ np.array([[10, 0, 4], [3, 25, 0], [0, 6, 15]]) + 120
    out = match_color_statistics(pixels, reference)
    assert np.allclose(out.mean(0), reference.mean(0), atol=1e-6)
    assert np.allclose(np.cov(out, rowvar=False), np.cov(reference, rowvar=False), rtol=1e-3, atol=1e-2)
    image = preserve_colors(_mid_tone(1), _mid_tone(0), "histogram")
    assert image.size == (24, 16) and image.mode == "RGB"
