"""Optical flow between two frames (OpenCV's DIS or Farnebäck), forward and backward with their
consistency masks, cached per frame pair so that a second style over the same clip estimates none."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nst.errors import VideoError
from nst.fileio import atomic_path
from nst.video.consistency import reliability

FlowMethod = Literal["dis", "farneback"]
DisPreset = Literal["ultrafast", "fast", "medium"]

# Farnebäck's parameters as OpenCV's own dense-flow sample sets them: pyramid scale 0.5, 3 levels, a
# 15 px window, 3 iterations, a polynomial of 5 px with sigma 1.2.
_FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)

# Bumped when what a cache file holds, or how it is computed, changes.
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class FlowSettings:
    """How flow is estimated. DIS medium takes tens of milliseconds a frame pair and is the default;
    Farnebäck is the fallback other PyTorch ports of Ruder et al. use."""

    method: FlowMethod = "dis"
    preset: DisPreset = "medium"  # DIS only

    def key(self) -> str:
        """What a cached flow depends on: the method, its preset, OpenCV's version and the format."""
        cv2 = _import_cv2()
        fields = {"method": self.method, "opencv": cv2.__version__, "format": _CACHE_FORMAT}
        if self.method == "dis":
            fields["preset"] = self.preset
        return json.dumps(fields, sort_keys=True)


@dataclass(frozen=True)
class FramePair:
    """The flows between an earlier frame a and a later frame b, and where each can be trusted.

    Flows are (H, W, 2) float32 (x, y) displacements in pixels: a(p) ~ b(p + forward(p)) and
    b(p) ~ a(p + backward(p)). Masks are (H, W) float32 in [0, 1] (`consistency.reliability`)."""

    forward: np.ndarray
    backward: np.ndarray
    reliable_later: np.ndarray  # in b: where a's output warped by `backward` holds
    reliable_earlier: np.ndarray  # in a: where b's output warped by `forward` holds (backward passes)


def estimate_flow(source: np.ndarray, target: np.ndarray, *, settings: FlowSettings = FlowSettings()) -> np.ndarray:
    """Flow from `source` to `target` ((H, W, 3) uint8 RGB frames): (H, W, 2) float32 such that
    source(p) ~ target(p + flow(p)). Both are seen in grayscale, as OpenCV's estimators take them."""
    cv2 = _import_cv2()
    if source.shape != target.shape:
        raise ValueError(f"frames of one clip share a shape, got {source.shape} and {target.shape}")
    a, b = (cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in (source, target))
    if settings.method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, *_FARNEBACK)
    else:
        preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{settings.preset.upper()}")
        flow = cv2.DISOpticalFlow_create(preset).calc(a, b, None)
    return np.asarray(flow, dtype=np.float32)


def frame_pair(earlier: np.ndarray, later: np.ndarray, *, settings: FlowSettings = FlowSettings()) -> FramePair:
    """Both flows between two frames and their consistency masks (Ruder et al.'s check)."""
    forward = estimate_flow(earlier, later, settings=settings)
    backward = estimate_flow(later, earlier, settings=settings)
    return FramePair(
        forward=forward,
        backward=backward,
        reliable_later=reliability(backward, forward),
        reliable_earlier=reliability(forward, backward),
    )


def frame_key(frame: np.ndarray) -> str:
    """A frame's identity for the cache: a hash of its pixels and shape."""
    digest = hashlib.sha256(np.ascontiguousarray(frame).tobytes())
    digest.update(repr(frame.shape).encode())
    return digest.hexdigest()


class FlowCache:
    """Frame pairs' flows and masks in a folder, one .npz per pair, named by a hash of both frames'
    pixels and the flow settings: any clip, at any size, can share the folder, and a pair is
    estimated once however many styles or re-runs use it. A file that cannot be read is estimated
    and written again (a cache never stops a run). A pair takes 10 bytes a pixel (1.5 MB at 512x288)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.hits = self.misses = 0

    def pair(
        self,
        earlier: np.ndarray,
        later: np.ndarray,
        *,
        settings: FlowSettings = FlowSettings(),
        keys: tuple[str, str] | None = None,
    ) -> FramePair:
        """The pair's flows and masks, from the cache or estimated and stored. `keys` are the frames'
        `frame_key`s, when the caller has them already."""
        a, b = keys if keys is not None else (frame_key(earlier), frame_key(later))
        identity = json.dumps({"earlier": a, "later": b, "settings": settings.key()}, sort_keys=True)
        path = self.folder / f"flow-{hashlib.sha256(identity.encode()).hexdigest()[:40]}.npz"
        found = _load(path, identity, earlier.shape[:2])
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        stored = _compact(frame_pair(earlier, later, settings=settings))
        self._store(path, identity, stored)
        return _expanded(stored)

    def _store(self, path: Path, identity: str, pair: FramePair) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VideoError(f"cannot make the flow cache {self.folder} ({exc.strerror or exc})") from None
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, identity=np.array(identity), **{name: getattr(pair, name) for name in _ARRAYS})


_ARRAYS = ("forward", "backward", "reliable_later", "reliable_earlier")


def _compact(pair: FramePair) -> FramePair:
    """The pair as the cache holds it, at half the size: flows in float16 (under 0.01 px of rounding
    below 16 px of motion, 1/32 px up to 64 px) and masks in 8 bits, as Ruder et al.'s PGM files.
    A fresh pair is returned through the same rounding, so a run gives the same images whether its
    flows were estimated or read back."""
    return FramePair(
        forward=pair.forward.astype(np.float16),
        backward=pair.backward.astype(np.float16),
        reliable_later=np.rint(pair.reliable_later * 255).astype(np.uint8),
        reliable_earlier=np.rint(pair.reliable_earlier * 255).astype(np.uint8),
    )


def _expanded(pair: FramePair) -> FramePair:
    return FramePair(
        forward=pair.forward.astype(np.float32),
        backward=pair.backward.astype(np.float32),
        reliable_later=pair.reliable_later.astype(np.float32) / 255,
        reliable_earlier=pair.reliable_earlier.astype(np.float32) / 255,
    )


def _load(path: Path, identity: str, size: tuple[int, ...]) -> FramePair | None:
    """The pair stored at `path`, or None when it is missing, unreadable or not this pair's."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["identity"]) != identity:
                return None
            arrays = {name: data[name] for name in _ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    if any(array.shape[:2] != tuple(size) for array in arrays.values()):
        return None
    return _expanded(FramePair(**arrays))


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise VideoError("optical flow needs OpenCV; pip install 'nst[video]'") from None
    return cv2
