"""Clips in: RGB frames, their rate and whether they have sound, from a video file (anything FFmpeg reads,
through PyAV) or a folder or glob of images, one frame at a time."""

from __future__ import annotations

import contextlib
import glob
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from nst.errors import VideoError
from nst.runtime.images import open_image, resized

# What a folder or a glob of frames contributes, by extension (a GIF is a clip of its own, not a frame).
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Clip:
    """A clip's frames as displayed (rotation applied), with what its video file says about it."""

    frames: tuple[np.ndarray, ...]  # (H, W, 3) uint8 RGB each, all of one size
    fps: Fraction | None  # None for frames from a folder or glob: they carry no rate
    audio: bool  # the video file has a sound track (write_video(..., audio_from=source) keeps it)
    source: Path | None  # the video file; None for frames from a folder or glob


@dataclass(frozen=True)
class ClipInfo:
    """What a clip is, read without decoding more than its first frame."""

    frames: int  # how many (a video's header count, else its packets counted)
    size: tuple[int, int]  # (height, width) as displayed
    fps: Fraction | None
    audio: bool
    source: Path | None


def read_clip(source: str | Path, *, size: tuple[int, int] | None = None) -> Clip:
    """Every frame of a video file (mp4, mov, webm, gif: anything FFmpeg reads), or of a folder or
    glob of images in natural order (frame2 before frame10), resized to `size` (height, width) with
    Lanczos when given. A missing, corrupt or unreadable source is a VideoError."""
    video = _video_file(source)
    frames = tuple(iter_frames(source, size=size))
    if video is None:
        return Clip(frames=frames, fps=None, audio=False, source=None)
    fps, audio = video_header(video)
    return Clip(frames=frames, fps=fps, audio=audio, source=video)


def probe_clip(source: str | Path) -> ClipInfo:
    """The clip's frame count, displayed size, rate and sound, to plan before decoding it all."""
    video = _video_file(source)
    first = next(iter_frames(source), None)
    if first is None:
        raise VideoError(f"{source} has no frame that can be decoded")
    size = (first.shape[0], first.shape[1])
    if video is None:
        return ClipInfo(frames=len(frame_files(source)), size=size, fps=None, audio=False, source=None)
    fps, audio = video_header(video)
    return ClipInfo(frames=_count_frames(video), size=size, fps=fps, audio=audio, source=video)


def iter_frames(source: str | Path, *, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """The clip's frames one at a time, (H, W, 3) uint8 RGB, resized to `size` when given: a long clip
    never has to sit in memory at its source resolution."""
    video = _video_file(source)
    frames = _decoded(video) if video is not None else _images(frame_files(source))
    first: tuple[int, ...] | None = None
    for index, frame in enumerate(frames):
        first = first or frame.shape
        if frame.shape != first:
            raise VideoError(
                f"frame {index + 1} of {source} is {frame.shape[1]}x{frame.shape[0]} px but the first is "
                f"{first[1]}x{first[0]}; the frames of a clip must share one size"
            )
        yield _resized(frame, size)


def frame_files(source: str | Path) -> list[Path]:
    """The image files of a folder (not its subfolders) or a glob, in natural order."""
    path = Path(source)
    if path.is_dir():
        found = [p for p in path.iterdir() if _is_frame(p)]
        if not found:
            raise VideoError(f"folder {path} holds no frames ({', '.join(FRAME_SUFFIXES)})")
    elif glob.has_magic(str(source)):
        found = [p for p in map(Path, glob.glob(str(source))) if _is_frame(p)]
        if not found:
            raise VideoError(f"{source} matches no frame ({', '.join(FRAME_SUFFIXES)})")
    else:
        raise VideoError(f"video not found: {source}")
    return sorted(found, key=_natural_key)


def _video_file(source: str | Path) -> Path | None:
    """The video file `source` names, or None when it is a folder or glob of frames."""
    path = Path(source)
    if path.is_dir() or (not path.exists() and glob.has_magic(str(source))):
        return None
    if not path.is_file():
        raise VideoError(f"video not found: {source}")
    if path.suffix.lower() in FRAME_SUFFIXES:
        raise VideoError(
            f"{path} is a single image; give a video file, a folder of frames or a glob such as 'frames/*.png'"
        )
    return path


def _is_frame(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in FRAME_SUFFIXES and not path.name.startswith(".")


def _natural_key(path: Path) -> tuple[Any, ...]:
    """frame2.png before frame10.png: runs of digits compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)), str(path)


def _images(files: list[Path]) -> Iterator[np.ndarray]:
    for file in files:
        yield np.asarray(open_image(file))


def _resized(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or frame.shape[:2] == tuple(size):
        return frame
    from PIL import Image

    return np.asarray(resized(Image.fromarray(frame), size))


def import_av() -> Any:
    try:
        import av
    except ImportError:
        raise VideoError("reading and writing video needs PyAV; pip install 'nst[video]'") from None
    return av


@contextlib.contextmanager
def reading_errors(path: Path) -> Iterator[None]:
    """FFmpeg's and the file system's errors as one VideoError line naming the file."""
    av = import_av()
    try:
        yield
    except (av.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise VideoError(f"cannot read video {path} ({reason}); is it a complete video file?") from None


def _decoded(path: Path) -> Iterator[np.ndarray]:
    av = import_av()
    with reading_errors(path), av.open(str(path)) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield upright(frame.to_ndarray(format="rgb24"), getattr(frame, "rotation", 0) or 0)


def upright(frame: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded frame as it displays: `rotation` is the display matrix's counter-clockwise angle
    (phones record portrait video as landscape frames with -90 there)."""
    quarters = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k=quarters)) if quarters else frame


def _video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        raise VideoError(f"{path} has no video stream")
    return container.streams.video[0]


def video_header(path: Path) -> tuple[Fraction | None, bool]:
    """(frame rate, has a sound track) of a video file."""
    av = import_av()
    with reading_errors(path), av.open(str(path)) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return (Fraction(rate) if rate else None), bool(container.streams.audio)


def _count_frames(path: Path) -> int:
    av = import_av()
    with reading_errors(path), av.open(str(path)) as container:
        stream = _video_stream(container, path)
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)  # webm and gif headers do not say
