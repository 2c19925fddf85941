"""Run states: everything a stylization needs to continue later exactly where it stopped.

A state is written beside each checkpoint image (`out.0100.png` -> `out.0100.state`) and on
Ctrl-C, and read by `nst stylize --resume`. On the CPU, a resumed run writes the same bytes
as the run that was never stopped.

The file is nst's `.npz` + JSON container (`nst.container`): its metadata holds the nst
version, the config, what the run belongs to, counters, plain optimizer values and the loss
history, and every tensor is its own float32 (or uint8) array.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nst.container import Unreadable, read_container, read_metadata, write_container
from nst.errors import StateError, option_name

if TYPE_CHECKING:
    import torch  # loaded when a state is saved or read: `nst --help` stays light

MAGIC = "nst.run-state"
FORMAT_VERSION = 1
STATE_SUFFIX = ".state"


def state_path(image_path: str | Path) -> Path:
    """The state file that goes with a checkpoint or output image: the same name, `.state`."""
    return Path(image_path).with_suffix(STATE_SUFFIX)


@dataclass(frozen=True)
class Resumable:
    """A state on disk that a run of the same output could continue from."""

    path: Path
    iteration: int
    iterations: int  # the run's total


def resumable_state(output: str | Path, checkpoints: Iterable[Path] = ()) -> Resumable | None:
    """The newest whole state of an unfinished run that wrote `output`: its Ctrl-C state, or
    the state of one of `checkpoints` or of a default-named checkpoint (out.0100.state).
    None when there is none, or when `output` was written after it (that run finished)."""
    output = Path(output)
    pattern = f"{glob.escape(str(output.with_suffix('')))}.*{STATE_SUFFIX}"
    candidates = {state_path(output), *map(state_path, checkpoints), *map(Path, glob.glob(pattern))}
    found: list[Resumable] = []
    for path in candidates:
        meta = read_metadata(path, magic=MAGIC, version=FORMAT_VERSION) if path.is_file() else None
        if meta is None:
            continue
        try:
            iteration, iterations = int(meta["iteration"]), int(meta["config"]["iterations"])
        except (TypeError, KeyError, ValueError):
            continue
        if iteration < iterations:
            found.append(Resumable(path, iteration, iterations))
    if not found:
        return None
    newest = max(found, key=lambda r: (r.iteration, r.path.stat().st_mtime_ns))
    if output.is_file() and output.stat().st_mtime_ns > newest.path.stat().st_mtime_ns:
        return None
    return newest


@dataclass
class RunState:
    """A run stopped after `iteration` iterations (all stages counted)."""

    config: dict[str, Any]  # the StylizeConfig fields that shape the result
    model: str  # weights_sha256 of the network
    pooling: str
    content: str  # image key of the content image, as given
    styles: str  # digest of the style images (or of the targets)
    stage: int  # index of the stage the run is in (Stage.index)
    iteration: int
    elapsed: float
    image: torch.Tensor  # the current iterate (1, 3, h, w)
    best_loss: float
    best_image: torch.Tensor | None
    optimizer: dict[str, Any]  # Optimizer.state_dict()
    generator: torch.Tensor  # torch.Generator.get_state()
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per iteration so far
    nst_version: str = ""
    extras: str = ""  # the extra terms and an in-memory start image (`plan.extras_key`); "" for none

    def check(
        self, *, config: dict[str, Any], model: str, pooling: str, content: str, styles: str, extras: str = ""
    ) -> None:
        """Raise StateError unless this state belongs to a run of these inputs and settings."""
        if model != self.model or pooling != self.pooling:
            raise StateError(
                f"the state comes from another model (weights {self.model[:12]}, {self.pooling} pooling); "
                "resume with the model it was made with"
            )
        if content != self.content:
            raise StateError("the state comes from another content image; resume with the same CONTENT")
        if styles != self.styles:
            if styles.split("|regions:")[0] == self.styles.split("|regions:")[0]:
                raise StateError(
                    "the state comes from a run with other regions (--style-mask, --labels, --content-mask, "
                    "--style-region or --mask-mode); resume with the same masks"
                )
            raise StateError("the state comes from other style images or targets; resume with the same styles")
        if extras != self.extras:
            raise StateError(
                "the state comes from a run with other extra loss terms or another start image (a video frame's "
                "temporal targets); resume it with the same ones"
            )
        changed = sorted(k for k in set(config) | set(self.config) if config.get(k) != self.config.get(k))
        if changed:
            names = ", ".join(option_name(k) for k in changed)
            raise StateError(f"the state comes from a run with other settings ({names}); leave them as they were")

    def check_size(self, sizes: Mapping[int, tuple[int, int]]) -> None:
        """Raise StateError unless the state's images have the size (height, width) that this
        run's stage of the same index has in `sizes`."""
        h, w = self.image.shape[-2:]
        shapes = {tuple(t.shape[-2:]) for t in (self.image, self.best_image) if t is not None}
        size = sizes.get(self.stage, max(sizes.values()))
        if shapes != {size}:
            raise StateError(
                f"the state is for a {w}x{h} image, this run makes {size[1]}x{size[0]}; resume with the "
                "content, --size and --scales of the run that wrote it, or start without --resume"
            )


def save_state(state: RunState, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write `state` atomically."""
    import torch

    arrays: dict[str, np.ndarray] = {"image": _array(state.image), "generator": state.generator.numpy()}
    if state.best_image is not None:
        arrays["best_image"] = _array(state.best_image)
    plain: dict[str, Any] = {}
    for key, value in state.optimizer.items():
        if isinstance(value, torch.Tensor):
            arrays[f"optimizer/{key}"] = _array(value)
        else:
            plain[key] = value
    meta = {
        "nst_version": state.nst_version,
        "config": state.config,
        "model": state.model,
        "pooling": state.pooling,
        "content": state.content,
        "styles": state.styles,
        "extras": state.extras,
        "stage": state.stage,
        "iteration": state.iteration,
        "elapsed": state.elapsed,
        "best_loss": state.best_loss,
        "optimizer": plain,
        "optimizer_tensors": sorted(k for k, v in state.optimizer.items() if isinstance(v, torch.Tensor)),
        "history": state.history,
    }
    return write_container(path, magic=MAGIC, version=FORMAT_VERSION, meta=meta, arrays=arrays, overwrite=overwrite)


def load_state(path: str | Path) -> RunState:
    """Read a state file; every problem is a one-line StateError."""
    import torch

    path = Path(path)
    try:
        meta, arrays = read_container(path, magic=MAGIC, version=FORMAT_VERSION)
    except Unreadable as exc:
        raise StateError(_UNREADABLE[exc.reason].format(path=path, detail=exc.detail)) from None
    if not all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
        # A NaN iterate would give NaN losses, then an all-black "best image".
        raise StateError(f"{path} holds non-finite values (NaN or infinity); start without --resume")
    try:
        optimizer = dict(meta["optimizer"])
        for key in meta["optimizer_tensors"]:
            optimizer[key] = torch.from_numpy(arrays[f"optimizer/{key}"])
        state = RunState(
            config=dict(meta["config"]),
            model=str(meta["model"]),
            pooling=str(meta["pooling"]),
            content=str(meta["content"]),
            styles=str(meta["styles"]),
            stage=int(meta["stage"]),
            iteration=int(meta["iteration"]),
            elapsed=float(meta["elapsed"]),
            image=torch.from_numpy(arrays["image"]),
            best_loss=float(meta["best_loss"]),
            best_image=torch.from_numpy(arrays["best_image"]) if "best_image" in arrays else None,
            optimizer=optimizer,
            generator=torch.from_numpy(arrays["generator"]),
            history=list(meta["history"]),
            nst_version=str(meta.get("nst_version", "")),
            extras=str(meta.get("extras", "")),  # states from before extra terms were keyed have none
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{path} is an incomplete nst run state ({exc!r})") from None
    _check_unfinished(state, path)
    return state


def _check_unfinished(state: RunState, path: Path) -> None:
    """Refuse a state with no iteration left to run: resuming it would run nothing and only
    write again the image that run already wrote (or, past its end, is inconsistent)."""
    total = int(state.config.get("iterations", 0))
    if state.iteration >= total:
        raise StateError(
            f"{path} holds a finished run (iteration {state.iteration} of {total}); there is nothing to "
            "resume: its image is that run's output, or start a new run without --resume"
        )


# How each way a file can be unreadable is said, with {path} and {detail}.
_UNREADABLE = {
    "missing": "state file not found: {path}",
    "not-container": "{path} is not a readable nst run state (not an .npz archive); it may be truncated",
    "no-metadata": "{path} is not an nst run state",
    "pickled": "{path} is not an nst run state (it holds pickled objects, which nst never loads)",
    "corrupt": "{path} is not a readable nst run state ({detail}); it may be truncated",
    "version": "{path} has run-state format {detail}, this nst reads " + str(FORMAT_VERSION),
}


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy())
