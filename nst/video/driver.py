"""The frame driver: one shot's frames stylized in order by one `Stylizer` session, each frame after the
first started from the previous output warped along the optical flow and held to it by the temporal term
(Ruder et al. 2016), with their long-term frames and multi-pass. Each finished frame is reported encoded;
the caller writes it."""

from __future__ import annotations

import copy
import io
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from nst.errors import NSTError, StateError, VideoError
from nst.models.cache import cache_dir
from nst.runtime.config import BitDepth, StylizeConfig
from nst.runtime.images import as_image, encode_image, to_array
from nst.video.consistency import long_term_weights
from nst.video.flow import FlowCache
from nst.video.reading import iter_frames
from nst.video.settings import VideoSettings

if TYPE_CHECKING:
    import torch

    from nst.runtime.loop import Step
    from nst.runtime.state import RunState
    from nst.runtime.stylize import Stylizer
    from nst.runtime.targets import StyleTargets

FRAME_NAME = "frame.png"  # what the encoder is told a frame is called: its format


@dataclass(frozen=True)
class Shot:
    """Frames of one clip that depend on each other, made in order by one session: a whole clip, or
    the part of it between two cuts."""

    index: int  # among the run's shots
    clip: int  # the clip it belongs to
    source: str  # the clip: a video file, or a folder or glob of frames
    start: int  # its frames are [start, stop) of the clip, 0-based
    stop: int
    size: tuple[int, int]  # (height, width) its frames are read and stylized at
    config: StylizeConfig  # the user's options: a shot's first frame runs them as given
    video: VideoSettings  # resolved
    bit_depth: BitDepth = 8
    profile: bytes | None = None  # ICC profile the frames are converted to and tagged with
    done: int = 0  # entries of its schedule made by an earlier run
    outputs: Mapping[int, bytes] = field(default_factory=dict)  # clip frame -> its encoded output, as needed
    resume: RunState | None = None  # the saved state of the next entry's frame
    flow_cache: str | None = None  # the clip's flow folder; None: under $NST_HOME where the shot runs
    clip_key: str = ""  # names the clip's flow folder under $NST_HOME
    frames: tuple[np.ndarray, ...] | None = None  # the shot's frames, when the worker cannot read `source`
    history: bool = False  # report each frame's losses per iteration

    @property
    def length(self) -> int:
        return self.stop - self.start

    def neighbours(self, pass_index: int, f: int) -> list[int]:
        """The frames entry (pass_index, f) is held to, closest first: those at the --long-term offsets
        before it going forward (odd passes), after it going backward, within the shot."""
        step = 1 if pass_index % 2 else -1
        return [f - step * j for j in self.video.long_term if self.start <= f - step * j < self.stop]

    def schedule(self) -> list[tuple[int, int]]:
        """(pass, frame of the clip) in the order they are made: odd passes forward, even ones backward."""
        forward = list(range(self.start, self.stop))
        return [(p, f) for p in range(1, self.video.passes + 1) for f in (forward if p % 2 else forward[::-1])]


@dataclass(frozen=True)
class FrameEvent:
    """What a shot reports: `step` per iteration, `frame` when a frame is made (its encoded PNG),
    `state` when a frame's run state is saved (a checkpoint, or Ctrl-C), `note` for a warning."""

    kind: Literal["step", "frame", "state", "note"]
    shot: int
    clip: int
    frame: int  # of the clip, 0-based
    pass_index: int = 1
    iteration: int = 0
    iterations: int = 0
    loss: float = float("nan")
    terms: Mapping[str, float] = field(default_factory=dict)
    data: bytes | None = None  # frame: the encoded output
    seconds: float = 0.0  # frame: its run's wall time
    history: tuple[float, ...] = ()  # frame: its total loss per iteration, when asked for
    state: RunState | None = None  # state
    message: str = ""  # note
    worker: str = ""  # frame: host:pid that made it


Report = Callable[[FrameEvent], None]


@dataclass(frozen=True)
class FramePlan:
    """One entry of a shot's schedule, ready to run."""

    config: StylizeConfig
    initial: torch.Tensor | None  # the warm start, None for noise (a shot's first frame)
    terms: tuple[Any, ...]  # the temporal term, when the frame has one


def run_shot(
    session: Stylizer,
    shot: Shot,
    *,
    styles: tuple[Path, ...] = (),
    targets: StyleTargets | None = None,
    target_path: Path | None = None,
    report: Report,
) -> None:
    """Make the shot's frames from entry `shot.done` of its schedule on, each reported as a `frame`
    event. A frame that fails raises a VideoError naming it; Ctrl-C reports the frame's state first."""
    reach = max(shot.video.long_term)
    frames = ShotFrames(shot, window=reach if shot.video.passes == 1 else None)
    cache = FlowCache(_flow_folder(shot))
    outputs = {f: decode_output(data, session.device) for f, data in shot.outputs.items()}
    order = shot.schedule()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    for position in range(shot.done, len(order)):
        pass_index, f = order[position]
        start = time.perf_counter()  # the frame's whole cost: flows, warps, the run, the encoding
        plan = plan_frame(shot, pass_index, f, frames=frames, outputs=outputs, cache=cache, session=session)
        resume = shot.resume if position == shot.done else None
        text = session.provenance(
            shot.config, content=f"{Path(shot.source).name} frame {f + 1}", styles=styles, targets=target_path
        )
        rendered, losses = _make(session, shot, plan, frames[f], pass_index, f, resume, styles, targets, report)
        # Outputs are warped from as encoded: a run that continues after a restart reads them back alike,
        # so that its frames are the ones an uninterrupted run makes.
        encoded = encode_image(rendered, FRAME_NAME, text=text, bit_depth=shot.bit_depth, profile=shot.profile)
        outputs[f] = decode_output(encoded, session.device)
        if shot.video.passes == 1:  # later frames look back `reach` frames at most
            outputs.pop(f - reach, None)
        seconds = time.perf_counter() - start
        report(FrameEvent("frame", shot.index, shot.clip, f, pass_index, data=encoded, seconds=seconds,
                          history=losses, iterations=plan.config.iterations, worker=worker))  # fmt: skip


def plan_frame(
    shot: Shot,
    pass_index: int,
    f: int,
    *,
    frames: ShotFrames,
    outputs: Mapping[int, torch.Tensor],
    cache: FlowCache,
    session: Stylizer,
) -> FramePlan:
    """The start image, temporal term and budget of frame `f` in pass `pass_index`.

    A shot's first frame in the first pass starts from noise with the user's options. Every other frame
    runs one stage (a coarse stage would blur the warm start) of the later frames' iterations, from its
    neighbour's output warped into it: the previous frame going forward, the next going backward. From
    the second pass a frame starts from its own last output blended with that warped neighbour, weighted
    by the neighbour's consistency mask (Ruder et al.'s multi-pass). The temporal term holds the frame
    to each neighbour at the --long-term offsets in the pass's direction, with their disjoint weights.
    """
    # these load torch, which only a frame's run needs
    from nst.video.multipass import blend_init
    from nst.video.temporal import temporal_term
    from nst.video.warp import warp

    config, video = shot.config, shot.video
    if pass_index == 1 and f == shot.start:
        first = config.replace(iterations=video.iterations(config, first=True), size=0, width=None)
        return FramePlan(first, None, ())
    mean = session.model.mean_pixel
    warped, masks = [], []
    for other in shot.neighbours(pass_index, f):
        if other < f:
            pair = cache.pair(frames[other], frames[f], settings=video.flow_settings)
            flow, mask = pair.backward, pair.reliable_later
        else:
            pair = cache.pair(frames[f], frames[other], settings=video.flow_settings)
            flow, mask = pair.forward, pair.reliable_earlier
        warped.append(warp(outputs[other], flow, fill=mean))
        masks.append(mask)
    if pass_index == 1:
        initial = warped[0]
    else:
        initial = blend_init(outputs[f], [(warped[0], masks[0], 1.0)]) if warped else outputs[f]
    terms: tuple[Any, ...] = ()
    weight = video.temporal_weight or 0.0
    if warped and pass_index >= video.temporal_from and weight > 0:
        term = temporal_term(
            warped, long_term_weights(masks), weight=weight, loss_scale=config.loss_scale, mean_pixel=mean
        )
        terms = (term,)
    later = config.replace(
        iterations=video.iterations(config, first=False),
        scales=1,
        size=0,
        width=None,
        initial=None,
        initial_noiseblend=None,
    )
    return FramePlan(later, initial, terms)


def _make(
    session: Stylizer,
    shot: Shot,
    plan: FramePlan,
    frame: np.ndarray,
    pass_index: int,
    f: int,
    resume: RunState | None,
    styles: tuple[Path, ...],
    targets: StyleTargets | None,
    report: Report,
) -> tuple[Any, tuple[float, ...]]:
    """One frame's run: (its rendered image, its total loss per iteration when asked for)."""
    from PIL import Image

    from nst.runtime.stylize import StylizeInterrupted  # loads torch

    losses: list[float] = []

    def on_step(step: Step) -> None:
        losses.append(step.total)
        report(FrameEvent("step", shot.index, shot.clip, f, pass_index, step.iteration, step.iterations,
                          step.total, dict(step.terms)))  # fmt: skip
        if step.state is not None:  # a checkpoint: copied, since the run goes on with its tensors
            report(FrameEvent("state", shot.index, shot.clip, f, pass_index, state=copy.deepcopy(step.state)))

    content = Image.fromarray(frame)
    kwargs: dict[str, Any] = {
        "styles": styles,
        "targets": targets,
        "config": plan.config,
        "callback": on_step,
        "extra_terms": plan.terms,
        "initial": plan.initial,
    }
    try:
        try:
            rendered = session.render(content, resume=resume, **kwargs)
        except StateError as exc:  # a state of other targets (the flow cache was cleared, say): start over
            report(
                FrameEvent("note", shot.index, shot.clip, f, pass_index, message=f"{exc}; frame {f + 1} starts over")
            )
            losses.clear()
            rendered = session.render(content, **kwargs)
    except StylizeInterrupted as stop:
        if stop.state is not None:
            report(FrameEvent("state", shot.index, shot.clip, f, pass_index, state=stop.state))
        raise
    except NSTError as exc:
        raise VideoError(f"frame {f + 1}{_pass_label(shot, pass_index)} failed: {exc}") from None
    except Exception as exc:  # a bug or a library's failure: this frame stops the shot, named
        raise VideoError(f"frame {f + 1}{_pass_label(shot, pass_index)} failed: {type(exc).__name__}: {exc}") from exc
    return rendered, tuple(losses) if shot.history else ()


def _pass_label(shot: Shot, pass_index: int) -> str:
    return f" (pass {pass_index})" if shot.video.passes > 1 else ""


def decode_output(data: bytes, device: torch.device) -> torch.Tensor:
    """An encoded output frame as (1, 3, H, W) 0-255 sRGB on `device`: what later frames are warped from."""
    import torch
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        pixels = as_image(img)  # a tagged profile converted back to sRGB
    return torch.from_numpy(to_array(pixels)).to(device)


class ShotFrames:
    """A shot's frames by clip index, decoded once in order as the schedule reaches them. With a
    `window` (a single pass), frames more than `window` before the last one asked for are let go, so a
    long shot never sits in memory whole."""

    def __init__(self, shot: Shot, *, window: int | None = None):
        self.shot, self.window = shot, window
        self._next = shot.start
        self._kept: dict[int, np.ndarray] = {}
        self._stream: Iterator[np.ndarray] | None = None
        if shot.frames is not None:
            self._kept = {shot.start + i: frame for i, frame in enumerate(shot.frames)}
            self._next = shot.stop

    def __getitem__(self, index: int) -> np.ndarray:
        if index in self._kept:
            return self._kept[index]
        if not self.shot.start <= index < self.shot.stop or index < self._next:
            raise IndexError(f"frame {index + 1} is not in this shot's window")
        stream = self._open()
        while self._next <= index:
            frame = next(stream, None)
            if frame is None:
                raise VideoError(f"{self.shot.source} ended before frame {self._next + 1}; was it changed?")
            self._kept[self._next] = frame
            self._next += 1
        if self.window is not None:
            for old in [k for k in self._kept if k < index - self.window]:
                del self._kept[old]
        return self._kept[index]

    def _open(self) -> Iterator[np.ndarray]:
        if self._stream is None:
            import itertools

            frames = iter_frames(self.shot.source, size=self.shot.size)
            self._stream = itertools.islice(frames, self.shot.start, None)
        return self._stream


def _flow_folder(shot: Shot) -> Path:
    if shot.flow_cache is not None:
        return Path(shot.flow_cache)
    return default_flow_cache() / shot.clip_key


def default_flow_cache() -> Path:
    """Where flows are cached unless told otherwise: `$NST_HOME/flow`, a folder per clip."""
    return cache_dir() / "flow"


def with_frames(shot: Shot, frames: tuple[np.ndarray, ...]) -> Shot:
    return replace(shot, frames=frames)
