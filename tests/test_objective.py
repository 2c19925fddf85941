"""The objective: its terms combine with the reference's weights, zero weights drop work, a new
term plugs in, and bf16 convolutions stay close to float32."""

from __future__ import annotations

import pytest
import torch

from nst.contract import gram
from nst.models.layers import STYLE_LAYERS
from nst.runtime.config import StylizeConfig
from nst.runtime.device import autocast, cpu_has_bf16
from nst.runtime.losses import normalized, tv_loss
from nst.runtime.objective import Objective, TVTerm, objective_terms

ALL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1", "relu5_2")


class _FakeLayer:
    def __init__(self, name: str):
        self.name = name


class _FakeModel:
    """Features that are simple functions of the image, so the objective can be checked by hand."""

    table = tuple(_FakeLayer(name) for name in ALL_LAYERS)

    def __init__(self):
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, image, layers, checkpoint=False):
        self.calls.append(tuple(layers))
        return {name: image * (i + 1) for i, name in enumerate(ALL_LAYERS) if name in layers}


def _style_grams(n: int = 2):
    return [{name: torch.rand(1, 3, 3) * 1e3 for name in STYLE_LAYERS} for _ in range(n)]


def test_objective_combines_terms_with_the_reference_weights():
    torch.manual_seed(0)
    model = _FakeModel()
    content, image = torch.rand(1, 3, 4, 5) * 255, torch.rand(1, 3, 4, 5) * 255
    styles = _style_grams()
    config = StylizeConfig(
        content_weight=5,
        content_weight_blend=0.25,
        style_weight=7,
        tv_weight=3,
        style_layer_weight_exp=2.0,
        loss_scale="reference",
    )
    objective = Objective(model, objective_terms(model, content, styles, normalized((3.0, 1.0)), config))
    total, terms = objective(image)

    feats = _FakeModel()(image, ALL_LAYERS)
    targets = _FakeModel()(content, ("relu4_2", "relu5_2"))
    want_c = 5 * (
        0.25 * ((feats["relu4_2"] - targets["relu4_2"]) ** 2).mean()
        + 0.75 * ((feats["relu5_2"] - targets["relu5_2"]) ** 2).mean()
    )
    weights = [w / 31 for w in (1, 2, 4, 8, 16)]
    want_s = 7 * sum(
        w * sum(b * ((gram(feats[n]) - style[n]) ** 2).mean() for b, style in zip((0.75, 0.25), styles))
        for w, n in zip(weights, STYLE_LAYERS)
    )
    want_t = 3 * tv_loss(image)
    assert list(terms) == ["content", "style", "tv"]
    for got, want in (
        (terms["content"], want_c),
        (terms["style"], want_s),
        (terms["tv"], want_t),
        (total, want_c + want_s + want_t),
    ):
        assert got.item() == pytest.approx(want.item(), rel=1e-5)
    # One forward pass per evaluation, in network order, for every layer a term needs.
    assert model.calls[-1] == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1", "relu5_2")


def test_zero_weights_drop_layers_from_the_pass():
    model = _FakeModel()
    content = torch.rand(1, 3, 4, 4)
    config = StylizeConfig(content_weight=0, tv_weight=0, style_weight=0, loss_scale="reference")
    objective = Objective(model, objective_terms(model, content, _style_grams(1), (1.0,), config))
    total, terms = objective(torch.rand(1, 3, 4, 4))
    assert total.item() == 0 and all(t.item() == 0 for t in terms.values())
    assert objective.layers == () and model.calls == []  # no content pass, no forward pass
    only_content = Objective(
        model, objective_terms(model, content, [], (), StylizeConfig(content_weight_blend=1, loss_scale="reference"))
    )
    assert only_content.layers == ("relu4_2",)


class _TemporalTerm:
    """A term the loop has never heard of: pull the image towards a previous frame."""

    name = "temporal"
    layers = ("relu2_1",)  # also needs a layer, to check it joins the shared pass

    def __init__(self, previous: torch.Tensor, weight: float):
        self.previous, self.weight = previous, weight

    def __call__(self, image, features):
        return self.weight * (image - self.previous).pow(2).mean() + 0 * features["relu2_1"].sum()


def test_a_new_term_plugs_in(vgg19_onnx):
    from nst.runtime.mirror import VGGMirror

    mirror = VGGMirror.from_onnx(vgg19_onnx)
    previous = torch.full((1, 3, 20, 24), 128.0)
    objective = Objective(mirror, [TVTerm(weight=1.0), _TemporalTerm(previous, 2.0)])
    image = (torch.rand(1, 3, 20, 24) * 255).requires_grad_(True)
    total, terms = objective(image)
    assert objective.layers == ("relu2_1",) and list(terms) == ["tv", "temporal"]
    assert terms["temporal"].item() == pytest.approx(2.0 * (image - previous).pow(2).mean().item(), rel=1e-6)
    total.backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_terms_need_distinct_names():
    with pytest.raises(ValueError, match="distinct names"):
        Objective(_FakeModel(), [TVTerm(1.0), TVTerm(2.0)])


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 matrix units (AMX or AVX512-BF16)")
def test_bf16_autocast_stays_close_to_fp32(vgg19_onnx):
    """Mixed precision (bf16 convolutions, float32 Grams and losses) on the CPU: the loss and
    its gradient stay close to float32's."""
    from nst.runtime.mirror import VGGMirror

    mirror = VGGMirror.from_onnx(vgg19_onnx)
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 32, 40, generator=generator) * 255
    style = torch.rand(1, 3, 36, 36, generator=generator) * 255
    with torch.no_grad():
        out = mirror(style, layers=STYLE_LAYERS, grams=STYLE_LAYERS)
    grams = [{name: out[f"gram_{name}"] for name in STYLE_LAYERS}]
    start = content + torch.randn(content.shape, generator=generator) * 20
    totals, grads = {}, {}
    for precision in ("fp32", "bf16"):
        config = StylizeConfig(precision=precision, loss_scale="reference")
        objective = Objective(
            mirror,
            objective_terms(mirror, content, grams, (1.0,), config),
            precision=autocast(torch.device("cpu"), precision),
        )
        image = start.clone().requires_grad_(True)
        total = objective(image)[0]
        total.backward()
        totals[precision], grads[precision] = total.item(), image.grad.reshape(-1)
    cosine = float(torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0))
    print(f"bf16 vs fp32: loss {totals['bf16'] / totals['fp32'] - 1:+.1e}, gradient cosine {cosine:.5f}")
    assert abs(totals["bf16"] / totals["fp32"] - 1) <= 0.01
    assert cosine >= 0.99


# Powers of two: scaling is exact in floating point, so "the same image" can be asked bit for bit.
LAYER_SCALES = {"conv1_1": 4.0, "conv1_2": 0.5, "conv2_1": 8.0, "conv3_1": 0.25, "conv3_3": 2.0, "conv4_1": 16.0,
                "conv4_2": 0.125, "conv5_1": 4.0}  # fmt: skip


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_balanced_loss_is_invariant_to_each_layers_activation_scale(make_mat, tmp_path, optimizer):
    """The same network with every layer's activations scaled by a different factor: under
    --loss-scale balanced it gives the same image; under reference it does not."""
    import numpy as np
    from PIL import Image

    from nst.export.save import export_vgg_file
    from nst.models.synthetic import write_synthetic_mat
    from nst.runtime.stylize import stylize

    plain = tmp_path / "plain.onnx"
    export_vgg_file(make_mat(seed=0), plain)
    scaled = tmp_path / "scaled.onnx"
    export_vgg_file(write_synthetic_mat(tmp_path / "scaled.mat", seed=0, scales=LAYER_SCALES), scaled)
    rng = np.random.default_rng(0)
    content = Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    style = Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8))
    images = {}
    for scale in ("balanced", "reference"):
        config = StylizeConfig(size=0, iterations=6, seed=0, optimizer=optimizer, loss_scale=scale)
        for model in (plain, scaled):
            images[scale, model] = np.asarray(stylize(content, [style], config=config, model=model))
    assert np.array_equal(images["balanced", plain], images["balanced", scaled])
    assert not np.array_equal(images["reference", plain], images["reference", scaled])


def test_balanced_terms_are_relative_to_their_targets():
    model = _FakeModel()
    content = torch.rand(1, 3, 6, 7) * 255
    styles = _style_grams(1)
    terms = objective_terms(model, content, styles, (1.0,), StylizeConfig(loss_scale="balanced"))
    objective = Objective(model, terms)
    # The content image itself: its content term is 0; a black image's is exactly the weight.
    assert objective(content)[1]["content"].item() == 0
    black = torch.zeros_like(content)
    values = objective(black)[1]
    assert values["content"].item() == pytest.approx(1.0, rel=1e-5)  # mean((0 - P)^2) / mean(P^2)
    assert values["tv"].item() == 0
    assert objective(content)[1]["tv"].item() == pytest.approx(1.0, rel=1e-5)  # tv(content) / tv(content)
