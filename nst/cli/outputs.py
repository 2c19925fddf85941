"""What a stylize run writes besides its image: checkpoint names, run states, the loss log and
plot, and the fallback when the final write fails."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst.errors import ConfigError, OutputError
from nst.fileio import atomic_path, check_writable, fallback_path
from nst.runtime.config import StylizeConfig
from nst.runtime.state import state_path

if TYPE_CHECKING:
    from nst.runtime.images import OutputImage


@dataclass(frozen=True)
class OutputPaths:
    """Every file one stylization may write."""

    output: Path
    checkpoints: dict[int, Path] = field(default_factory=dict)  # iteration -> image
    log: Path | None = None
    plot: Path | None = None

    def all(self, after: int = 0) -> list[Path]:
        """The files to check before any work (checkpoints past iteration `after` only),
        each checkpoint with its state file, and the output's state (written on Ctrl-C)."""
        later = [p for i, p in self.checkpoints.items() if i > after]
        return [self.output, state_path(self.output), *later, *map(state_path, later),
                *(p for p in (self.log, self.plot) if p)]  # fmt: skip

    def check(self, *, overwrite: bool, after: int = 0) -> None:
        for path in self.all(after):
            check_writable(path, overwrite=overwrite)


def output_paths(output: Path, config: StylizeConfig, *, template: str | None, log: bool, plot: bool) -> OutputPaths:
    check_writable(output, overwrite=True)  # a name, in a folder that exists (existence is checked later)
    checkpoints: dict[int, Path] = {}
    if config.checkpoint_iterations:
        template = template or str(output.with_name(f"{output.stem}.{{:04d}}{output.suffix}"))
        step = config.checkpoint_iterations
        checkpoints = {i: checkpoint_path(template, i) for i in range(step, config.iterations, step)}
    elif template:
        raise ConfigError("--checkpoint-output needs --checkpoint-iterations N")
    return OutputPaths(
        output,
        checkpoints,
        output.with_name(f"{output.stem}.losses.csv") if log else None,
        output.with_name(f"{output.stem}.losses.png") if plot else None,
    )


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


def save_final(image: OutputImage, path: Path, *, overwrite: bool, text: dict[str, str], config: StylizeConfig,
               profile: bytes | None = None) -> None:  # fmt: skip
    """Write the finished image (at `config.bit_depth`, in `profile`: None is sRGB); if that
    fails after all, save it in the temporary folder and raise an OutputError that says where
    (finished work is never lost)."""
    from nst.runtime.images import save_image

    def save(target: Path, replace: bool) -> None:
        save_image(image, target, overwrite=replace, text=text, bit_depth=config.bit_depth, profile=profile)

    try:
        save(path, overwrite)
    except OutputError as exc:
        fallback = fallback_path(path)
        save(fallback, True)
        raise OutputError(f"{exc}; the image was saved to {fallback} instead") from None


def write_log(rows: Sequence[dict[str, Any]], paths: OutputPaths, *, overwrite: bool) -> None:
    """The loss log (CSV) and, when asked for, its plot, from the run's history rows."""
    if paths.log:
        with atomic_path(paths.log, overwrite=overwrite) as tmp, open(tmp, "w") as f:
            f.write("iteration,scale,width,height,elapsed_s,total,content,style,tv\n")
            for r in rows:
                terms = r["terms"]
                f.write(
                    f"{r['iteration']},{r['stage']},{r['size'][1]},{r['size'][0]},{r['elapsed']:.4f},{r['total']:.9g},"
                    f"{terms.get('content', 0):.9g},{terms.get('style', 0):.9g},{terms.get('tv', 0):.9g}\n"
                )
    if paths.plot and rows:
        _plot(rows, paths.plot, overwrite)


def _plot(rows: Sequence[dict[str, Any]], path: Path, overwrite: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = [r["iteration"] for r in rows]
    ax.plot(x, [max(r["total"], 1e-12) for r in rows], label="total")
    for name in rows[-1]["terms"]:
        ax.plot(x, [max(r["terms"].get(name, 0.0), 1e-12) for r in rows], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'nst[plot]' (or pip install matplotlib)") from None
