"""`stylize_video`: clips (video files, frame folders or globs) stylized frame by frame with temporal
consistency, each into a video file or a folder of numbered PNGs, continuing what an earlier run left.

Each clip is read once here to key its frames and find its cuts; its shots (the whole clip without
cuts) become jobs run where `execution` says, as stylize-batch runs images; finished frames come back
encoded and are written here as they arrive, each with its manifest line, so that a run that stops at
any point, or fails at a frame, keeps what is done, and running it again continues from there.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from nst.batch.driver import check_styles, run_jobs
from nst.batch.execution import Execution
from nst.batch.worker import Inputs, Outcome
from nst.contract import ModelInfo, read_model_info
from nst.errors import ConfigError, NSTWarning, VideoError
from nst.export.cached import resolve_model
from nst.fileio import file_sha256
from nst.runtime.config import StylizeConfig, applied_options
from nst.runtime.icc import output_profile
from nst.runtime.images import resized_shape
from nst.runtime.loss_scale import resolve_loss_scale
from nst.video.cuts import CutFinder
from nst.video.driver import FrameEvent, Shot
from nst.video.flow import frame_key
from nst.video.output import ClipOutput
from nst.video.reading import frame_files, iter_frames, probe_clip
from nst.video.scale import SHOTS, run_shot_task
from nst.video.settings import VideoSettings

DEFAULT_FPS = Fraction(24)  # the rate of a video made from frames, which carry none


@dataclass(frozen=True)
class VideoPlanned:
    """Reported once before any frame: how much there is to do."""

    kind: Literal["planned"] = field(default="planned", init=False)
    frames: int  # in every clip
    to_make: int  # frame runs left (frames times passes, less what is done)
    iterations: int  # their iterations, all told
    done: int = 0  # iterations of frames in progress done already (resumed)
    resumed: dict[int, int] = field(default_factory=dict)  # shot -> the iteration its resumed frame is at


@dataclass(frozen=True)
class ClipResult:
    """One clip: what it holds now, and what this run did."""

    source: str
    target: Path
    frames: int
    shots: int
    made: int  # frames made (or made again, by a later pass) by this run
    complete: bool  # every frame is made (and a video output written)


class VideoInterrupted(KeyboardInterrupt):
    """Ctrl-C: the frames made so far are written, and a frame in progress saved its state."""

    def __init__(self, made: int):
        super().__init__("video interrupted")
        self.made = made


@dataclass
class _Clip:
    index: int
    source: str
    output: ClipOutput
    sources: list[str]  # the frames' keys
    shots: list[Shot]
    fps: Fraction | None
    audio_from: Path | None
    made: set[int] = field(default_factory=set)  # frames made by this run


def stylize_video(
    clips: Sequence[tuple[str | Path, str | Path]],
    *,
    styles: Sequence[str | Path] = (),
    targets: str | Path | None = None,
    config: StylizeConfig = StylizeConfig(),
    video: VideoSettings = VideoSettings(),
    model: str | Path | None = None,
    overwrite: bool = False,
    execution: Execution = Execution(),
    fps: Fraction | None = None,
    flow_cache: str | Path | None = None,
    history: bool = False,
    callback: Callable[[Any], None] | None = None,
) -> list[ClipResult]:
    """Stylize each (source, target) clip. A target with a video extension (.mp4, .webm, .mov, .gif) is
    written once every frame is made, at `fps` (default: the source's) with the source's sound; any
    other target is a folder of numbered PNGs. Frames an earlier run made with the same settings are
    kept; frames made otherwise are refused unless `overwrite` (then they are made again).

    `callback` gets a `VideoPlanned`, then each `FrameEvent`. A frame that fails raises a VideoError
    after the frames made are written; Ctrl-C raises `VideoInterrupted`.
    """
    style_paths, target_path = check_styles(styles, targets)
    identity = _inputs_identity(style_paths, target_path)
    model_path = resolve_model(model, pooling=config.pooling)
    info = read_model_info(model_path)  # its metadata: the weights load in the workers
    config = resolve_loss_scale(config, info)  # auto, as stylize does
    video = video.resolved(config)
    settings = _settings(config, video, info, identity)
    options: dict[str, Any] = {
        "config": config,
        "video": video,
        "settings": settings,
        "overwrite": overwrite,
        "flow_cache": flow_cache,
        "history": history,
    }
    prepared = [_prepare(i, str(source), Path(target), **options) for i, (source, target) in enumerate(clips)]
    pending = [shot for clip in prepared for shot in clip.shots if shot.done < len(shot.schedule())]
    shots = [replace(shot, index=i) for i, shot in enumerate(pending)]  # the jobs' numbers
    report = callback or (lambda event: None)
    report(_planned(prepared, shots))
    writer = _Writer(prepared, shots, settings, report)
    try:
        if shots:
            inputs = Inputs(model_path, config, style_paths, target_path, history)
            run_jobs(
                shots,
                inputs,
                execution,
                device=config.device,
                on_event=writer.event,
                on_outcome=writer.outcome,
                task=run_shot_task,
                remote=SHOTS,
            )
    except KeyboardInterrupt:
        raise VideoInterrupted(sum(len(clip.made) for clip in prepared)) from None
    return [_finish(clip, settings, fps) for clip in prepared]


def _inputs_identity(styles: tuple[Path, ...], targets: Path | None) -> dict[str, Any]:
    if targets is not None:
        return {"targets": file_sha256(targets)}
    return {"styles": [file_sha256(s) for s in styles]}


def _settings(config: StylizeConfig, video: VideoSettings, model: ModelInfo, inputs: dict[str, Any]) -> dict[str, Any]:
    """What a frame's result depends on besides its input frame: the options, the network, the styles."""
    options = {**applied_options(config), **video.options()}
    inputs = {"model": model.weights_sha256, **inputs}
    identity = json.dumps({"options": options, **inputs}, sort_keys=True)
    return {"options": options, "inputs": inputs, "key": hashlib.sha256(identity.encode()).hexdigest()[:24]}


def _prepare(
    index: int,
    source: str,
    target: Path,
    *,
    config: StylizeConfig,
    video: VideoSettings,
    settings: dict[str, Any],
    overwrite: bool,
    flow_cache: str | Path | None,
    history: bool,
) -> _Clip:
    """A clip read once (its frames keyed, its cuts found), its output opened and checked against what
    an earlier run left, and its shots planned from where that run stopped."""
    from nst.runtime.plan import check_sizes  # plan loads torch; importing this module does not

    info = probe_clip(source)
    size = resized_shape(info.size, long_side=config.size, width=config.width)
    output = ClipOutput.open(target, overwrite=overwrite)
    if output.video and target.suffix.lower() != ".gif":  # yuv420p: even sides, so that the writer never pads
        size = (max(16, size[0] - size[0] % 2), max(16, size[1] - size[1] % 2))
    check_sizes(info.size, size, name=source)
    keys, cuts = [], CutFinder()
    for frame in iter_frames(source, size=size):
        keys.append(frame_key(frame))
        if video.cuts:
            cuts.add(frame)
    conflict = output.conflict(
        settings=settings["key"], sources=keys, options=settings["options"], inputs=settings["inputs"]
    )
    if conflict is not None and not overwrite:
        raise ConfigError(f"{conflict}; pass --overwrite to make them again, or choose another output")
    output.remove_past(len(keys))
    bit_depth, profile = _encoding(config, source, output)
    clip_key = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', clip_name(source))[:40]}-{hashlib.sha256(''.join(keys).encode()).hexdigest()[:12]}"
    shots = []
    for start, stop in cuts.shots() if video.cuts else [(0, len(keys))]:
        shot = Shot(
            index=0,
            clip=index,
            source=source,
            start=start,
            stop=stop,
            size=size,
            config=config,
            video=video,
            bit_depth=bit_depth,
            profile=profile,
            clip_key=clip_key,
            history=history,
            flow_cache=str(flow_cache) if flow_cache is not None else None,
        )
        shots.append(_continued(shot, output, keys, settings["key"]))
    audio_from = info.source if info.audio else None
    return _Clip(index, source, output, keys, shots, info.fps, audio_from)


def clip_name(source: str) -> str:
    """A clip's name: a file's stem, a folder's name, or a glob's folder's name."""
    path = Path(source)
    return path.parent.name if "*" in path.name or "?" in path.name else path.stem or path.name


def _encoding(config: StylizeConfig, source: str, output: ClipOutput) -> tuple[Any, bytes | None]:
    """The frames' bit depth and ICC profile: 16 bits and the content's profile for frame folders only."""
    if output.video and config.bit_depth == 16:
        raise ConfigError(f"--bit-depth 16 needs a folder of PNG frames; {output.target.name} holds 8 bits")
    if config.output_profile == "srgb":
        return config.bit_depth, None
    if output.video or Path(source).is_file():
        raise ConfigError("--output-profile content needs frames in image files, in and out; videos are sRGB")
    return config.bit_depth, output_profile("content", frame_files(source)[0], bit_depth=config.bit_depth)


def _continued(shot: Shot, output: ClipOutput, keys: list[str], settings: str) -> Shot:
    """The shot from where an earlier run stopped: its schedule's entries made already skipped, the
    outputs the rest needs, and the state of a frame it left in progress."""
    order = shot.schedule()
    made = {f: output.made(f, settings=settings, source=keys[f]) for f in range(shot.start, shot.stop)}
    done = 0
    while done < len(order) and made[order[done][1]] >= order[done][0]:
        done += 1
    rest = order[done:]
    needed = {n for p, f in rest for n in shot.neighbours(p, f)} | {f for p, f in rest if p > 1}
    outputs = {f: output.frame_path(f).read_bytes() for f in sorted(needed) if made[f]}
    resume = None
    if rest:
        resume, problem = output.load_state(rest[0][1], rest[0][0])
        if problem is not None:
            warnings.warn(problem, NSTWarning, stacklevel=4)
    return replace(shot, done=done, outputs=outputs, resume=resume)


def _planned(clips: list[_Clip], shots: list[Shot]) -> VideoPlanned:
    iterations = done = 0
    resumed: dict[int, int] = {}
    for shot in shots:
        for position, (p, f) in enumerate(shot.schedule()[shot.done :]):
            iterations += shot.video.iterations(shot.config, first=p == 1 and f == shot.start)
            if position == 0 and shot.resume is not None:
                done += shot.resume.iteration
                resumed[shot.index] = shot.resume.iteration
    runs = sum(len(s.schedule()) - s.done for s in shots)
    return VideoPlanned(sum(len(c.sources) for c in clips), runs, iterations, done, resumed)


class _Writer:
    """The driver's side of the events: each frame written with its manifest line as it arrives, each
    state saved, the rest passed on."""

    def __init__(self, clips: list[_Clip], shots: list[Shot], settings: dict[str, Any], report: Callable[[Any], None]):
        self.clips, self.settings, self.report = clips, settings, report
        self.shots = {shot.index: shot for shot in shots}

    def event(self, event: FrameEvent) -> None:
        clip, shot = self.clips[event.clip], self.shots[event.shot]
        if event.kind == "frame" and event.data is not None:
            record = {
                "frame": event.frame + 1,
                "pass": event.pass_index,
                "shot": [shot.start + 1, shot.stop],
                "input": clip.sources[event.frame],
                "settings": self.settings["key"],
                "seed": shot.config.seed,
                "iterations": event.iterations,
                "seconds": round(event.seconds, 3),
                "worker": event.worker,
                "options": self.settings["options"],
                **self.settings["inputs"],
            }
            if event.history:
                record["losses"] = [float(f"{v:.6g}") for v in event.history]
            clip.output.write_frame(event.frame, event.data, record)
            clip.made.add(event.frame)
        elif event.kind == "state" and event.state is not None:
            clip.output.save_state(event.frame, event.pass_index, event.state)
        elif event.kind == "note":
            warnings.warn(f"{Path(clip.source).name}: {event.message}", NSTWarning, stacklevel=2)
        self.report(event)

    def outcome(self, shot: Shot, outcome: Outcome) -> None:
        if outcome.error:
            clip = self.clips[shot.clip]
            raise VideoError(
                f"{Path(clip.source).name}: {outcome.error}; the frames made are kept in {clip.output.folder}; "
                "run the same command again to continue"
            )


def _finish(clip: _Clip, settings: dict[str, Any], fps: Fraction | None) -> ClipResult:
    """A clip whose frames are all made: a video output encoded (and its frame folder removed)."""
    passes = clip.shots[0].video.passes if clip.shots else 1
    made = [clip.output.made(f, settings=settings["key"], source=key) for f, key in enumerate(clip.sources)]
    complete = all(p >= passes for p in made)
    if complete and clip.output.video:
        clip.output.encode(len(clip.sources), fps=fps or clip.fps or DEFAULT_FPS, audio_from=clip.audio_from)
    return ClipResult(clip.source, clip.output.target, len(clip.sources), len(clip.shots), len(clip.made), complete)
