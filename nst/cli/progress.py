"""The progress display of a stylization: a tqdm bar on stderr, and loss lines on request."""

from __future__ import annotations

import sys
from typing import Any

from nst.runtime.config import Step


class StepDisplay:
    """Feeds on `Step`s. The bar appears at the first iteration, so its ETA leaves out the
    set-up and an error during the set-up stays one line; `print_every` adds a line every N
    iterations. `done` iterations are already behind (a resumed run)."""

    def __init__(self, total: int, *, quiet: bool, print_every: int | None = None, done: int = 0,
                 label: str = "stylize"):  # fmt: skip
        self.total, self.quiet, self.print_every, self.done, self.label = total, quiet, print_every, done, label
        self.bar: Any = None

    def __call__(self, step: Step) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=self.total, initial=self.done, unit="it", file=sys.stderr, disable=self.quiet,
                            dynamic_ncols=True, desc=self.label,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")  # fmt: skip
        terms = ", ".join(f"{name} {value:.3g}" for name, value in step.terms.items())
        self.bar.set_postfix_str(f"loss {step.total:.4g} ({terms}) {step.size[1]}x{step.size[0]}", refresh=False)
        self.bar.update(1)
        if self.print_every and step.iteration % self.print_every == 0:
            terms = "  ".join(f"{name} {value:.6g}" for name, value in step.terms.items())
            tqdm.write(f"iteration {step.iteration:5d}/{step.iterations}: total {step.total:.6g}  {terms}  "
                       f"({step.elapsed:.1f} s)", file=sys.stderr)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
