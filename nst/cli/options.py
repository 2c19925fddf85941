"""Option types shared by the commands."""

from __future__ import annotations

import click


class CommaList(click.ParamType):
    """A comma-separated list (`relu4_2,relu5_2`); repeated options are joined."""

    name = "LIST"

    def __init__(self, item_type: type = str):
        self.item_type = item_type

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        items = [v.strip() for v in str(value).split(",") if v.strip()]
        try:
            return tuple(self.item_type(v) for v in items)
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {self.item_type.__name__}", param, ctx)
