"""nst's own Adam and L-BFGS against torch.optim, step for step, on a small non-quadratic problem."""

from __future__ import annotations

import pytest
import torch

from nst.runtime.optim import LBFGS, Adam


def _objective(x: torch.Tensor) -> torch.Tensor:
    # Rosenbrock-like, on a (1, 3, 4, 5) "image": curvature varies, so the history matters.
    flat = x.reshape(-1)
    return ((1 - flat[:-1]) ** 2).sum() + 10 * ((flat[1:] - flat[:-1] ** 2) ** 2).sum()


def _run(make, steps: int) -> tuple[torch.Tensor, list[float]]:
    # float64: torch keeps L-BFGS's curvature scalars as tensors of the parameter's dtype, nst
    # as Python floats; in float64 both round alike and the comparison can be tight.
    x = torch.linspace(-1.2, 1.0, 60, dtype=torch.float64).reshape(1, 3, 4, 5).requires_grad_(True)
    opt = make(x)
    losses = []

    def closure():
        opt.zero_grad()
        loss = _objective(x)
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
    return x.detach(), losses


def test_adam_matches_torch():
    ours, our_losses = _run(lambda x: Adam(x, lr=0.05, betas=(0.9, 0.999), eps=1e-8), 40)
    ref, ref_losses = _run(lambda x: torch.optim.Adam([x], lr=0.05, betas=(0.9, 0.999), eps=1e-8), 40)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    assert our_losses == pytest.approx(ref_losses, rel=1e-9)


def test_lbfgs_matches_torch():
    ours, our_losses = _run(lambda x: LBFGS(x, lr=0.5, history_size=5), 40)
    ref, ref_losses = _run(
        lambda x: torch.optim.LBFGS([x], lr=0.5, max_iter=1, history_size=5, tolerance_grad=-1, tolerance_change=-1), 40
    )
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    assert our_losses == pytest.approx(ref_losses, rel=1e-9)
    assert our_losses[-1] < our_losses[0] / 10


def test_lbfgs_warm_start_takes_a_full_first_step():
    x = torch.ones(1, 3, 2, 2, requires_grad=True)
    opt = LBFGS(x, lr=1.0, h_diag=0.5)

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()  # gradient 2x: a step of -0.5 * 2x lands on the minimum
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(x.detach(), torch.zeros_like(x))
