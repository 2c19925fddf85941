"""Tiny clips for the video tests, built at test time from the example photos: a pan with a known
shift between frames, and video files with or without a sound track written straight through PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SIZE = (96, 128)  # (height, width) of every test frame


def photo(name: str = "astronaut", width: int = 256) -> np.ndarray:
    """An example photo resized to `width`, (H, W, 3) uint8."""
    from PIL import Image

    img = Image.open(EXAMPLES / f"{name}.jpg").convert("RGB")
    return np.asarray(img.resize((width, round(width * img.height / img.width)), Image.Resampling.LANCZOS))


def pan(frames: int = 8, shift: tuple[int, int] = (3, 0), name: str = "astronaut") -> list[np.ndarray]:
    """A camera pan: frame t + 1 is frame t moved by `shift` (dx, dy) px, so that
    frame[t + 1](p) = frame[t](p + shift) and the backward flow is `shift` everywhere it exists."""
    image = photo(name)
    dx, dy = shift
    h, w = SIZE
    x0, y0 = 60 - min(dx, 0) * frames, 40 - min(dy, 0) * frames  # room for the whole pan
    assert y0 + h + max(dy, 0) * frames <= image.shape[0] and x0 + w + max(dx, 0) * frames <= image.shape[1]
    return [image[y0 + t * dy : y0 + t * dy + h, x0 + t * dx : x0 + t * dx + w].copy() for t in range(frames)]


def make_video(path: Path, frames: list[np.ndarray], *, fps: Fraction, audio: bool = False) -> Path:
    """`frames` as H.264 (mp4, mov) or VP9 (webm), with a 440 Hz AAC or Opus tone as long as the clip
    when `audio`."""
    import av

    webm = path.suffix == ".webm"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx-vp9" if webm else "libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        sound = out.add_stream("libopus" if webm else "aac", rate=48000) if audio else None
        for frame in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None:
            n = int(48000 * len(frames) / fps)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)[None]  # (1, n)
            chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, 0
            out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path
