"""`nst stylize-video`: video files or frame folders -> stylized videos or frame folders, frame by frame
with temporal consistency (Ruder et al. 2016)."""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nst.batch.execution import Execution
from nst.cli import INTERRUPTED
from nst.cli.execution_options import execution_options
from nst.cli.options import CommaList, Ranged
from nst.cli.stylize_options import STYLES, ModelSource, Reporting, stylize_config, stylize_options
from nst.errors import ConfigError
from nst.video.settings import LATER_SHARE, RULES, TEMPORAL_WEIGHTS, VideoSettings

if TYPE_CHECKING:
    from nst.video.run import ClipResult

_V = VideoSettings()


def _fps(value: Any) -> Fraction | None:
    if value is None:
        return None
    try:
        rate = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"{value!r} is not a frame rate (25, 29.97 or 30000/1001)") from None
    if not 0 < rate <= 1000:
        raise click.BadParameter(f"must be above 0 and at most 1000, got {value!r}")
    return rate


@click.command("stylize-video")
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@STYLES
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="OUTPUT",
    help="A video file (.mp4, .webm, .mov, .gif: the source's frame rate and sound), or a folder of "
    "numbered PNG frames. With several INPUTs, put {name} in it: 'out/{name}.mp4'.",
)
@click.option(
    "--temporal-weight",
    type=Ranged(float, RULES["temporal_weight"]),
    help="How strongly each frame is held to the previous output warped into it (0: not at all).  "
    f"[default: {', '.join(f'{w:g} {scale}' for scale, w in TEMPORAL_WEIGHTS.items())}]",
)
@click.option(
    "--later-iterations",
    type=Ranged(int, RULES["later_iterations"]),
    help="Iterations of each frame after a shot's first, which starts warm.  "
    f"[default: {LATER_SHARE:g} x --iterations]",
)
@click.option(
    "--flow",
    type=click.Choice(["dis", "farneback"]),
    default=_V.flow,
    show_default=True,
    help="Optical flow: OpenCV's DIS (medium preset), or Farnebäck.",
)
@click.option(
    "--long-term",
    type=CommaList(int, RULES["long_term"]),
    default="1",
    show_default=True,
    metavar="N[,N...]",
    help="Hold each frame to these earlier frames too (1: the previous), each where "
    "the closer ones cannot see, e.g. 1,2,4: less ghosting behind moving objects.",
)
@click.option(
    "--passes",
    type=Ranged(int, RULES["passes"]),
    default=_V.passes,
    show_default=True,
    help="Passes over each shot, alternating direction, the iterations spread over them (Ruder et "
    "al.'s multi-pass; steadier under strong camera motion, slower).",
)
@click.option(
    "--cuts/--no-cuts",
    default=_V.cuts,
    show_default=True,
    help="At a hard cut, start a new shot from noise; shots run in parallel with --workers or --ray.",
)
@click.option(
    "--fps",
    callback=lambda _ctx, _param, value: _fps(value),
    metavar="RATE",
    help="Frame rate of a video made from frames.  [default: the source's; 24 for frames]",
)
@click.option(
    "--flow-cache",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Where flows are cached (a second style over a clip estimates none).  [default: $NST_HOME/flow/<clip>]",
)
@execution_options("shot")
@stylize_options
def stylize_video_cmd(
    inputs: tuple[str, ...],
    styles: tuple[Path, ...],
    output: str,
    temporal_weight: float | None,
    later_iterations: int | None,
    flow: str,
    long_term: tuple[int, ...],
    passes: int,
    cuts: bool,
    fps: Fraction | None,
    flow_cache: Path | None,
    execution: Execution,
    source: ModelSource,
    report: Reporting,
    options: dict[str, Any],
) -> None:
    """Stylize each INPUT (a video file, a folder of frames, or a quoted glob such as 'frames/*.png')
    with the --style images (or --targets), frame by frame, into OUTPUT.

    Each frame after a shot's first starts from the previous output warped along the optical flow and
    is held to it where the flow can be trusted, so that the style moves with the picture instead of
    flickering. Every `nst stylize` option applies (--iterations is a shot's first frame's).

    Running the same command again continues: frames made are kept, a frame in progress resumes from
    its last checkpoint (--checkpoint-iterations) or Ctrl-C, and flows are cached, so another style
    over the clip estimates none. OUTPUT's folder holds the frames, manifest.jsonl (a line per frame:
    settings, losses, seconds) and .nst/ (states of frames in progress); a video's frames wait in a
    hidden folder beside it until it is written. --log keeps each frame's losses per iteration in its
    manifest line; --overwrite makes again frames made with other settings.

    \b
    nst stylize-video clip.mp4 -s style.jpg -o out.mp4
    nst stylize-video 'frames/*.png' -s style.jpg -o out/ --long-term 1,2,4
    nst stylize-video a.mp4 b.mp4 -s style.jpg -o 'out/{name}.mp4' --workers 2
    """
    from nst.runtime.ort_extractor import check_provider
    from nst.video.output import previous_seed

    _require_extra()
    clips = _clips(inputs, output)
    if report.plot:
        raise ConfigError("stylize-video plots no losses; each frame's are in its line of the manifest")
    if options["seed"] is None:  # a run that continues keeps the seed it started with
        options["seed"] = next((s for _, target in clips if (s := previous_seed(Path(target))) is not None), None)
    config = stylize_config(options)
    video = VideoSettings(
        temporal_weight=temporal_weight,
        later_iterations=later_iterations,
        long_term=long_term,
        passes=passes,
        flow=flow,  # type: ignore[arg-type]
        cuts=cuts,
    )
    if execution.ray is None:
        check_provider(config.provider)
    from nst.cli.stylize_cmd import choose_backends

    choose_backends(config.device)
    model = source.resolve(config.pooling)
    _run(clips, styles, source.targets, model, config, video, execution, fps, flow_cache, report)


def _require_extra() -> None:
    try:
        import av  # noqa: F401
        import cv2  # noqa: F401
    except ImportError:
        raise ConfigError("stylize-video needs OpenCV and PyAV: pip install 'nst[video]'") from None


def _clips(inputs: tuple[str, ...], output: str) -> list[tuple[str, str]]:
    """(input, output) pairs: OUTPUT as given for one INPUT; with several, {name} in OUTPUT takes each
    one's name (a file's stem, a folder's name, a glob's folder's name)."""
    from nst.video.run import clip_name

    if len(inputs) == 1:
        return [(inputs[0], output.replace("{name}", clip_name(inputs[0])))]
    if "{name}" not in output:
        raise click.UsageError("with several INPUTs, -o must contain {name}, e.g. -o 'out/{name}.mp4'")
    pairs = [(source, output.replace("{name}", clip_name(source))) for source in inputs]
    targets = [target for _, target in pairs]
    repeated = next((t for t in targets if targets.count(t) > 1), None)
    if repeated is not None:
        raise click.UsageError(f"two INPUTs would both write {repeated}; give them different names")
    return pairs


def _run(
    clips: list[tuple[str, str]],
    styles: tuple[Path, ...],
    targets: Path | None,
    model: Path,
    config: Any,
    video: VideoSettings,
    execution: Execution,
    fps: Fraction | None,
    flow_cache: Path | None,
    report: Reporting,
) -> None:
    from nst.cli.progress import VideoDisplay, hardware_lines
    from nst.video.run import VideoInterrupted, VideoPlanned, stylize_video

    start = time.perf_counter()
    display = VideoDisplay(quiet=report.quiet, print_every=report.print_every)

    def on_event(event: Any) -> None:
        if isinstance(event, VideoPlanned):  # the clips and model checked: no one-line error can follow
            for line in hardware_lines(config.device, config.precision, quiet=report.quiet):
                click.echo(line, err=True)
        display(event)

    try:
        results = stylize_video(
            clips,
            styles=styles,
            targets=targets,
            config=config,
            video=video,
            model=model,
            overwrite=report.overwrite,
            execution=execution,
            fps=fps,
            flow_cache=flow_cache,
            history=report.log,
            callback=on_event,
        )
    except VideoInterrupted as stop:
        display.close()
        click.echo(
            f"Interrupted: {stop.made} frame(s) made this run are kept (and a frame in progress saved); run the "
            "same command again to continue",
            err=True,
        )
        sys.exit(INTERRUPTED)
    finally:
        display.close()
    click.echo(_summary(results, time.perf_counter() - start))


def _summary(results: list[ClipResult], seconds: float) -> str:
    lines = []
    for result in results:
        kept = "" if result.made >= result.frames else f", {result.frames - min(result.made, result.frames)} kept"
        shots = f" in {result.shots} shots" if result.shots > 1 else ""
        lines.append(f"wrote {result.target} ({result.frames} frames{shots}: {result.made} made{kept})")
    minutes, secs = divmod(seconds, 60)
    took = f"{int(minutes)} min {secs:.0f} s" if minutes else f"{secs:.1f} s"
    return "\n".join(lines) + f" in {took}"
