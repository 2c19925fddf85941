"""What a batch makes: its content images (files, folders, globs), the parameter sets of a
sweep (a Cartesian product), and the name of each output. Torch-free: the CLI checks all of
it before any work starts."""

from __future__ import annotations

import dataclasses
import glob
import itertools
import string
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nst.errors import ConfigError, ImageError, option_name
from nst.runtime.config import RULES, StylizeConfig, applied_options, choices
from nst.runtime.images import check_output, output_format

# What a folder or a glob contributes: files Pillow reads as images, by extension.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")

# Options a sweep cannot vary: one network and pooling per batch, one device and one
# onnxruntime provider (a worker's session is made once), and options that name files or
# hold a list (their values contain commas).
NOT_SWEPT = (
    "pooling",
    "device",
    "provider",
    "initial",
    "checkpoint_iterations",
    "style_scales",
    "style_blend_weights",
    "style_masks",
    "labels",
    "content_mask",
    "style_regions",
)

DEFAULT_NAME = "{content}-{style}.png"


@dataclass(frozen=True)
class Job:
    """One output of a batch: a content image with one parameter set."""

    index: int  # position among all the batch's outputs
    content: Path
    row: int  # the content's position (a contact sheet's row)
    column: int  # the parameter set's position (a contact sheet's column)
    output: str  # file name in the output folder
    config: StylizeConfig
    parameters: dict[str, Any] = field(default_factory=dict)  # the swept values, by field name


@dataclass(frozen=True)
class BatchEvent:
    """What a batch reports to its callback: `planned` once (how many outputs run, how many
    exist already), `step` for iterations of the outputs being made (every one locally; a
    few a second from a Ray task), `done` when an output is written or has failed."""

    kind: Literal["planned", "step", "done"]
    index: int = -1  # the job's index (Job.index)
    output: str = ""  # step: the output's file name
    outputs: int = 0  # planned: outputs in the batch
    to_run: int = 0  # planned: outputs to make (the others exist)
    iteration: int = 0  # step: 1-based, over all stages
    iterations: int = 0  # step: the run's total
    loss: float = float("nan")  # step: the weighted total
    terms: Mapping[str, float] = field(default_factory=dict)
    elapsed: float = 0.0  # step: seconds since the output's run started
    result: Any = None  # done: its BatchResult
    worker: str = ""  # step: host:pid of the process making it


def expand_contents(items: Sequence[str | Path], *, exclude: Path | None = None) -> list[Path]:
    """The content images of `items`: files as given, a folder's images (not its subfolders),
    a glob's matches, in order, each once. Images inside `exclude` (the output folder) are
    left out of folders and globs, so that a re-run does not stylize its own outputs."""
    found: list[Path] = []
    outside = exclude.resolve() if exclude is not None else None

    def images(paths: Sequence[Path]) -> list[Path]:
        return [
            p
            for p in paths
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and not p.name.startswith(".")
            and (outside is None or p.resolve().parent != outside)
        ]

    for item in items:
        path = Path(item)
        if path.is_dir():
            matched = images(sorted(path.iterdir()))
            if not matched:
                raise ImageError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        elif path.exists():
            matched = [path]
        elif glob.has_magic(str(item)):
            matched = images([Path(p) for p in sorted(glob.glob(str(item)))])
            if not matched:
                raise ImageError(f"{item} matches no image")
        else:
            raise ImageError(f"content image not found: {item}")
        found.extend(matched)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def sweep_field(name: str) -> str:
    """The config field an option name sweeps (`style-weight` or `style_weight`), checked."""
    key = name.strip().removeprefix("--").replace("-", "_")
    fields = {f.name for f in dataclasses.fields(StylizeConfig)}
    allowed = sweepable()
    if key in allowed:
        return key
    names = ", ".join(option_name(name)[2:] for name in allowed)
    if key not in fields:
        raise ConfigError(f"--sweep: no option {option_name(key)}; sweep one of {names}")
    raise ConfigError(f"--sweep cannot vary {option_name(key)} (one per batch); sweep one of {names}")


def sweepable() -> list[str]:
    """The config fields a sweep may vary: numbers and choices."""
    hints = typing.get_type_hints(StylizeConfig)
    return [
        f.name
        for f in dataclasses.fields(StylizeConfig)
        if f.name not in NOT_SWEPT and (f.name in RULES or choices(hints[f.name]))
    ]


def parameter_sets(sweep: Mapping[str, Sequence[Any]] | None, config: StylizeConfig) -> list[dict[str, Any]]:
    """The Cartesian product of the swept values ([{}] without a sweep), each set checked
    with the options' own rules (`StylizeConfig`'s), before any work."""
    fields = [sweep_field(name) for name in sweep or {}]
    values = [list(v) for v in (sweep or {}).values()]
    if len(set(fields)) != len(fields):
        raise ConfigError("--sweep names an option twice; give its values once, comma-separated")
    for name, vals in zip(fields, values):
        if not vals:
            raise ConfigError(f"--sweep {option_name(name)[2:]} has no values")
    sets = [dict(zip(fields, combo)) for combo in itertools.product(*values)]
    for params in sets:
        try:
            config.replace(**params)
        except ConfigError as exc:
            raise ConfigError(f"--sweep: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"--sweep: {exc}") from None
    return sets


class _Value:
    """A parameter in a file name: numbers as %g (500, 0.5, 1e-05) unless a spec is given."""

    def __init__(self, value: Any):
        self.value = value

    def __format__(self, spec: str) -> str:
        if spec:
            return format(self.value, spec)
        return format_value(self.value)


def format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def make_jobs(
    contents: Sequence[Path],
    sets: Sequence[dict[str, Any]],
    config: StylizeConfig,
    *,
    name: str,
    style: str,
    resolve: Callable[[StylizeConfig], StylizeConfig] | None = None,
) -> list[Job]:
    """One job per (content, parameter set), named by the template `name`. Its fields:
    {content} (the file's stem), {parent} (its folder's name), {style} (the styles' stems
    joined with +, or the targets file's), and any option by name ({style-weight} or
    {style_weight}). Swept options that `name` leaves out are added to the stem
    (`-style-weight=500`), so that every output has a name of its own. `resolve` completes
    each job's config for the model (loss scale auto) before it is named."""
    used = _template_fields(name)
    if "/" in name or "\\" in name:
        raise ConfigError(f"--name {name!r} must be a file name (outputs go in the output folder), without / or \\")
    output_format(name)  # the extension names a format we write
    jobs: list[Job] = []
    for row, content in enumerate(contents):
        for column, params in enumerate(sets):
            job_config = config.replace(**params)
            if resolve is not None:
                job_config = resolve(job_config)
            check_output(name, bit_depth=job_config.bit_depth, embed_profile=job_config.output_profile == "content")
            values: dict[str, Any] = {"content": content.stem, "parent": content.resolve().parent.name, "style": style}
            for key, value in applied_options(job_config).items():
                values[key] = values[key.replace("_", "-")] = _Value(value)
            unknown = sorted(used - set(values))
            if unknown:
                raise ConfigError(
                    f"--name {name!r}: no field {{{unknown[0]}}}; use {{content}}, {{parent}}, "
                    "{style} or an option's name such as {style-weight}"
                )
            try:
                text = name.format(**values)
            except (ValueError, IndexError, KeyError) as exc:
                raise ConfigError(f"--name {name!r} is not a valid template ({exc})") from None
            missing = [k for k in params if k not in used and k.replace("_", "-") not in used]
            if missing:
                stem, suffix = Path(text).stem, Path(text).suffix
                text = stem + "".join(f"-{k.replace('_', '-')}={format_value(params[k])}" for k in missing) + suffix
            jobs.append(Job(len(jobs), content, row, column, text, job_config, dict(params)))
    _check_unique(jobs, name)
    return jobs


def _template_fields(name: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(name))
    except ValueError as exc:
        raise ConfigError(f"--name {name!r} is not a valid template ({exc})") from None
    fields = {f for _, f, _, _ in parsed if f is not None}
    if "" in fields or any(f.isdigit() for f in fields):
        raise ConfigError(f"--name {name!r}: name each field, e.g. {{content}}-{{style}}.png")
    return {f.split(".")[0].split("[")[0] for f in fields}


def _check_unique(jobs: Sequence[Job], name: str) -> None:
    seen: dict[str, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.output, job)
        if other is not job:
            raise ConfigError(
                f"--name {name!r} names two outputs {job.output} ({other.content} and {job.content}); "
                "add {parent} or another field to --name"
            )


def style_label(styles: Sequence[Path], targets: Path | None) -> str:
    """{style} in output names: the style images' stems joined with +, or the targets file's."""
    if targets is not None:
        return Path(targets).stem
    return "+".join(Path(s).stem for s in styles) or "nostyle"
