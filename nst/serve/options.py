"""A job's options as the web page and the JSON API give them, checked by the CLI's own rules.

Torch-free and starlette-free: the page's form is built from `option_specs`, and `job_config`
refuses a bad value with the same one line as `nst stylize` (`StylizeConfig`'s `RULES`).
"""

from __future__ import annotations

import dataclasses
import difflib
import secrets
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from nst.errors import ConfigError, option_name
from nst.runtime.config import DEFAULT_WEIGHTS, RULES, StylizeConfig, choices

# Options the server decides, not the page: where it runs, what it reads from disk (a client's
# text never becomes a path: no initial image, no masks, nor their mode without them), what it writes.
SERVER_ONLY = (
    "device",
    "provider",
    "initial",
    "checkpoint_iterations",
    "compile",
    "style_masks",
    "labels",
    "content_mask",
    "style_regions",
    "mask_mode",
)
# The options the page shows first; the rest are under "More options".
MAIN = ("size", "iterations", "style_scales", "optimizer", "precision", "preserve_colors", "loss_scale", "seed")
MAX_SWEEP = 12  # values in one sweep: each is a whole run


def web_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(StylizeConfig) if f.name not in SERVER_ONLY)


def job_config(options: Any, *, base: StylizeConfig = StylizeConfig()) -> StylizeConfig:
    """The config of a job: `base` with the page's `options` (a JSON object; names as fields,
    `style_weight`, or as the CLI spells them, `style-weight`), a seed drawn when none is given
    (so that the result can be reproduced). ConfigError names the first bad value."""
    if not isinstance(options, Mapping):
        raise ConfigError('options must be a JSON object such as {"iterations": 300}')
    values: dict[str, Any] = {}
    for key, value in options.items():
        name = _field(key)
        values[name] = _typed(name, value)
    config = base.replace(**values)
    return config if config.seed is not None else config.replace(seed=secrets.randbelow(2**63))


def sweep_configs(config: StylizeConfig, option: Any, values: Any) -> list[tuple[dict[str, Any], StylizeConfig]]:
    """One (parameters, config) per value of `option`, all with `config`'s seed, so that only
    the swept option differs between the results."""
    name = _field(option)
    if not isinstance(values, list) or not 2 <= len(values) <= MAX_SWEEP:
        raise ConfigError(f"a sweep needs a list of 2 to {MAX_SWEEP} values for {option_name(name)}")
    configs = []
    for value in values:
        typed = _typed(name, value)
        configs.append(({name: typed}, config.replace(**{name: typed})))
    return configs


def option_specs() -> list[dict[str, Any]]:
    """What the page needs to build its form: each option's name, kind, default, choices and
    range (in the CLI's words), and whether it is one of the main ones."""
    hints = typing.get_type_hints(StylizeConfig)
    defaults = StylizeConfig()
    specs = []
    for name in web_fields():
        rule = RULES.get(name)
        specs.append(
            {
                "name": name,
                "flag": option_name(name),
                "kind": _kind(hints[name]),
                "default": _json(getattr(defaults, name)),
                "choices": list(choices(hints[name])),
                "range": rule.describe() if rule is not None else None,
                "min": rule.min if rule is not None else None,
                "max": rule.max if rule is not None else None,
                "main": name in MAIN,
            }
        )
    return specs


def default_weights(auto: str | None = None) -> dict[str, dict[str, float]]:
    """(content, style, tv) weights by loss scale, for the page's style/content balance slider;
    `auto`: the scale that `auto` resolves to for the server's model, whose weights it takes."""
    names = ("content_weight", "style_weight", "tv_weight")
    weights = {scale: dict(zip(names, values)) for scale, values in DEFAULT_WEIGHTS.items()}
    if auto in weights:
        weights["auto"] = weights[auto]
    return weights


def _field(key: Any) -> str:
    fields = web_fields()
    name = str(key).replace("-", "_").removeprefix("__")
    if name in fields:
        return name
    if name in SERVER_ONLY:
        raise ConfigError(f"{option_name(name)} is the server's to choose, not a job's; remove it from the options")
    close = difflib.get_close_matches(name, fields, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; known options: {', '.join(fields)}"
    raise ConfigError(f"unknown option {key!r}{hint}")


def _kind(hint: Any) -> str:
    """int, float, bool, choice, list (of numbers), for the page's inputs."""
    if choices(hint):
        return "choice"
    args = set(typing.get_args(hint)) - {type(None)} or {hint}
    if bool in args:
        return "bool"
    if any(typing.get_origin(a) is tuple for a in args):
        return "list"
    return "int" if int in args and float not in args else "float"


def _typed(name: str, value: Any) -> Any:
    """`value` as the field's type, where JSON cannot say it: lists become tuples, whole floats
    ints (300.0); what is still of the wrong type is left for the config's own check, whose
    message names the option and the allowed range."""
    hint = typing.get_type_hints(StylizeConfig)[name]
    kind = _kind(hint)
    if kind == "choice":  # a form's <select> sends text: "16" is --bit-depth's 16, as on the command line
        return next((c for c in choices(hint) if isinstance(value, str) and str(c) == value), value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{option_name(name)} must be true or false, got {value!r}")
        return value
    if kind == "list":
        items: Sequence[Any] = value if isinstance(value, list) else [value]
        if isinstance(value, str):  # as the CLI takes it: 1,0.5
            items = [_number(part) for part in value.split(",")]
        return tuple(items) if items else None
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "int" and isinstance(value, float):
        raise ConfigError(f"{option_name(name)} must be a whole number, got {value!r}")
    return value


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text.strip()  # refused by the config's check, with the option's range


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
