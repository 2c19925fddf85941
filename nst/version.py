"""The installed nst's version, for provenance (PNG metadata, run states)."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def nst_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nst")
    except PackageNotFoundError:
        return "unknown"
