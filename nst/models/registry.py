"""Known downloadable weight files: where each comes from and how to check it.

Sources of the numbers (nothing here is invented):
- URLs: MatConvNet's pretrained-models page serves `models/<file>`; the 2015 (beta16)
  VGG-19 is the one anishathalye/neural-style's README links, under `models/beta16/`.
- MD5s: docs/MATFORMAT.md for both VGG-19 versions; MatConvNet's `doc/pretrained.md`
  ("File checksums") for VGG-16 (and the same 2016 VGG-19 MD5). The 2015 MD5 is also the
  one anishathalye/neural-style's README gives for the beta16 link.
- Sizes and SHA-256s are not published anywhere we could read, so they are `None`; the
  MD5 is then the checksum that a download must match.
- PyTorch files (`.pth`): torchvision's URLs are its `torchvision.models.vgg` model URLs;
  the Caffe conversions' are jcjohnson/pytorch-vgg's README (and the older S3 copies that
  facebookresearch/mmf names). No whole SHA-256 of these files could be found offline; each
  name carries the first 8 hex digits of its SHA-256 (torch.hub's convention, which
  jcjohnson/pytorch-vgg's t7_to_state_dict.py follows with `sha256sum`), and that prefix is
  what a download is checked against, as torch.hub's `check_hash` does.

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
_TORCHVISION = "https://download.pytorch.org/models"
_JCJOHNSON = ("https://web.eecs.umich.edu/~justincj/models", "https://s3-us-west-2.amazonaws.com/jcjohns-models")


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file. At least one of `md5` / `sha256` / `sha256_prefix` must be set."""

    name: str  # registry name users type: "vgg19"
    file_name: str  # the file's name on the server (and under $NST_WEIGHTS_URL)
    cache_name: str  # its name in the cache's weights/ folder (distinct per entry)
    urls: tuple[str, ...]  # tried in order
    architecture: str  # vgg19 / vgg16
    description: str
    size: int | None = None  # bytes, when published
    md5: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None  # the first 8+ hex digits, when only a file name publishes them
    layout: str = "matconvnet"  # the input convention: matconvnet | torchvision | caffe

    def __post_init__(self) -> None:
        if not (self.md5 or self.sha256 or self.sha256_prefix):
            raise ValueError(f"registry entry {self.name} has no checksum")
        if self.sha256_prefix is not None and len(self.sha256_prefix) < 8:
            raise ValueError(f"registry entry {self.name}: a SHA-256 prefix needs at least 8 hex digits")

    @property
    def checksums(self) -> dict[str, str]:
        """hashlib algorithm name -> expected hex digest (or, for sha256, its prefix), for the known ones."""
        sha256 = self.sha256 or self.sha256_prefix
        return {algo: value.lower() for algo, value in (("sha256", sha256), ("md5", self.md5)) if value}

    def matches_sha256(self, digest: str) -> bool:
        """Whether a file of SHA-256 `digest` is this entry's file."""
        digest = digest.lower()
        if self.sha256:
            return digest == self.sha256.lower()
        return bool(self.sha256_prefix) and digest.startswith(str(self.sha256_prefix).lower())

    def replace(self, **changes) -> WeightsFile:
        """A copy with some fields changed (for tests and mirrors)."""
        return dataclasses.replace(self, **changes)

    def download_urls(self) -> tuple[str, ...]:
        """`$NST_WEIGHTS_URL/<file name>` when that is set, else the published URLs."""
        base = os.environ.get(ENV_WEIGHTS_URL, "").strip()
        if base:
            return (f"{mirror_url(base).rstrip('/')}/{self.file_name}",)
        return self.urls


def mirror_url(base: str) -> str:
    """$NST_WEIGHTS_URL, checked: a URL that urllib can fetch from (http, https, ftp or file)."""
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    if parts.scheme.lower() not in ("http", "https", "ftp", "file") or not (parts.netloc or parts.scheme == "file"):
        raise ConfigError(
            f"{ENV_WEIGHTS_URL}={base!r} is not a URL; give the folder that holds the weight files, "
            "such as https://mirror.example/models (each file is fetched as $NST_WEIGHTS_URL/<file name>)"
        )
    return base


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


def _pth(name: str, file_name: str, urls: tuple[str, ...], layout: str, description: str) -> WeightsFile:
    arch, prefix = file_name.removesuffix(".pth").split("-")
    return WeightsFile(name, file_name, file_name, urls, arch, description, sha256_prefix=prefix, layout=layout)


WEIGHTS.update(
    (entry.name, entry)
    for entry in (
        _pth("vgg19-torchvision", "vgg19-dcbb9e9d.pth", (f"{_TORCHVISION}/vgg19-dcbb9e9d.pth",), "torchvision",
             "VGG-19, torchvision (IMAGENET1K_V1), RGB normalized input (about 550 MB)"),
        _pth("vgg16-torchvision", "vgg16-397923af.pth", (f"{_TORCHVISION}/vgg16-397923af.pth",), "torchvision",
             "VGG-16, torchvision (IMAGENET1K_V1), RGB normalized input (about 530 MB)"),
        _pth("vgg19-caffe", "vgg19-d01eb7cb.pth", tuple(f"{u}/vgg19-d01eb7cb.pth" for u in _JCJOHNSON), "caffe",
             "VGG-19, the original Caffe weights converted by jcjohnson/pytorch-vgg, BGR 0-255 input"),
        _pth("vgg16-caffe", "vgg16-00b39a1b.pth", tuple(f"{u}/vgg16-00b39a1b.pth" for u in _JCJOHNSON), "caffe",
             "VGG-16, the original Caffe weights converted by jcjohnson/pytorch-vgg, BGR 0-255 input"),
    )
)  # fmt: skip


def find_sha256(digest: str) -> WeightsFile | None:
    """The registry entry whose file has SHA-256 `digest` (by its whole hash or published prefix)."""
    return next((entry for entry in WEIGHTS.values() if entry.matches_sha256(digest)), None)


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
