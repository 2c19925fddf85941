"""Regions: guides follow the network's maps, guided Grams reduce to the plain ones, the region
term reduces to the (blended) style term, does not care about the order of regions, keeps each
region's style where its receptive fields reach, and label maps and masks are read as users
draw them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nst.errors import ConfigError, ImageError
from nst.models.layers import STYLE_LAYERS
from nst.runtime.guides import Guide, RegionStyleTerm, guided_gram, guided_grams, mask_tensor, propagate, region_guides
from nst.runtime.losses import gram, style_layer_weights
from nst.runtime.mirror import VGGMirror
from nst.runtime.objective import StyleTerm
from nst.runtime.regions import check_partition, label_masks, read_mask

SHALLOW = ("relu1_1", "relu2_1", "relu3_1")  # receptive field 24 px: room to test locality


@pytest.fixture(scope="module")
def mirror(vgg19_onnx) -> VGGMirror:
    return VGGMirror.from_onnx(vgg19_onnx)


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, h, w, generator=generator) * 255).requires_grad_(True)


def _grams(mirror: VGGMirror, seed: int, layers=STYLE_LAYERS, size=(40, 40)) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        features = mirror(_image(*size, seed=seed).detach(), layers=layers)
    return {layer: gram(features[layer]) for layer in layers}


def _value_and_grad(term, mirror: VGGMirror, image: torch.Tensor) -> tuple[float, torch.Tensor]:
    image = image.detach().clone().requires_grad_(True)
    loss = term(image, mirror(image, layers=term.layers))
    loss.backward()
    return float(loss), image.grad.detach().clone()


@pytest.mark.parametrize("mode", ["soft", "inside"])
def test_guides_have_each_layers_shape(mirror, mode):
    image = _image(37, 53).detach()
    features = mirror(image, layers=STYLE_LAYERS)
    guides = propagate(torch.ones(1, 1, 37, 53), mirror.table, STYLE_LAYERS, mode=mode)
    for layer in STYLE_LAYERS:
        assert guides[layer].shape[-2:] == features[layer].shape[-2:], layer
        assert torch.equal(guides[layer], torch.ones_like(guides[layer]))  # a full region stays full


def test_an_all_ones_guide_gives_the_plain_gram(mirror):
    features = mirror(_image(32, 48).detach(), layers=("relu2_1",))["relu2_1"]
    guide = Guide.of(torch.ones(1, 1, *features.shape[-2:]))
    assert guide is not None and guide.area == 1.0 and guide.scale == 1.0
    torch.testing.assert_close(guided_gram(features, guide), gram(features), rtol=1e-6, atol=0)


def test_a_guided_gram_is_an_average_over_the_region(mirror):
    """A hard half mask: the guided Gram is the plain Gram of that half of the map."""
    features = mirror(_image(32, 48).detach(), layers=("relu3_1",))["relu3_1"]  # (1, 256, 8, 12)
    mask = torch.zeros(1, 1, 8, 12)
    mask[..., :5] = 1
    half = features[..., :5].contiguous()
    torch.testing.assert_close(guided_gram(features, Guide.of(mask)), gram(half), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["soft", "inside"])
def test_all_ones_mask_gives_exactly_the_unmasked_term(mirror, mode):
    targets = [_grams(mirror, seed=1)]
    weights = style_layer_weights(STYLE_LAYERS, 1.0)
    plain = StyleTerm(targets=targets, blend=(1.0,), layer_weights=weights, weight=500.0)
    guides = region_guides([torch.ones(1, 1, 40, 56)], mirror.table, STYLE_LAYERS, mode=mode)
    region = RegionStyleTerm(targets=targets, guides=guides, layer_weights=weights, weight=500.0)
    image = _image(40, 56, seed=5)
    value, grad = _value_and_grad(region, mirror, image)
    want, want_grad = _value_and_grad(plain, mirror, image)
    assert value == pytest.approx(want, rel=1e-6)
    torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=1e-6 * float(want_grad.abs().max()))


def test_constant_masks_give_the_blended_objective(mirror):
    """Masks 0.7 and 0.3 everywhere: the styles blended 0.7 / 0.3 over the whole image."""
    targets = [_grams(mirror, seed=1), _grams(mirror, seed=2)]
    weights = style_layer_weights(STYLE_LAYERS, 1.0)
    plain = StyleTerm(targets=targets, blend=(0.7, 0.3), layer_weights=weights, weight=1.0)
    masks = [torch.full((1, 1, 40, 56), 0.7), torch.full((1, 1, 40, 56), 0.3)]
    region = RegionStyleTerm(
        targets=targets,
        guides=region_guides(masks, mirror.table, STYLE_LAYERS, mode="soft"),
        layer_weights=weights,
        weight=1.0,
    )
    image = _image(40, 56, seed=6)
    assert _value_and_grad(region, mirror, image)[0] == pytest.approx(
        _value_and_grad(plain, mirror, image)[0], rel=1e-5
    )


def test_swapping_regions_with_their_styles_keeps_the_loss(mirror):
    targets = [_grams(mirror, seed=1), _grams(mirror, seed=2), _grams(mirror, seed=3)]
    masks = [torch.zeros(1, 1, 48, 48) for _ in range(3)]
    masks[0][..., :, :16], masks[1][..., :, 16:30], masks[2][..., :, 30:] = 1, 1, 1
    guides = region_guides(masks, mirror.table, STYLE_LAYERS, mode="soft")
    weights = style_layer_weights(STYLE_LAYERS, 1.0)
    image = _image(48, 48, seed=7)
    order = [2, 0, 1]
    a = RegionStyleTerm(targets=targets, guides=guides, layer_weights=weights, weight=1.0)
    b = RegionStyleTerm(
        targets=[targets[i] for i in order], guides=[guides[i] for i in order], layer_weights=weights, weight=1.0
    )
    va, ga = _value_and_grad(a, mirror, image)
    vb, gb = _value_and_grad(b, mirror, image)
    assert va == pytest.approx(vb, rel=1e-6)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5 * float(ga.abs().max()))  # summation order


@pytest.mark.parametrize("mode, reach", [("inside", 0), ("soft", 24)])
def test_the_gradient_outside_a_region_does_not_depend_on_its_style(mirror, mode, reach):
    """Region 1 is the left 40 columns. Changing its style changes the gradient only within its
    receptive fields' reach: none beyond the region itself when guides are eroded (inside), the
    shallow layers' 24 px receptive field twice (guide and features) when they are soft."""
    h, w, edge = 48, 112, 40
    left = torch.zeros(1, 1, h, w)
    left[..., :edge] = 1
    masks = [left, 1 - left]
    weights = style_layer_weights(SHALLOW, 1.0)
    guides = region_guides(masks, mirror.table, SHALLOW, mode=mode)
    image = _image(h, w, seed=8)
    grads = []
    for style in (1, 2):
        targets = [_grams(mirror, seed=style, layers=SHALLOW), _grams(mirror, seed=9, layers=SHALLOW)]
        term = RegionStyleTerm(targets=targets, guides=guides, layer_weights=weights, weight=1.0)
        grads.append(_value_and_grad(term, mirror, image)[1])
    differs = (grads[0] - grads[1]).abs().amax(dim=(0, 1, 2))  # per column
    outside = edge + 2 * reach
    assert float(differs[:edge].max()) > 0  # the style matters inside
    assert float(differs[outside:].max()) == 0.0


def test_labels_snap_jpeg_colours_and_order_regions_by_colour(tmp_path):
    array = np.zeros((60, 90, 3), dtype=np.uint8)
    array[:, :30] = (200, 30, 30)
    array[:, 30:60] = (20, 20, 220)
    array[:, 60:] = (250, 250, 250)
    path = tmp_path / "labels.jpg"
    Image.fromarray(array).save(path, quality=60)  # in-between colours at the edges
    masks, colours = label_masks(path, (30, 45))
    assert len(masks) == 3
    found = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in colours]
    for colour, drawn in zip(found, [(20, 20, 220), (200, 30, 30), (250, 250, 250)]):  # ascending: blue, red, white
        assert max(abs(a - b) for a, b in zip(colour, drawn)) <= 8
    np.testing.assert_allclose(np.sum(masks, axis=0), 1.0, atol=1e-5)
    assert masks[0][:, 18:27].mean() > 0.95 and masks[1][:, :12].mean() > 0.95


def test_index_label_maps(tmp_path):
    labels = np.zeros((20, 20), dtype=np.uint8)
    labels[10:] = 1
    Image.fromarray(labels, "L").save(tmp_path / "index.png")
    masks, _ = label_masks(tmp_path / "index.png", (20, 20))
    assert [float(m[:10].mean()) for m in masks] == [1.0, 0.0]


def test_masks_that_overlap_or_are_empty_are_refused():
    a, b = np.ones((8, 8), np.float32), np.zeros((8, 8), np.float32)
    b[2, 3] = 0.9
    with pytest.raises(ConfigError) as err:
        check_partition([a, b], ["a.jpg", "b.jpg"])
    assert str(err.value) == (
        "the style masks overlap: they sum to 1.90 at x=3, y=2 of the resized content (a.jpg, b.jpg); "
        "make them sum to at most 1 (soft values share a pixel)"
    )
    with pytest.raises(ConfigError, match=r"the region of b\.jpg is empty"):
        check_partition([a * 0.5, np.zeros((8, 8), np.float32)], ["a.jpg", "b.jpg"])


def test_masks_are_read_as_greyscale_weights(tmp_path):
    Image.fromarray(np.full((10, 20), 128, np.uint8), "L").save(tmp_path / "grey.png")
    np.testing.assert_allclose(read_mask(tmp_path / "grey.png", (5, 10), what="mask"), 128 / 255, atol=1e-6)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3], rgba[:2, :, 3] = 255, 255  # white, transparent in the lower half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert read_mask(tmp_path / "alpha.png", (4, 4), what="mask")[:2].min() == 1.0
    assert read_mask(tmp_path / "alpha.png", (4, 4), what="mask")[2:].max() == 0.0
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageError, match=r"^--style-mask .*notes\.txt is not a readable image"):
        read_mask(tmp_path / "notes.txt", (4, 4), what="--style-mask")


def test_mask_resizing_keeps_a_partition(mirror):
    left = np.zeros((50, 70), np.float32)
    left[:, :33] = 1
    parts = [mask_tensor(m, (17, 23), torch.device("cpu")) for m in (left, 1 - left)]
    torch.testing.assert_close(parts[0] + parts[1], torch.ones(1, 1, 17, 23), rtol=0, atol=1e-6)


def test_guided_grams_backward_matches_autograd_of_the_formula():
    """The fused backward (one gradient, each region added into its box) against autograd of
    (F m)(F m)^T / (C sum m^2) written out, for soft, partly overlapping regions."""
    torch.manual_seed(0)
    features = torch.rand(1, 8, 12, 10).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    masks = [torch.zeros(1, 1, 12, 10), torch.zeros(1, 1, 12, 10)]
    masks[0][..., 2:9, 1:6] = torch.rand(7, 5)
    masks[1][..., 5:12, 4:10] = torch.rand(7, 6)
    guides = [Guide.of(m) for m in masks]
    weights = [torch.rand(1, 8, 8) for _ in masks]
    fused = sum((g * w).sum() for g, w in zip(guided_grams(features, guides), weights))
    (fused_grad,) = torch.autograd.grad(fused, features)

    def by_hand(mask):
        f = (features * mask).reshape(1, 8, -1)
        return torch.bmm(f, f.transpose(1, 2)) / (8 * mask.pow(2).sum())

    plain = sum((by_hand(m) * w).sum() for m, w in zip(masks, weights))
    (plain_grad,) = torch.autograd.grad(plain, features)
    assert float(fused) == pytest.approx(float(plain), rel=1e-5)
    torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-4, atol=1e-6)
