"""Where a stylize run writes besides its image: checkpoint names, run states, the loss log,
all checked before any work; and the fallback when the final write fails. (`Encoding`, how
its images are written, is `nst.runtime.record`'s: the web app writes with it too.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nst.errors import ConfigError, OutputError
from nst.fileio import check_writable, fallback_path
from nst.runtime.config import StylizeConfig
from nst.runtime.record import Encoding, LossLog
from nst.runtime.state import state_path

if TYPE_CHECKING:
    from nst.runtime.images import OutputImage


@dataclass(frozen=True)
class OutputPaths:
    """Every file one stylization may write."""

    output: Path
    checkpoints: dict[int, Path] = field(default_factory=dict)  # iteration -> image
    log: LossLog = field(default_factory=LossLog)

    def all(self, after: int = 0) -> list[Path]:
        """The files to check before any work (checkpoints past iteration `after` only),
        each checkpoint with its state file, and the output's state (written on Ctrl-C)."""
        later = [p for i, p in self.checkpoints.items() if i > after]
        return [self.output, state_path(self.output), *later, *map(state_path, later), *self.log.paths()]

    def check(self, *, overwrite: bool, after: int = 0) -> None:
        self._check_distinct()
        for path in self.all(after):
            check_writable(path, overwrite=overwrite)

    def _check_distinct(self) -> None:
        """No two of the run's files share a name (a checkpoint template that names the output
        would otherwise be found out at the end, when the output cannot be written)."""
        roles = {"the output": self.output, "the output's state": state_path(self.output)}
        for i, path in self.checkpoints.items():
            roles |= {f"checkpoint {i}": path, f"checkpoint {i}'s state": state_path(path)}
        roles |= {f"the loss log {p.name}": p for p in self.log.paths()}
        seen: dict[Path, str] = {}
        for role, path in roles.items():
            other = seen.setdefault(path.resolve(), role)
            if other != role:
                raise ConfigError(
                    f"{other} and {role} would both be written to {path}; choose another --checkpoint-output or -o"
                )


def output_paths(output: Path, config: StylizeConfig, *, template: str | None, log: bool, plot: bool) -> OutputPaths:
    check_writable(output, overwrite=True)  # a name, in a folder that exists (existence is checked later)
    checkpoints: dict[int, Path] = {}
    if config.checkpoint_iterations:
        template = template or str(output.with_name(f"{output.stem}.{{:04d}}{output.suffix}"))
        step = config.checkpoint_iterations
        checkpoints = {i: checkpoint_path(template, i) for i in range(step, config.iterations, step)}
    elif template:
        raise ConfigError("--checkpoint-output needs --checkpoint-iterations N")
    return OutputPaths(output, checkpoints, LossLog.beside(output, log=log, plot=plot))


def checkpoint_path(template: str, iteration: int) -> Path:
    """The checkpoint file for `iteration`: the reference's `%s` template, or a `{}` one."""
    try:
        if "{" in template:
            name = template.format(iteration, iteration=iteration)
        elif "%" in template:
            name = template % iteration
        else:
            name = template
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ConfigError(f"--checkpoint-output {template!r} is not a valid template ({exc})") from None
    if name == template:
        raise ConfigError(
            f"--checkpoint-output {template!r} must contain the iteration as %s or {{}} (e.g. out_%s.png)"
        )
    return Path(name)


def save_final(image: OutputImage, path: Path, *, overwrite: bool, encoding: Encoding) -> None:
    """Write the finished image; if that fails after all, save it in the temporary folder and
    raise an OutputError that says where (finished work is never lost)."""
    try:
        encoding.save(image, path, overwrite=overwrite)
    except OutputError as exc:
        fallback = fallback_path(path)
        try:
            encoding.save(image, fallback, overwrite=True)
        except OutputError:
            fallback.unlink(missing_ok=True)  # the temporary folder is full too: no empty file left there
            raise exc from None
        raise OutputError(f"{exc}; the image was saved to {fallback} instead") from None
