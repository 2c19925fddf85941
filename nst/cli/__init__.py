"""The `nst` command line: the only place that prints, exits, or chooses sessions and devices.

Commands are imported lazily, so `nst --help` does not load torch or onnxruntime.
"""

from __future__ import annotations

import importlib

import click

from nst.errors import NSTError

# command name -> "module:function"; each module imports its heavy dependencies inside.
COMMANDS: dict[str, str] = {
    "export-vgg": "nst.cli.export_cmd:export_vgg",
    "download-weights": "nst.cli.cache_cmd:download_weights",
    "cache": "nst.cli.cache_cmd:cache",
    "precompute-style": "nst.cli.precompute_cmd:precompute_style",
    "stylize": "nst.cli.stylize_cmd:stylize_cmd",
    "check-model": "nst.cli.check_cmd:check_model_cmd",
}


class NSTGroup(click.Group):
    """A group whose commands load on demand and whose `NSTError`s become one-line errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NSTError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=NSTGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nst", prog_name="nst")
def main() -> None:
    """Neural style transfer (Gatys et al.) with a VGG extractor exported to ONNX."""
