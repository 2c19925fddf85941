"""Known downloadable weight files: where each comes from and how to check it.

Sources of the numbers (nothing here is invented):
- URLs: MatConvNet's pretrained-models page serves `models/<file>`; the 2015 (beta16)
  VGG-19 is the one anishathalye/neural-style's README links, under `models/beta16/`.
- MD5s: docs/MATFORMAT.md for both VGG-19 versions; MatConvNet's `doc/pretrained.md`
  ("File checksums") for VGG-16 (and the same 2016 VGG-19 MD5). The 2015 MD5 is also the
  one anishathalye/neural-style's README gives for the beta16 link.
- Sizes and SHA-256s are not published anywhere we could read, so they are `None`; the
  MD5 is then the checksum that a download must match.

Tests (or mirrors with other files) replace an entry for the duration of a test with
`monkeypatch.setitem(registry.WEIGHTS, "vgg19", registry.WEIGHTS["vgg19"].replace(...))`:
the registry is a plain dict that every lookup reads at call time.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass

from nst.errors import ConfigError

# Mirror or test server: each file is fetched as $NST_WEIGHTS_URL/<file name>.
ENV_WEIGHTS_URL = "NST_WEIGHTS_URL"
DEFAULT_WEIGHTS = "vgg19"

_MATCONVNET = "https://www.vlfeat.org/matconvnet/models"
_MATCONVNET_HTTP = "http://www.vlfeat.org/matconvnet/models"  # the same files; for hosts without TLS CA certs


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file. At least one of `md5` / `sha256` must be set."""

    name: str  # registry name users type: "vgg19"
    file_name: str  # the file's name on the server (and under $NST_WEIGHTS_URL)
    cache_name: str  # its name in the cache's weights/ folder (distinct per entry)
    urls: tuple[str, ...]  # tried in order
    architecture: str  # vgg19 / vgg16
    description: str
    size: int | None = None  # bytes, when published
    md5: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if not (self.md5 or self.sha256):
            raise ValueError(f"registry entry {self.name} has no checksum")

    @property
    def checksums(self) -> dict[str, str]:
        """hashlib algorithm name -> expected hex digest, for the ones that are known."""
        return {algo: value.lower() for algo, value in (("sha256", self.sha256), ("md5", self.md5)) if value}

    def replace(self, **changes) -> WeightsFile:
        """A copy with some fields changed (for tests and mirrors)."""
        return dataclasses.replace(self, **changes)

    def download_urls(self) -> tuple[str, ...]:
        """`$NST_WEIGHTS_URL/<file name>` when that is set, else the published URLs."""
        base = os.environ.get(ENV_WEIGHTS_URL, "").strip()
        if base:
            return (f"{base.rstrip('/')}/{self.file_name}",)
        return self.urls


WEIGHTS: dict[str, WeightsFile] = {
    "vgg19": WeightsFile(
        name="vgg19",
        file_name="imagenet-vgg-verydeep-19.mat",
        cache_name="imagenet-vgg-verydeep-19.mat",
        urls=(f"{_MATCONVNET}/imagenet-vgg-verydeep-19.mat", f"{_MATCONVNET_HTTP}/imagenet-vgg-verydeep-19.mat"),
        architecture="vgg19",
        description="VGG-19, MatConvNet 2016 (MATLAB-tidied) version (about 510 MB)",
        md5="106118b7cf60435e6d8e04f6a6dc3657",
    ),
    "vgg19-2015": WeightsFile(
        name="vgg19-2015",
        file_name="imagenet-vgg-verydeep-19.mat",
        # Same server-side name as vgg19: the cache keeps them apart.
        cache_name="imagenet-vgg-verydeep-19-2015.mat",
        urls=(
            f"{_MATCONVNET}/beta16/imagenet-vgg-verydeep-19.mat",
            f"{_MATCONVNET_HTTP}/beta16/imagenet-vgg-verydeep-19.mat",
        ),
        architecture="vgg19",
        description="VGG-19, MatConvNet beta16 (2015) version, as anishathalye/neural-style used it",
        md5="8ee3263992981a1d26e73b3ca028a123",
    ),
    "vgg16": WeightsFile(
        name="vgg16",
        file_name="imagenet-vgg-verydeep-16.mat",
        cache_name="imagenet-vgg-verydeep-16.mat",
        urls=(f"{_MATCONVNET}/imagenet-vgg-verydeep-16.mat", f"{_MATCONVNET_HTTP}/imagenet-vgg-verydeep-16.mat"),
        architecture="vgg16",
        description="VGG-16, MatConvNet 2016 version",
        md5="f72d927587ca4c97fbd165ec9cb9997f",
    ),
}


def names() -> tuple[str, ...]:
    """The registry names, default first."""
    return tuple(sorted(WEIGHTS, key=lambda n: (n != DEFAULT_WEIGHTS, n)))


def is_known(name: str) -> bool:
    return name in WEIGHTS


def get(name: str | None = None) -> WeightsFile:
    """The entry for `name` (None: the default); an unknown name lists the known ones."""
    name = DEFAULT_WEIGHTS if name is None else name
    if name in WEIGHTS:
        return WEIGHTS[name]
    close = difflib.get_close_matches(name, list(WEIGHTS), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise ConfigError(f"unknown weights {name!r}: known weights are {', '.join(names())}{hint}")
