"""The progress display of a stylization: a tqdm bar on stderr, and loss lines on request."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nst.runtime.loop import Step


BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class StepDisplay:
    """Feeds on `Step`s. The bar appears at the first iteration, so its ETA leaves out the
    set-up and an error during the set-up stays one line; `print_every` adds a line every N
    iterations. `done` iterations are already behind (a resumed run)."""

    def __init__(
        self, total: int, *, quiet: bool, print_every: int | None = None, done: int = 0, label: str = "stylize"
    ):
        self.total, self.quiet, self.print_every, self.done, self.label = total, quiet, print_every, done, label
        self.bar: Any = None

    def __call__(self, step: Step) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=self.total,
                initial=self.done,
                unit="it",
                file=sys.stderr,
                disable=self.quiet,
                dynamic_ncols=True,
                desc=self.label,
                bar_format=BAR_FORMAT,
            )
        terms = ", ".join(f"{name} {value:.3g}" for name, value in step.terms.items())
        self.bar.set_postfix_str(f"loss {step.total:.4g} ({terms}) {step.size[1]}x{step.size[0]}", refresh=False)
        self.bar.update(1)
        if self.print_every and step.iteration % self.print_every == 0:
            terms = "  ".join(f"{name} {value:.6g}" for name, value in step.terms.items())
            tqdm.write(
                f"iteration {step.iteration:5d}/{step.iterations}: total {step.total:.6g}  {terms}  "
                f"({step.elapsed:.1f} s)",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _RunsBar:
    """One bar over the iterations of many runs (a batch's outputs, a video's frames), each run
    counted on it by the iteration it has reached, its label saying how many runs are done."""

    def __init__(self, *, quiet: bool, print_every: int | None):
        self.quiet, self.print_every = quiet, print_every
        self.bar: Any = None
        self.reached: dict[int, int] = {}  # run -> iterations counted on the bar

    def _open(self, total: int, initial: int = 0) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="it",
            file=sys.stderr,
            disable=self.quiet,
            dynamic_ncols=True,
            desc=self._label(),
            bar_format=BAR_FORMAT,
        )

    def _step(self, run: int, name: str, event: Any, suffix: str = "") -> None:
        """A step of run `run`, shown as `name`: the bar, and with `print_every` a loss line."""
        from tqdm import tqdm

        self._advance(run, event.iteration)
        self.bar.set_postfix_str(f"{name} loss {event.loss:.4g}", refresh=False)
        if self.print_every and event.iteration % self.print_every == 0:
            terms = "  ".join(f"{term} {value:.6g}" for term, value in event.terms.items())
            line = f"{name}: iteration {event.iteration:5d}/{event.iterations}: total {event.loss:.6g}  {terms}"
            tqdm.write(line + suffix, file=sys.stderr)

    def _advance(self, run: int, iteration: int) -> None:
        delta = iteration - self.reached.get(run, 0)
        if delta > 0:
            self.reached[run] = iteration
            self.bar.update(delta)

    def _label(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class BatchDisplay(_RunsBar):
    """Feeds on a batch's events: one bar over the iterations of every output to make (its
    ETA counts workers running at once), the outputs done in its label, a line per failure,
    and with `print_every`, a loss line per output every N iterations."""

    def __init__(self, iterations: int, *, quiet: bool, print_every: int | None = None):
        super().__init__(quiet=quiet, print_every=print_every)
        self.iterations = iterations
        self.to_run = self.done = 0
        self.finished: set[int] = set()

    def __call__(self, event: Any) -> None:
        from tqdm import tqdm

        if event.kind == "planned":
            self.to_run = event.to_run
            if self.to_run:
                self._open(self.to_run * self.iterations)
            return
        if self.bar is None or event.index in self.finished:
            return
        if event.kind == "step":
            self._step(event.index, event.output, event, f"  ({event.elapsed:.1f} s)")
        elif event.kind == "done":
            self._advance(event.index, self.iterations)
            self.finished.add(event.index)
            self.done += 1
            self.bar.set_description_str(self._label(), refresh=True)
            result = event.result
            if result.status == "failed":
                tqdm.write(f"failed: {result.output.name}: {result.error}", file=sys.stderr)

    def _label(self) -> str:
        return f"{self.done}/{self.to_run} images"


class VideoDisplay(_RunsBar):
    """Feeds on a video run's events: one bar over the iterations of every frame to make (its ETA
    from their rate), the frames made in its label, and with `print_every`, a loss line per frame
    every N iterations."""

    def __init__(self, *, quiet: bool, print_every: int | None = None):
        super().__init__(quiet=quiet, print_every=print_every)
        self.to_make = self.made = 0

    def __call__(self, event: Any) -> None:
        if event.kind == "planned":
            self.to_make, self.reached = event.to_make, dict(event.resumed)  # shot -> its frame's iterations
            if self.to_make:
                self._open(event.iterations, event.done)
            return
        if self.bar is None:
            return
        if event.kind == "step":
            self._step(event.shot, f"frame {event.frame + 1}", event)
        elif event.kind == "frame":
            self._advance(event.shot, event.iterations)
            self.reached[event.shot] = 0
            self.made += 1
            self.bar.set_description_str(self._label(), refresh=True)

    def _label(self) -> str:
        return f"{self.made}/{self.to_make} frames"


def hardware_lines(device: str, precision: str, *, quiet: bool) -> list[str]:
    """What `nst stylize` says first, for the commands that plan many runs (stylize-batch,
    stylize-video) to say once when planned: a warning for bf16 that this CPU can only emulate
    (even with -q: the runs may take 50 times longer), and the precision and device they use."""
    from nst.runtime.device import resolve_device
    from nst.runtime.hardware import emulated_bf16, precision_line

    resolved = resolve_device(device)
    emulated = emulated_bf16(resolved, precision)
    lines = [f"warning: {emulated}"] if emulated is not None else []
    return lines if quiet else [*lines, precision_line(resolved, precision)]
