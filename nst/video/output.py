"""Where a clip's stylized frames go and what an earlier run left there: a folder of numbered PNGs (the
output itself, or for a video output a hidden folder beside it that the video is encoded from) with its
manifest (a line per frame made: its settings, its input frame, its losses), and the run states of
frames in progress under `.nst/`. Nothing else is written there, and nothing else is touched there."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from nst.batch.manifest import MANIFEST, Manifest
from nst.errors import OutputError, StateError, option_name
from nst.fileio import atomic_path, check_writable
from nst.runtime.images import open_image
from nst.runtime.state import RunState, load_state, save_state
from nst.video.writing import VIDEO_OUTPUTS, frame_path, write_video

WORK = ".nst"  # inside the frame folder: the states of frames in progress
_FRAME = re.compile(r"^(\d{5,})\.png$")


def frames_folder(target: Path) -> tuple[Path, bool]:
    """(the folder the frames of `target` go to, whether `target` is a video file)."""
    if target.suffix.lower() in VIDEO_OUTPUTS:
        return target.with_name(f".{target.name}.frames"), True
    return target, False


def previous_seed(target: Path) -> int | None:
    """The seed of the frames an earlier run left for `target`, so that a re-run without --seed goes on
    with it (a new random seed would be other settings)."""
    path = frames_folder(target)[0] / MANIFEST
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("status") == "ok" and isinstance(record.get("seed"), int):
            return int(record["seed"])
    return None


@dataclass
class ClipOutput:
    """One clip's output: `target` as the user named it, `folder` where its frames are."""

    target: Path
    folder: Path
    video: bool
    manifest: Manifest

    @classmethod
    def open(cls, target: Path, *, overwrite: bool) -> ClipOutput:
        """The output, its folder made; refused before any work if it cannot be written, if a video
        output exists without `overwrite`, or if the folder holds files that are not its frames."""
        folder, video = frames_folder(target)
        if video:
            check_writable(target, overwrite=overwrite)
        elif target.exists() and not target.is_dir():
            raise OutputError(f"{target} is a file; give a folder for the frames, or a video name (.mp4, .webm, ...)")
        try:
            folder.mkdir(parents=not video, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot make folder {folder} ({exc.strerror or exc}); choose another output") from None
        strangers = sorted(p.name for p in folder.iterdir() if not (_FRAME.match(p.name) or p.name in (MANIFEST, WORK)))
        if strangers:
            raise OutputError(
                f"{folder} holds files that are not frames of nst stylize-video ({', '.join(strangers[:3])}); "
                "choose a new or empty folder"
            )
        check_writable(folder / MANIFEST)
        return cls(target, folder, video, Manifest(folder))

    def frame_path(self, frame: int) -> Path:
        """The file of frame `frame` (0-based)."""
        return frame_path(self.folder, frame + 1)

    def made(self, frame: int, *, settings: str, source: str) -> int:
        """The pass frame `frame` was last made in by a run of these settings from this input frame
        (`source`: its `frame_key`), or 0 when it was not (or its file is gone)."""
        record = self.manifest.records.get(self.frame_path(frame).name)
        if record is None or record.get("status") != "ok":
            return 0
        if record.get("settings") != settings or record.get("input") != source:
            return 0
        return int(record.get("pass", 1)) if self.frame_path(frame).is_file() else 0

    def conflict(
        self, *, settings: str, sources: Sequence[str], options: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> str | None:
        """Why frames in the folder are not this run's (None when every one is): made with other
        settings (the options named, or other styles or model: `inputs`), from other input frames, past
        the clip's end, or not recorded."""
        changed: set[str] = set()
        reasons: list[str] = []
        recorded = set()
        for name, record in self.manifest.records.items():
            match = _FRAME.match(name)
            if match is None or record.get("status") != "ok":
                continue
            recorded.add(name)
            index = int(match.group(1)) - 1
            if index >= len(sources):
                reasons.append(f"past the clip's {len(sources)} frames")
            elif record.get("settings") != settings:
                before = record.get("options", {})
                differ = {k for k in set(before) | set(options) if before.get(k) != options.get(k)}
                changed.update(differ or _other_inputs(record, inputs))
                reasons.append("made with other settings")
            elif record.get("input") != sources[index]:
                reasons.append("made from other input frames")
        if any(_FRAME.match(p.name) and p.name not in recorded for p in self.folder.iterdir()):
            reasons.append("that its manifest does not record")
        if changed:
            named = f"made with other settings ({', '.join(sorted(map(_setting_name, changed)))})"
            reasons = [named if r == "made with other settings" else r for r in reasons]
        return f"{self.target} holds frames {' and '.join(dict.fromkeys(reasons))}" if reasons else None

    def remove_past(self, frames: int) -> None:
        """Frames past the clip's end (a longer clip made them before), and their states."""
        for path in sorted(self.folder.iterdir()):
            match = _FRAME.match(path.name)
            if match is not None and int(match.group(1)) > frames:
                path.unlink()
                self.manifest.append({"output": path.name, "status": "removed", "time": _now()})
        for path in self._states():
            if int(path.name[:5]) > frames:
                path.unlink()

    def write_frame(self, frame: int, data: bytes, record: dict[str, Any]) -> Path:
        """Frame `frame`'s encoded image, atomically, then its manifest line; its saved states go."""
        path = self.frame_path(frame)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        self.manifest.append({"output": path.name, "status": "ok", **record, "time": _now()})
        for state in self._states():
            if int(state.name[:5]) == frame + 1:
                state.unlink()
        return path

    def state_path(self, frame: int, pass_index: int) -> Path:
        return self.folder / WORK / f"{frame + 1:05d}-{pass_index}.state"

    def save_state(self, frame: int, pass_index: int, state: RunState) -> None:
        (self.folder / WORK).mkdir(exist_ok=True)
        save_state(state, self.state_path(frame, pass_index))

    def load_state(self, frame: int, pass_index: int) -> tuple[RunState | None, str | None]:
        """The saved state of a frame in progress, if any: (state, None), or (None, why it cannot be used)."""
        path = self.state_path(frame, pass_index)
        if not path.is_file():
            return None, None
        try:
            return load_state(path), None
        except StateError as exc:
            return None, f"{exc}; frame {frame + 1} starts over"

    def encode(self, frames: int, *, fps: Fraction | float, audio_from: Path | None) -> Path:
        """A video output: its frames encoded at `fps` with the sound of `audio_from`, then the frame
        folder removed (the flows stay cached)."""
        write_video(self._images(frames), self.target, fps=fps, audio_from=audio_from, overwrite=True)
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.target

    def _images(self, frames: int) -> Iterator[np.ndarray]:
        for frame in range(frames):
            yield np.asarray(open_image(self.frame_path(frame)))

    def _states(self) -> list[Path]:
        work = self.folder / WORK
        return sorted(work.glob("*.state")) if work.is_dir() else []


def _other_inputs(record: Mapping[str, Any], inputs: Mapping[str, Any]) -> set[str]:
    """Which of the run's other inputs (model, styles, targets) a frame's record names otherwise."""
    return {key for key in ("model", "styles", "targets") if record.get(key) != inputs.get(key)}


def _setting_name(key: str) -> str:
    return {"model": "the model", "styles": "the style images", "targets": "the targets"}.get(key) or option_name(key)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
