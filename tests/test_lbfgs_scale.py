"""L-BFGS is invariant to a constant scale of the objective: c * f takes the same steps as f,
from the optimiser alone up to whole stylize runs (one and three coarse-to-fine stages, the
warm start between stages included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nst.runtime.config import StylizeConfig
from nst.runtime.loop import Step
from nst.runtime.optim import LBFGS
from nst.runtime.stylize import Stylizer

# Powers of two scale every float exactly, so the steps must agree bit for bit; 1e-6 and 1e6
# round differently in the last bit, so those agree to float tolerance.
EXACT = (2.0**-20, 2.0**20)
ROUNDED = (1e-6, 1e6)


def _objective(x: torch.Tensor) -> torch.Tensor:
    # Rosenbrock-like, so the curvature varies and the history matters.
    flat = x.reshape(-1)
    return ((1 - flat[:-1]) ** 2).sum() + 10 * ((flat[1:] - flat[:-1] ** 2) ** 2).sum()


def _iterates(factor: float, steps: int = 30, h_diag: float | None = None) -> list[torch.Tensor]:
    x = torch.linspace(-1.2, 1.0, 60, dtype=torch.float64).reshape(1, 3, 4, 5).requires_grad_(True)
    opt = LBFGS(x, lr=1.0, history_size=5, h_diag=h_diag)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = factor * _objective(x)
        loss.backward()
        return loss

    seen = []
    for _ in range(steps):
        opt.step(closure)
        seen.append(x.detach().clone())
    return seen


@pytest.mark.parametrize("factor", EXACT + ROUNDED)
@pytest.mark.parametrize("h_diag", [None, 0.01])
def test_lbfgs_steps_do_not_depend_on_the_objectives_scale(factor, h_diag):
    plain = _iterates(1.0, h_diag=h_diag)
    # A warm start's inverse-Hessian scale is 1 / the objective's, like the estimate it carries.
    scaled = _iterates(factor, h_diag=None if h_diag is None else h_diag / factor)
    assert not torch.equal(plain[0], plain[-1])  # it moved
    for ours, theirs in zip(plain, scaled):
        if factor in EXACT:
            assert torch.equal(ours, theirs)
        else:
            torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


def test_a_small_objective_no_longer_stalls():
    """torch's first step min(1, 1/|g|_1) and absolute curvature test froze f * 1e-6 in place."""
    start = _iterates(1e-6, steps=1)[0]
    final = _iterates(1e-6, steps=30)[-1]
    assert _objective(final) < _objective(start) / 10


def test_a_stationary_start_takes_no_step():
    x = torch.zeros(1, 3, 2, 2, requires_grad=True)
    opt = LBFGS(x)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (x**2).sum()  # its minimum: a zero gradient
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.equal(x.detach(), torch.zeros_like(x)) and opt.h0 is None


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    content = Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    style = Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8))
    return content, style


def _stylize(session, images, factor: float, scales: int, loss_scale: str, iterations: int
             ) -> tuple[np.ndarray, list[float], torch.Tensor]:  # fmt: skip
    """The image, the losses (divided by `factor`) and the float iterate one step before the end."""
    from nst.runtime.config import DEFAULT_WEIGHTS

    content_w, style_w, tv_w = DEFAULT_WEIGHTS[loss_scale]
    config = StylizeConfig(size=0, iterations=iterations, seed=0, scales=scales, min_size=20, loss_scale=loss_scale,
                           content_weight=content_w * factor, style_weight=style_w * factor,
                           tv_weight=tv_w * factor, checkpoint_iterations=iterations - 1)  # fmt: skip
    steps: list[Step] = []
    image = session.stylize(images[0], styles=[images[1]], config=config, callback=steps.append)
    (state,) = [step.state for step in steps if step.state is not None]
    return np.asarray(image), [step.total / factor for step in steps], state.image.clone()


@pytest.fixture(scope="module")
def session(vgg19_onnx):
    return Stylizer(vgg19_onnx)  # one session: the style Grams are computed once per size


@pytest.mark.parametrize("loss_scale", ["reference", "balanced"])
@pytest.mark.parametrize("scales", [1, 3])
def test_stylize_gives_the_same_image_whatever_the_weights_scale(session, images, scales, loss_scale):
    """Every weight times 2^-20 and 2^20: the same image, bit for bit, as the unscaled run (with
    three stages, each later stage warm-starts from the previous stage's curvature estimate)."""
    plain, plain_losses, plain_iterate = _stylize(session, images, 1.0, scales, loss_scale, iterations=9)
    assert len(set(plain_losses)) == len(plain_losses)  # every step moved the image (none stalled)
    for factor in EXACT:
        image, losses, iterate = _stylize(session, images, factor, scales, loss_scale, iterations=9)
        assert np.array_equal(image, plain) and torch.equal(iterate, plain_iterate), factor
        assert losses == plain_losses, factor


@pytest.mark.parametrize("scales", [1, 3])
def test_stylize_at_1e6_and_1e_minus_6_agrees_to_float_tolerance(session, images, scales):
    """Weights times 1e-6 and 1e6 round in their last bit (5e-6 is no binary fraction), which
    moves the balance between the terms by ~1e-7. The first curvature pair comes from a step
    of L1 length 1 over the whole image (torch's, kept for the reference's sake), so it is
    measured near float32's resolution and passes such a difference on, amplified (100x by the
    third step, ~1 grey level by the fourth, here): the comparison stops at the third step."""
    _, plain_losses, plain_iterate = _stylize(session, images, 1.0, scales, "reference", iterations=3)
    assert len(set(plain_losses)) == len(plain_losses)
    for factor in ROUNDED:
        _, losses, iterate = _stylize(session, images, factor, scales, "reference", iterations=3)
        torch.testing.assert_close(iterate, plain_iterate, rtol=0, atol=0.1)  # pixels 0-255
        assert losses == pytest.approx(plain_losses, rel=1e-6), factor
