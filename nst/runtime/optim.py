"""Adam and L-BFGS for one image tensor: the two optimisers of the stylize loop.

They follow torch.optim.Adam and torch.optim.LBFGS (max_iter=1, no line search) step for
step (tests compare them), but are written here because `torch.optim.Optimizer.__init__`
imports torch._dynamo (~0.9 s, a large share of the start-up), and because L-BFGS's first
step can reuse a curvature estimate from a previous coarse-to-fine stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch

from nst.runtime.config import StylizeConfig

Closure = Callable[[], torch.Tensor]

# L-BFGS keeps a curvature pair (s, y) when y.s exceeds this share of |y| |s|: the cosine
# between them, which a constant scale of the objective leaves unchanged.
CURVATURE_COSINE = 1e-10


class Optimizer(Protocol):
    """What the loop needs of an optimiser: torch.optim's zero_grad() and step(closure)."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self, closure: Closure) -> torch.Tensor: ...

    def state_dict(self) -> dict[str, Any]:
        """Everything a later run needs to continue bit for bit: tensors and plain values."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class _ImageOptimizer:
    """The torch.optim interface the loop uses: zero_grad() and step(closure) -> loss."""

    param: torch.Tensor

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.param.grad = None

    @torch.no_grad()
    def step(self, closure: Closure) -> torch.Tensor:
        with torch.enable_grad():
            loss = closure()  # fills self.param.grad
        assert self.param.grad is not None, "the closure must call backward()"
        self.update(self.param.grad)
        return loss

    def update(self, grad: torch.Tensor) -> None:
        raise NotImplementedError


class Adam(_ImageOptimizer):
    """Adam (Kingma & Ba 2015) on one tensor, as torch.optim.Adam without weight decay."""

    def __init__(
        self, param: torch.Tensor, lr: float = 10.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.steps = 0
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "adam", "steps": self.steps, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])

    def update(self, grad: torch.Tensor) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias1 = 1 - beta1**self.steps
        bias2_sqrt = (1 - beta2**self.steps) ** 0.5
        denom = (self.exp_avg_sq.sqrt() / bias2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-self.lr / bias1)


class LBFGS(_ImageOptimizer):
    """L-BFGS (Nocedal 1980) with one function evaluation per step and no line search, as
    torch.optim.LBFGS(max_iter=1, tolerance_grad=-1, tolerance_change=-1) runs it, except that
    every step is invariant to a constant scale of the objective: f and c*f (c > 0) take the
    same steps. torch's are not: its first step min(1, 1/|g|_1) * lr, its curvature test
    y.s > 1e-10 and its descent test g.d > 1 are absolute, so an objective near 1 (the balanced
    loss scale) or 1e-6 times the reference's took microscopic steps and stalled. Here:

    - the first step is -lr * g / |g|_1 (torch's whenever |g|_1 >= 1, as in a reference run);
    - a pair (s, y) is kept when y.s > CURVATURE_COSINE * |y| |s| (a cosine, free of scale);
    - a direction is used when g.d < 0 (a descent direction), whatever its size;
    - until a pair is kept, the inverse-Hessian scale is the first step's (torch uses 1).

    `h_diag`, when given, is the initial inverse-Hessian scale: the first step is then
    -h_diag * grad with step size `lr`. `self.h_diag` holds the current estimate, for the next
    coarse-to-fine stage.
    """

    def __init__(self, param: torch.Tensor, lr: float = 1.0, history_size: int = 100, h_diag: float | None = None):
        self.param, self.lr, self.history_size = param, lr, history_size
        self.h_diag = h_diag
        self._warm_start = h_diag is not None
        self.h0 = h_diag  # the first step's inverse-Hessian scale, used until a pair is kept
        self.steps = 0
        self.dirs: list[torch.Tensor] = []  # y_k = g_{k+1} - g_k
        self.stps: list[torch.Tensor] = []  # s_k = x_{k+1} - x_k
        self.ro: list[float] = []  # 1 / (y_k . s_k)
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None  # t * d of the last update
        self.pairs_seen = self.pairs_kept = 0  # curvature pairs offered and kept (diagnostics)

    def state_dict(self) -> dict[str, Any]:
        empty = self.param.new_zeros((0, self.param.numel()))
        return {
            "kind": "lbfgs",
            "steps": self.steps,
            "h_diag": self.h_diag,
            "warm_start": self._warm_start,
            "h0": self.h0,
            "ro": list(self.ro),
            "dirs": torch.stack(self.dirs) if self.dirs else empty,  # (pairs, P)
            "stps": torch.stack(self.stps) if self.stps else empty,
            "prev_grad": self.prev_grad,
            "prev_step": self.prev_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.h_diag = None if state["h_diag"] is None else float(state["h_diag"])
        self._warm_start = bool(state["warm_start"])
        h0 = state.get("h0")  # absent from states written before scale invariance
        self.h0 = None if h0 is None else float(h0)
        self.ro = [float(r) for r in state["ro"]]
        device = self.param.device
        self.dirs = [row.clone().to(device) for row in state["dirs"]]
        self.stps = [row.clone().to(device) for row in state["stps"]]
        self.prev_grad = None if state["prev_grad"] is None else state["prev_grad"].to(device)
        self.prev_step = None if state["prev_step"] is None else state["prev_step"].to(device)
        if not len(self.dirs) == len(self.stps) == len(self.ro) <= self.history_size:
            raise ValueError("inconsistent L-BFGS state")

    def update(self, grad: torch.Tensor) -> None:
        grad = grad.reshape(-1)  # (P,)
        self.steps += 1
        if self.prev_grad is None or self.prev_step is None:
            if self.h0 is None:
                # A cold start: a step of L1 length lr, as torch's when |g|_1 >= 1. torch caps
                # the scale at 1, which makes a small objective's first step microscopic.
                norm = float(grad.abs().sum())
                if norm == 0:
                    return  # a stationary point: there is no direction to step along
                self.h0 = 1.0 / norm
            direction = grad.neg() * self.h0
            t = self.lr
        else:
            y = grad - self.prev_grad
            s = self.prev_step
            ys = float(y.dot(s))
            self.pairs_seen += 1
            # Positive curvature, judged by the angle between y and s: torch's absolute
            # threshold (1e-10) rejected every pair of an objective near 1e-6.
            if ys > CURVATURE_COSINE * math.sqrt(float(y.dot(y)) * float(s.dot(s))):
                self.pairs_kept += 1
                if len(self.dirs) == self.history_size:
                    del self.dirs[0], self.stps[0], self.ro[0]
                self.dirs.append(y)
                self.stps.append(s)
                self.ro.append(1.0 / ys)
                self.h_diag = ys / float(y.dot(y))
            direction = self._two_loop(grad)
            t = self.lr
        if not float(grad.dot(direction)) < 0:  # not a descent direction (torch's test, gtd > 1, has a scale)
            return
        self.prev_grad = grad.clone()
        self.prev_step = direction.mul(t)
        self.param.add_(self.prev_step.view_as(self.param))

    def _two_loop(self, grad: torch.Tensor) -> torch.Tensor:
        """H_k @ -grad by the two-loop recursion over the stored (s, y) pairs."""
        q = grad.neg()
        alphas = []
        for s, y, ro in zip(reversed(self.stps), reversed(self.dirs), reversed(self.ro)):
            alpha = float(s.dot(q)) * ro
            q.add_(y, alpha=-alpha)
            alphas.append(alpha)
        # Without a kept pair, the first step's scale (torch's 1 would tie the step to the objective's scale).
        h = self.h_diag if self.h_diag is not None else self.h0
        r = q.mul_(h if h is not None else 1.0)
        for s, y, ro, alpha in zip(self.stps, self.dirs, self.ro, reversed(alphas)):
            beta = float(y.dot(r)) * ro
            r.add_(s, alpha=alpha - beta)
        return r


def make_optimizer(
    image: torch.Tensor, config: StylizeConfig, *, previous: Optimizer | None = None, pixel_ratio: float = 1.0
) -> Optimizer:
    """Adam with the reference's settings, or L-BFGS taking one function evaluation per step
    (no line search, no early stop), so that both report and cost the same per iteration.

    Coarse to fine, L-BFGS starts each stage from the previous stage's curvature estimate,
    scaled by the ratio of pixel counts (the losses are means over pixels, so the inverse
    Hessian grows with their number); without it each stage would restart with a cautious
    first step of L1 length 1 and lose most of the coarse stage's head start. Both estimates
    scale as 1 / the objective, so the warm start is as invariant to its scale as a cold one."""
    if config.optimizer == "adam":
        return Adam(image, lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.epsilon)
    h_diag = previous.h_diag if isinstance(previous, LBFGS) else None
    return LBFGS(
        image, lr=1.0, history_size=config.lbfgs_history, h_diag=h_diag * pixel_ratio if h_diag is not None else None
    )
