"""Clips out: frames written atomically as a video (H.264, VP9 or GIF) with the source's sound, or as a
folder of numbered PNGs."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from nst.errors import ConfigError, NSTWarning, OutputError
from nst.fileio import atomic_path
from nst.runtime.images import from_array, save_image
from nst.video.reading import import_av, reading_errors, video_header

# Video outputs, by extension: (muxer, video codec, pixel format, encoder options). yuv420p is what every
# player decodes; x264 at CRF 18 is close to visually lossless, VP9 at CRF 30 with no bitrate cap the same.
_WRITERS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    ".mp4": ("mp4", "libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".mov": ("mov", "libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".webm": ("webm", "libvpx-vp9", "yuv420p", {"crf": "30", "b": "0"}),
}
VIDEO_OUTPUTS = (*_WRITERS, ".gif")

# Audio codecs each container holds as they are (the packets are copied); any other is re-encoded to
# the second entry.
_AUDIO: dict[str, tuple[frozenset[str], str]] = {
    "mp4": (frozenset({"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"}), "aac"),
    "mov": (frozenset({"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"}), "aac"),
    "webm": (frozenset({"opus", "vorbis"}), "libopus"),
}


def write_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    *,
    fps: Fraction | float,
    audio_from: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write (H, W, 3) uint8 RGB frames as a video at `fps`, atomically; the format follows the
    extension (.mp4, .mov: H.264; .webm: VP9; .gif). `audio_from` is a video file whose sound track is
    copied in (re-encoded only when the container cannot hold its codec) and cut at the video's end.

    H.264 and VP9 in yuv420p need an even width and height: an odd one gets its last row or column
    repeated once (every stylized pixel is kept; plan even sizes to avoid it). A GIF has no sound (a
    warning says the track is left out), its frame delays are whole hundredths of a second (24 fps
    plays at 25), and Pillow merges identical consecutive frames into one longer frame.
    """
    path, rate = Path(path), _rate(fps)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_OUTPUTS:
        raise OutputError(f"cannot tell the video format of {path}; use one of {', '.join(VIDEO_OUTPUTS)}")
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise ValueError("write_video needs at least one frame")
    source = Path(audio_from) if audio_from is not None else None
    if suffix == ".gif":
        if source is not None and video_header(source)[1]:
            warnings.warn(f"a GIF has no sound; the audio of {source} is left out", NSTWarning, stacklevel=2)
        return _write_gif(first, stream, path, rate, overwrite)
    with atomic_path(path, overwrite=overwrite) as tmp, _writing(path):
        _encode(first, stream, tmp, _WRITERS[suffix], rate, source)
    return path


def write_frames(
    frames: Iterable[np.ndarray], folder: str | Path, *, start: int = 1, overwrite: bool = False
) -> list[Path]:
    """Write frames as numbered PNGs (`frame_path`) into `folder`, made if missing, each atomically."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make folder {folder} ({exc.strerror or exc}); choose another output") from None
    return [write_frame(frame, frame_path(folder, start + i), overwrite=overwrite) for i, frame in enumerate(frames)]


def write_frame(frame: np.ndarray, path: str | Path, *, overwrite: bool = False) -> Path:
    """One (H, W, 3) frame as an image file, atomically (the format follows the extension)."""
    return save_image(from_array(frame), path, overwrite=overwrite)


def frame_path(folder: str | Path, index: int) -> Path:
    """The file of frame `index` (1-based) in a folder of frames: 00001.png, ..."""
    return Path(folder) / f"{index:05d}.png"


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    av = import_av()
    try:
        yield
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OutputError(f"cannot write video {path} ({reason})") from None


def _rate(fps: Fraction | float) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    if not rate > 0 or rate > 1000:
        raise ConfigError(f"a frame rate must be between 0 and 1000 fps, got {fps}")
    return rate


def _even(frame: np.ndarray) -> np.ndarray:
    """yuv420p halves the chroma: an odd side gets its last row or column once more."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else frame


def _as_rgb8(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames are (H, W, 3) RGB arrays, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)


def _encode(
    first: np.ndarray,
    rest: Iterator[np.ndarray],
    tmp: Path,
    writer: tuple[str, str, str, dict[str, str]],
    rate: Fraction,
    audio_from: Path | None,
) -> None:
    av = import_av()
    muxer, codec, pix_fmt, options = writer
    shape = first.shape
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(av.open(str(tmp), mode="w", format=muxer))
        stream = out.add_stream(codec, rate=rate, options=dict(options))
        height, width = _even(first).shape[:2]
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # The sound track's stream must exist before the first packet writes the header.
        audio = _AudioCopy.open(stack, audio_from, out, muxer) if audio_from is not None else None
        count = 0
        for frame in _chain(first, rest):
            if frame.shape != shape:
                raise ValueError(f"frame {count + 1} has shape {frame.shape}, the first {shape}")
            image = av.VideoFrame.from_ndarray(_even(_as_rgb8(frame)), format="rgb24")
            out.mux(stream.encode(image))
            count += 1
        out.mux(stream.encode(None))
        if audio is not None:
            audio.mux(duration=count / rate)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


@dataclass
class _AudioCopy:
    """The first sound track of a video file, copied (or re-encoded) into an output container."""

    source: Any  # the input container
    track: Any  # its audio stream
    out: Any  # the output container
    stream: Any  # the output's audio stream
    reencode: bool

    @classmethod
    def open(cls, stack: contextlib.ExitStack, path: Path, out: Any, muxer: str) -> _AudioCopy | None:
        av = import_av()
        source = stack.enter_context(_reading_container(av, path))
        if not source.streams.audio:
            return None
        track = source.streams.audio[0]
        allowed, encoder = _AUDIO[muxer]
        if track.codec_context.name in allowed:
            return cls(source, track, out, out.add_stream_from_template(track), reencode=False)
        rate = 48000 if encoder == "libopus" else (track.rate or 48000)  # Opus runs at 48 kHz
        stream = out.add_stream(encoder, rate=rate)
        stream.layout = track.layout if track.layout.nb_channels <= 2 else "stereo"
        return cls(source, track, out, stream, reencode=True)

    def mux(self, *, duration: Fraction) -> None:
        """Every packet (or re-encoded frame) that starts before `duration` seconds."""
        with reading_errors(Path(self.source.name)):
            if not self.reencode:
                for packet in self.source.demux(self.track):
                    if packet.dts is None:  # the demuxer's final empty packet
                        continue
                    if packet.pts is not None and packet.pts * packet.time_base >= duration:
                        break
                    packet.stream = self.stream
                    self.out.mux(packet)
                return
            for frame in self.source.decode(self.track):
                if frame.time is not None and frame.time >= duration:
                    break
                frame.pts = None  # the encoder numbers its own frames
                self.out.mux(self.stream.encode(frame))
            self.out.mux(self.stream.encode(None))


@contextlib.contextmanager
def _reading_container(av: Any, path: Path) -> Iterator[Any]:
    with reading_errors(path):
        container = av.open(str(path))
    try:
        yield container
    finally:
        container.close()


def _write_gif(first: np.ndarray, rest: Iterator[np.ndarray], path: Path, rate: Fraction, overwrite: bool) -> Path:
    from PIL import Image

    images = [Image.fromarray(_as_rgb8(frame)) for frame in _chain(first, rest)]
    # GIF delays are in hundredths of a second, and browsers slow anything under 2 to 10.
    delay = max(2, round(100 / rate)) * 10  # ms
    with atomic_path(path, overwrite=overwrite) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=delay, loop=0)
    return path
