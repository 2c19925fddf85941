"""The temporal term: its value against a numpy computation, no gradient where the mask is zero, its
balanced scale, coarse-to-fine stages, and a stylization it holds to the warped previous output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nst.runtime.config import StylizeConfig
from nst.runtime.device import cpu_has_bf16
from nst.runtime.loop import Step
from nst.video.temporal import TemporalTerm, temporal_term

MEAN = torch.tensor([123.68, 116.779, 103.939]).reshape(1, 3, 1, 1)


def _case(seed: int = 0, size: tuple[int, int] = (24, 32)):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 255, (1, 3, *size)).astype(np.float32)
    warped = [rng.uniform(0, 255, (1, 3, *size)).astype(np.float32) for _ in range(2)]
    masks = [rng.uniform(0, 1, size).astype(np.float32) for _ in range(2)]
    masks[0][:, : size[1] // 2] = 0  # the left half is occluded in the closest frame
    masks[1][: size[0] // 2] = 0
    return image, warped, masks


def test_the_value_is_the_weighted_masked_mean_square():
    image, warped, masks = _case()
    term = temporal_term([torch.from_numpy(w) for w in warped], masks, weight=7.0)
    value = term(torch.from_numpy(image), {})
    want = 7.0 * sum((m[None, None] * (image.astype(np.float64) - w) ** 2).mean() for w, m in zip(warped, masks))
    assert term.name == "temporal" and term.layers == ()
    assert value.dtype == torch.float32 and value.ndim == 0
    assert float(value) == pytest.approx(want, rel=1e-5)


def test_no_gradient_where_the_mask_is_zero():
    image, warped, masks = _case()
    x = torch.from_numpy(image).requires_grad_(True)
    temporal_term([torch.from_numpy(w) for w in warped], masks, weight=3.0)(x, {}).backward()
    zero = (masks[0] == 0) & (masks[1] == 0)  # the top-left quarter
    assert zero.sum() == 12 * 16
    grad = x.grad[0].abs().sum(dim=0).numpy()  # (H, W)
    assert np.all(grad[zero] == 0) and np.all(grad[~zero] > 0)


def test_balanced_is_relative_to_the_target_about_the_mean_pixel():
    image, warped, masks = _case()

    def value(scale: float, loss_scale: str) -> float:
        # Both the image and its targets scaled about the mean pixel: a clip with s times the contrast.
        x = MEAN + scale * (torch.from_numpy(image) - MEAN)
        targets = [MEAN + scale * (torch.from_numpy(w) - MEAN) for w in warped]
        term = temporal_term(targets, masks, weight=2.0, loss_scale=loss_scale, mean_pixel=MEAN)
        return float(term(x, {}))

    assert value(0.25, "balanced") == pytest.approx(value(1.0, "balanced"), rel=1e-5)
    assert value(0.25, "reference") == pytest.approx(value(1.0, "reference") / 16, rel=1e-5)
    single = torch.from_numpy(warped[0])
    balanced = temporal_term([single], masks[:1], weight=1.0, loss_scale="balanced", mean_pixel=MEAN)
    reference = temporal_term([single], masks[:1], weight=1.0)
    norm = float((single - MEAN).pow(2).mean())
    assert float(balanced(torch.from_numpy(image), {})) * norm == pytest.approx(
        float(reference(torch.from_numpy(image), {})), rel=1e-5
    )


def test_a_coarse_stage_sees_the_targets_at_its_size():
    image, warped, masks = _case(size=(24, 32))
    term = temporal_term([torch.from_numpy(w) for w in warped], masks, weight=1.0)
    small = torch.nn.functional.interpolate(torch.from_numpy(image), size=(12, 16), mode="area").requires_grad_(True)
    value = term(small, {})
    w_small = [torch.nn.functional.interpolate(torch.from_numpy(w), size=(12, 16), mode="area") for w in warped]
    m_small = [
        torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], size=(12, 16), mode="area") for m in masks
    ]
    want = sum((m * (small.detach() - w).pow(2)).mean() for w, m in zip(w_small, m_small))
    assert float(value.detach()) == pytest.approx(float(want), rel=1e-5)
    value.backward()
    assert small.grad[..., :6, :8].abs().sum() == 0  # both masks are zero over that quarter at half size


def test_the_term_checks_its_inputs():
    warped = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="1 warped outputs but 2 masks"):
        temporal_term([warped], [np.ones((8, 8))] * 2, weight=1.0)
    with pytest.raises(ValueError, match=r"a mask of \(4, 4\) for an image of \(8, 8\)"):
        temporal_term([warped], [np.ones((4, 4))], weight=1.0)
    with pytest.raises(ValueError, match="the balanced scale needs the model's mean pixel"):
        temporal_term([warped], [np.ones((8, 8))], weight=1.0, loss_scale="balanced")


@pytest.mark.parametrize(
    "precision",
    ["fp32", pytest.param("bf16", marks=pytest.mark.skipif(not cpu_has_bf16(), reason="no bf16 units"))],
)
def test_a_stylization_is_held_to_the_warped_previous_output(vgg19_onnx, precision):
    """Through Stylizer.stylize(extra_terms=...), coarse to fine: the objective reports the term, and a
    heavy temporal weight keeps the reliable half of the image at the target while the occluded half
    is free (the term reads the float32 image whatever precision the convolutions run in)."""
    from PIL import Image

    from nst.runtime.mirror import VGGMirror
    from nst.runtime.stylize import Stylizer

    rng = np.random.default_rng(3)
    content = Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    style = Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8))
    target = torch.from_numpy(rng.uniform(60, 200, (1, 3, 32, 40)).astype(np.float32))
    mask = np.zeros((32, 40), np.float32)
    mask[:, 20:] = 1.0
    mirror = VGGMirror.from_onnx(vgg19_onnx)
    term = temporal_term([target], [mask], weight=1e4, loss_scale="balanced", mean_pixel=mirror.mean_pixel)
    config = StylizeConfig(size=0, iterations=12, seed=0, optimizer="adam", loss_scale="balanced",
                           scales=2, min_size=20, precision=precision)  # fmt: skip
    steps: list[Step] = []
    out = Stylizer(mirror, config=config).stylize(content, styles=[style], callback=steps.append, extra_terms=[term])
    assert set(steps[0].terms) == {"content", "style", "tv", "temporal"}
    assert steps[-1].terms["temporal"] < 0.2 * steps[0].terms["temporal"]
    result = np.asarray(out, dtype=np.float32).transpose(2, 0, 1)  # (3, H, W)
    goal = target[0].numpy()
    held, free = np.abs(result - goal)[:, :, 24:].mean(), np.abs(result - goal)[:, :, :16].mean()
    assert held < 0.3 * free  # the reliable half follows the target, the occluded half does not


def test_the_term_is_a_frozen_term_of_the_objective():
    import dataclasses

    term = TemporalTerm(targets=(), weight=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        term.weight = 2.0  # type: ignore[misc]
    assert float(term(torch.zeros(1, 3, 4, 4), {})) == 0.0


def test_the_key_follows_what_the_term_holds():
    """A resumed frame is checked against its term's key: it changes with any target, mask or weight."""
    _, warped, masks = _case()
    make = lambda w=warped, m=masks, weight=1.0: temporal_term([torch.from_numpy(x) for x in w], m, weight=weight)  # noqa: E731
    key = make().key()
    assert make().key() == key
    changed = [warped[0].copy(), warped[1]]
    changed[0][0, 0, 0, 0] += 1
    other_mask = [masks[0], masks[1] * 0.5]
    assert len({key, make(w=changed).key(), make(m=other_mask).key(), make(weight=2.0).key()}) == 4
