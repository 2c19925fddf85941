"""Option types shared by the commands, built from the library's choices and range rules."""

from __future__ import annotations

from typing import Any

import click

from nst.errors import ConfigError
from nst.runtime.config import DEVICE_RULE, RULES, Rule, check_device, choices


class CommaList(click.ParamType):
    """A comma-separated list (`relu4_2,relu5_2`); repeated options are joined. With a
    `rule`, every item must satisfy it."""

    name = "LIST"

    def __init__(self, item_type: type = str, rule: Rule | None = None):
        self.item_type = item_type
        self.rule = rule

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        items = [v.strip() for v in str(value).split(",") if v.strip()]
        try:
            converted = tuple(self.item_type(v) for v in items)
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {self.item_type.__name__}", param, ctx)
        if self.rule is not None and not all(self.rule.accepts(v) for v in converted):
            self.fail(f"each value {self.rule.describe()}, got {value!r}", param, ctx)
        return converted


class Ranged(click.ParamType):
    """An int or a finite float within a config field's rule (nst.runtime.config.RULES)."""

    def __init__(self, number: type, rule: Rule):
        self.number, self.rule = number, rule
        self.name = "integer" if number is int else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number: float
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = value
        else:
            try:
                text = str(value).strip()
                number = int(text) if self.number is int else float(text)
            except ValueError:
                self.fail(f"{value!r} is not {'an integer' if self.number is int else 'a number'}", param, ctx)
        if not self.rule.accepts(number):
            self.fail(f"{self.rule.describe()}, got {value!r}", param, ctx)
        return number

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.name.upper()


def ranged(field: str, number: type = float) -> Ranged:
    """The click type of numeric config field `field`, from its rule."""
    return Ranged(number, RULES[field])


def comma_list(field: str) -> CommaList:
    """The click type of a tuple-of-floats config field, each item within its rule."""
    return CommaList(float, RULES[field])


def choice(alias: Any) -> click.Choice:
    """click.Choice of a Literal alias of nst.runtime.config."""
    return click.Choice(list(choices(alias)))


class DeviceType(click.ParamType):
    """auto, cpu, cuda or cuda:N: the rule of `nst.runtime.config.check_device`."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return check_device(str(value).strip())
        except ConfigError:
            self.fail(f"{DEVICE_RULE}, got {value!r}", param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[auto|cpu|cuda|cuda:N]"


DEVICE = DeviceType()


class Shape(click.ParamType):
    """`count` positive integers joined by x: 1x256x256 (N x H x W) or 256x384 (H x W)."""

    def __init__(self, count: int, maximum: int = 30_000):
        self.count, self.maximum = count, maximum
        self.name = "x".join(["N", "H", "W"][-count:]) if count <= 3 else "shape"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        parts = str(value).lower().replace("×", "x").split("x")
        try:
            numbers = tuple(int(p) for p in parts)
        except ValueError:
            numbers = ()
        if len(numbers) != self.count or not all(1 <= n <= self.maximum for n in numbers):
            self.fail(
                f"{value!r} is not {self.name} ({self.count} integers from 1 to {self.maximum}, e.g. "
                f"{'x'.join(['1', '256', '256'][-self.count :])})",
                param,
                ctx,
            )
        return numbers


class Opset(click.ParamType):
    """An ONNX opset from nst's oldest to the installed onnx's newest (onnx is imported only
    when a value is converted, so `--help` stays light)."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from nst.export.onnx_graph import MIN_OPSET, max_opset

        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not an integer", param, ctx)
        if not MIN_OPSET <= number <= max_opset():
            self.fail(f"{number} is not in {MIN_OPSET}..{max_opset()} (the installed onnx's newest)", param, ctx)
        return number
