"""The live state of one run, shared between its loop and any number of viewers.

The loop's callback only stores the latest step under a lock (a few microseconds); the image
is rendered and encoded when a viewer asks for it, at most once per iteration.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nst.runtime.loop import Step

EMA_DECAY = 0.9  # of seconds per iteration: follows a change of stage within ~10 iterations


class Rate:
    """Seconds per iteration as an exponential moving average, bias-corrected so the first
    iterations are not read as fast."""

    def __init__(self, decay: float = EMA_DECAY):
        self.decay, self.value, self.count = decay, 0.0, 0
        self.last: tuple[int, float] | None = None  # (iteration, elapsed) of the previous step

    def update(self, iteration: int, elapsed: float) -> None:
        if self.last is not None and iteration > self.last[0]:
            per = (elapsed - self.last[1]) / (iteration - self.last[0])
            self.value = self.decay * self.value + (1 - self.decay) * per
            self.count += 1
        self.last = (iteration, elapsed)

    @property
    def seconds(self) -> float | None:
        """Seconds per iteration, None until two steps were seen."""
        return self.value / (1 - self.decay**self.count) if self.count else None


class LiveRun:
    """The latest step of a run and the loss history, written by the loop, read by viewers."""

    def __init__(self, iterations: int):
        self.iterations = iterations
        self._lock = threading.Lock()
        self._encode = threading.Lock()  # one encoding per frame, however many viewers ask
        self._step: Step | None = None
        self._where: dict[str, Any] = {"stage": None, "size": None, "elapsed": None}
        self._rows: list[dict[str, float]] = []  # per iteration: i, total and each term
        self._rate = Rate()
        self._frame: tuple[int, bytes] | None = None  # (iteration, PNG)
        self.version = 0  # bumped by every update: viewers send an event only when it moved

    def update(self, step: Step) -> None:
        """The loop's callback: store, never compute."""
        row = {"i": step.iteration, "total": step.total, **step.terms}
        with self._lock:
            self._step = step
            self._where = {"stage": step.stage, "size": list(step.size), "elapsed": step.elapsed}
            self._rows.append(row)
            self._rate.update(step.iteration, step.elapsed)
            self.version += 1

    def restore(self, rows: list[dict[str, float]]) -> None:
        """The history of a finished run (a gallery entry after a restart)."""
        with self._lock:
            self._rows = list(rows)
            self.version += 1

    def progress(self, since: int | None = None) -> dict[str, Any]:
        """Where the run is: iteration, stage, losses, it/s, ETA; with `since`, also the loss
        history from that row on (a viewer asks for what it has not seen)."""
        with self._lock:  # shared with the loop's callback: copy, compute outside
            step, where, per = self._step, self._where, self._rate.seconds
            last = self._rows[-1] if self._rows else None
            rows = self._rows[since:] if since is not None else None
        iteration = int(last["i"]) if last else 0
        left = max(self.iterations - iteration, 0)
        progress = {
            "iteration": iteration,
            "iterations": self.iterations,
            **where,
            "losses": {k: v for k, v in last.items() if k != "i"} if last else {},
            "it_s": 1 / per if per else None,
            "eta_s": left * per if per is not None else None,
            "frame": iteration if step is not None and step.preview is not None else None,
        }
        if rows is not None:
            progress.update(history_from=since, history=rows)
        return progress

    def frame(self) -> bytes | None:
        """The best image so far as a PNG (rendered and encoded now, or the one of this
        iteration already encoded); None before the first iteration."""
        with self._lock:
            step = self._step
        if step is None or step.preview is None:
            return None
        with self._encode:
            if self._frame is None or self._frame[0] != step.iteration:
                rendered = step.rendered or step.preview()  # a checkpoint's image is rendered already
                self._frame = (step.iteration, encode_png(rendered.image, fast=True))
            return self._frame[1]

    def release(self) -> None:
        """Forget the last step (it holds the finished run's tensors); the history stays."""
        with self._lock:
            self._step = None
            self._frame = None


def encode_png(image: Any, *, fast: bool = False, text: dict[str, str] | None = None) -> bytes:
    """A PIL image as PNG bytes; `fast`: light compression, for frames that live a second."""
    import io

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1 if fast else 6, pnginfo=info)
    return buffer.getvalue()
