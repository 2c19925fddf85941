"""Typed exceptions. Library code raises these; only `nst.cli` turns them into messages."""

from __future__ import annotations


class NSTError(Exception):
    """Base class of every error that is a user's mistake or an environment problem.

    The message is one line that names the problem and, where there is one, the fix.
    """


class WeightsError(NSTError):
    """A weights file (MatConvNet `.mat`) is missing, unreadable or not what it should be."""


class LayerError(NSTError):
    """A layer name that the network does not have."""


class ModelError(NSTError):
    """An ONNX extractor file is missing, unreadable, or not one that nst exported."""


class ImageError(NSTError):
    """An image file is missing, unreadable or corrupt."""


class VideoError(NSTError):
    """A video file or a folder of frames is missing, unreadable, corrupt or not one clip."""


class TargetsError(NSTError):
    """A style-targets file is missing, corrupt, or belongs to another model."""


class ConfigError(NSTError):
    """An option value that cannot work (out of range, inconsistent with another)."""


class OutputError(NSTError):
    """An output cannot be written (exists without --overwrite, folder missing, read-only)."""


class CacheError(NSTError):
    """The cache folder ($NST_HOME) cannot be used: it is a file, cannot be created, or is read-only."""


class DownloadError(NSTError):
    """A weight file could not be downloaded or failed its checksum."""


class ResourceError(NSTError):
    """Not enough memory (RAM or GPU) or disk for what was asked; the message says the way out."""


class LockError(NSTError):
    """Another nst process has held a lock (a download, an export, a batch's output) too long."""


class StateError(NSTError):
    """A run-state file (--resume) is missing, corrupt, or belongs to another run."""


def option_name(field: str) -> str:
    """The command-line option of a config field, as messages name it: style_weight -> --style-weight."""
    return "--" + field.replace("_", "-")


class NSTWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints one line)."""


class NSTNote(NSTWarning):
    """Not a problem: a choice the run made that the user should see (the CLI prints 'note: ...')."""
