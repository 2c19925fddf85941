"""Outputs are never inputs: a run refuses, before any work, to write over a file it reads
(with or without --overwrite, a user's photo is never replaced by its stylization)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from nst.errors import ConfigError


def refuse_inputs_as_outputs(outputs: Iterable[Path], inputs: Mapping[str, Path | None], *, fix: str) -> None:
    """Raise ConfigError when one of `outputs` is one of `inputs` (by role: "the content",
    "style 1", ...): the same path, or another name of the same file (a link)."""
    given = [(role, Path(path)) for role, path in inputs.items() if path is not None and str(path)]
    keys = {_key(path): role for role, path in given}
    for output in outputs:
        role = keys.get(_key(output))
        if role is not None:
            raise ConfigError(f"{output} is {role} of this run; nst never writes over an input: {fix}")


def _key(path: Path) -> object:
    """What identifies a file: its device and inode when it exists, else its resolved path."""
    try:
        stat = os.stat(path)
    except OSError:
        return Path(os.path.abspath(path)).resolve()
    return (stat.st_dev, stat.st_ino)
