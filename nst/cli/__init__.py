"""The `nst` command line: the only place that prints, exits, or chooses sessions and devices.

Commands are imported lazily, so `nst --help` does not load torch or onnxruntime. Every
command shares the same endings: a user's mistake (`NSTError`) or an allocation that failed
is one line and exit 1, Ctrl-C is exit 130, and library warnings (`NSTWarning`) are one line.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

import click

from nst.errors import NSTError, NSTNote, NSTWarning

INTERRUPTED = 130  # 128 + SIGINT, as shells report it

# command name -> "module:function"; each module imports its heavy dependencies inside.
COMMANDS: dict[str, str] = {
    "export-vgg": "nst.cli.export_cmd:export_vgg",
    "download-weights": "nst.cli.cache_cmd:download_weights",
    "cache": "nst.cli.cache_cmd:cache",
    "precompute-style": "nst.cli.precompute_cmd:precompute_style",
    "stylize": "nst.cli.stylize_cmd:stylize_cmd",
    "stylize-batch": "nst.cli.batch_cmd:stylize_batch_cmd",
    "stylize-video": "nst.cli.video_cmd:stylize_video_cmd",
    "check-model": "nst.cli.check_cmd:check_model_cmd",
    "serve": "nst.cli.serve_cmd:serve_cmd",
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

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("always", NSTWarning)
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except NSTError as exc:
                raise click.ClickException(str(exc)) from None
            except click.UsageError as exc:
                raise _OneLineUsageError(exc.format_message(), exc.ctx) from None
            except KeyboardInterrupt:
                click.echo("Interrupted", err=True)
                sys.exit(INTERRUPTED)
            except (RuntimeError, MemoryError) as exc:
                from nst.runtime.memory import out_of_memory

                oom = out_of_memory(exc)
                if oom is None:
                    raise
                raise click.ClickException(str(oom)) from None


class _OneLineUsageError(click.UsageError):
    """A bad option or argument as one line (click prints the usage first), exit status 2."""

    def show(self, file: Any = None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{where}", err=True)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """NSTWarnings as one line on stderr; other warnings as Python shows them."""
    if issubclass(category, NSTNote):
        click.echo(f"note: {message}", err=True)
    elif issubclass(category, NSTWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@click.group(cls=NSTGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nst", prog_name="nst")
def main() -> None:
    """Neural style transfer (Gatys et al.) with a VGG extractor exported to ONNX."""
