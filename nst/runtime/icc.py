"""Colour management: images that embed an ICC profile are converted to sRGB on the way in (VGG
was trained on sRGB photos), and outputs are tagged, sRGB or converted to the content's profile.

Input conversions go through Pillow's ImageCms (littlecms), relative colorimetric, so any
profile lcms reads works: RGB, grey or CMYK, matrix or LUT based. An output keeps its float
precision into a matrix/TRC profile (Adobe RGB, Display P3, ProPhoto: what cameras and
phones embed), computed here from the profile's colorants and curves; a LUT-based profile
goes through ImageCms at 8 bits.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from nst.errors import ConfigError, NSTWarning

if TYPE_CHECKING:
    from PIL.Image import Image

OutputProfile = Literal["srgb", "content"]
_LUT_TAGS = (b"A2B0", b"A2B1", b"B2A0", b"B2A1")
_SPACE_MODES = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}


@functools.cache
def srgb_profile() -> bytes:
    """littlecms's sRGB profile, as bytes to embed."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def to_srgb(img: Image, profile: bytes | None, name: str = "the image") -> Image:
    """`img` (as opened, any mode) as 8-bit RGB in sRGB: converted from `profile`, its embedded
    ICC profile; untagged or already sRGB, as it is. A profile lcms cannot read, or of another
    colour space than the image, is ignored with a warning."""
    from nst.runtime.images import rgb_image  # images imports this module at its top

    source = _cms_profile(profile, name) if profile else None
    if source is None or is_srgb(profile):
        return rgb_image(img)
    space = source.profile.xcolor_space.strip()
    if space == "CMYK" and img.mode == "CMYK":
        return _convert(img, source, name)
    rgb = rgb_image(img)
    if space == "RGB":
        return _convert(rgb, source, name)
    if space == "GRAY" and _is_grey(rgb):
        return _convert(rgb.convert("L"), source, name)
    warnings.warn(
        f"{name} embeds a {space} ICC profile that does not fit its {img.mode} pixels; it is taken as sRGB",
        NSTWarning,
        stacklevel=3,
    )
    return rgb


def _cms_profile(profile: bytes, name: str) -> Any:
    from PIL import ImageCms

    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, ImageCms.PyCMSError) as exc:
        warnings.warn(
            f"{name} embeds an ICC profile that cannot be read ({exc}); it is taken as sRGB", NSTWarning, stacklevel=4
        )
        return None


def _convert(img: Image, source: Any, name: str) -> Image:
    from PIL import ImageCms

    from nst.runtime.images import rgb_image  # images imports this module at its top

    srgb = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
    try:
        out = ImageCms.profileToProfile(
            img, source, srgb, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB"
        )
    except ImageCms.PyCMSError as exc:  # read, but lcms cannot convert from it (a malformed LUT)
        warnings.warn(
            f"{name} embeds an ICC profile that cannot be used ({exc}); it is taken as sRGB", NSTWarning, stacklevel=4
        )
        return rgb_image(img)
    assert out is not None  # inPlace=False returns the image
    out.info.pop("icc_profile", None)  # the pixels are sRGB now
    return out


def _is_grey(rgb: Image) -> bool:
    r, g, b = rgb.split()
    return r.tobytes() == g.tobytes() == b.tobytes()


# --- matrix/TRC profiles, in float --------------------------------------------------------


@dataclass(frozen=True)
class MatrixProfile:
    """An RGB matrix/TRC ICC profile: linear RGB -> PCS XYZ (D50) by `matrix`, and the three
    tone curves between encoded and linear values (0-1)."""

    matrix: np.ndarray  # (3, 3): columns rXYZ, gXYZ, bXYZ
    curves: tuple[Any, Any, Any]  # per channel: ("gamma", g) | ("para", type, params) | ("table", values)

    def linear(self, encoded: np.ndarray) -> np.ndarray:
        """(..., 3) encoded 0-1 -> linear 0-1."""
        return np.stack([_curve(c, encoded[..., i]) for i, c in enumerate(self.curves)], axis=-1)

    def encoded(self, linear: np.ndarray) -> np.ndarray:
        """(..., 3) linear 0-1 -> encoded 0-1 (each curve inverted on a dense grid)."""
        return np.stack([_inverse(c, linear[..., i]) for i, c in enumerate(self.curves)], axis=-1)


def matrix_profile(profile: bytes) -> MatrixProfile | None:
    """The matrix/TRC form of an RGB `profile`, or None when it is LUT based or not RGB."""
    if len(profile) < 132 or profile[16:20] != b"RGB " or profile[20:24] != b"XYZ ":
        return None
    (count,) = struct.unpack_from(">I", profile, 128)
    tags = {}
    for i in range(min(count, 1000)):
        sig, offset, size = struct.unpack_from(">4sII", profile, 132 + 12 * i)
        tags[sig] = profile[offset : offset + size]
    wanted = (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")
    if any(tag in tags for tag in _LUT_TAGS) or not all(tag in tags for tag in wanted):
        return None
    try:
        columns = [_s15(tags[t][8:20], 3) for t in wanted[:3]]
        curves = tuple(_parse_curve(tags[t]) for t in wanted[3:])
    except (struct.error, ValueError):
        return None
    return MatrixProfile(np.array(columns, dtype=np.float64).T, curves)  # type: ignore[arg-type]


def _s15(data: bytes, n: int) -> list[float]:
    return [v / 65536.0 for v in struct.unpack_from(f">{n}i", data)]


def _parse_curve(data: bytes) -> tuple:
    kind = data[:4]
    if kind == b"curv":
        (n,) = struct.unpack_from(">I", data, 8)
        values = struct.unpack_from(f">{n}H", data, 12)
        if n == 0:
            return ("gamma", 1.0)
        if n == 1:
            return ("gamma", values[0] / 256.0)
        return ("table", np.array(values, dtype=np.float64) / 65535.0)
    if kind == b"para":
        (function,) = struct.unpack_from(">H", data, 8)
        n = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(function)
        if n is None:
            raise ValueError(f"parametric curve type {function}")
        return ("para", function, _s15(data[12:], n))
    raise ValueError(f"curve type {kind!r}")


def _curve(curve: tuple, x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    if curve[0] == "gamma":
        return x ** curve[1]
    if curve[0] == "table":
        table = curve[1]
        return np.interp(x, np.linspace(0.0, 1.0, len(table)), table)
    function, p = curve[1], list(curve[2]) + [0.0] * 7
    g, a, b, c, d, e, f = p[:7]
    if function == 0:
        return x**g
    if function in (1, 2):  # below -b/a the curve is 0 (type 1) or c (type 2)
        offset = c if function == 2 else 0.0
        base = a * x + b
        return np.where(base >= 0, np.maximum(base, 0) ** g + offset, offset)
    linear, extra = (c * x + f, e) if function == 4 else (c * x, 0.0)
    return np.where(x >= d, np.maximum(a * x + b, 0) ** g + extra, linear)


# Encoded values sampled densely near 0, where power curves are steep: the inverse by
# interpolation is then accurate to well below a 16-bit step.
_GRID = np.linspace(0.0, 1.0, 65537) ** 2


def _inverse(curve: tuple, y: np.ndarray) -> np.ndarray:
    if curve[0] == "gamma":
        return np.clip(y, 0.0, 1.0) ** (1.0 / curve[1])
    forward = np.maximum.accumulate(_curve(curve, _GRID))  # monotone for interp
    return np.interp(np.clip(y, 0.0, 1.0), forward, _GRID)


@functools.cache
def _srgb_matrix() -> MatrixProfile:
    parsed = matrix_profile(srgb_profile())
    assert parsed is not None, "littlecms's sRGB profile is a matrix/TRC profile"
    return parsed


def is_srgb(profile: bytes | None) -> bool:
    """Whether `profile` is sRGB (its colorants and curves within 1e-3 of littlecms's)."""
    if not profile:
        return True
    parsed = matrix_profile(profile)
    if parsed is None:
        return False
    srgb = _srgb_matrix()
    ramp = np.linspace(0, 1, 256)[:, None].repeat(3, 1)
    return bool(
        np.allclose(parsed.matrix, srgb.matrix, atol=1e-3)
        and np.allclose(parsed.linear(ramp), srgb.linear(ramp), atol=1e-3)
    )


def from_srgb(pixels: np.ndarray, profile: bytes) -> np.ndarray:
    """(H, W, 3) sRGB 0-255 floats -> the same colours in matrix/TRC `profile`, 0-255 floats
    (relative colorimetric; colours outside its gamut clipped)."""
    target = matrix_profile(profile)
    if target is None:
        raise ConfigError("this ICC profile is LUT based; it converts through ImageCms at 8 bits only")
    srgb = _srgb_matrix()
    xyz = srgb.linear(np.asarray(pixels, np.float64) / 255.0) @ srgb.matrix.T  # (H, W, 3) PCS XYZ
    linear = xyz @ np.linalg.inv(target.matrix).T
    return (target.encoded(np.clip(linear, 0.0, 1.0)) * 255.0).astype(np.float32)


def from_srgb_8bit(img: Image, profile: bytes) -> Image:
    """An 8-bit sRGB PIL image in `profile`, through ImageCms (for LUT-based profiles)."""
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
    target = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    out = ImageCms.profileToProfile(img, srgb, target, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    assert out is not None
    return out


def embedded_profile(path: str | Path) -> bytes | None:
    """The ICC profile an image file embeds (None: untagged), read from its header."""
    from nst.runtime.images import opened  # images imports this module at its top

    with opened(Path(path)) as img:
        return img.info.get("icc_profile") or None


def output_profile(choice: OutputProfile, content: Any, *, bit_depth: int = 8) -> bytes | None:
    """The profile an output is converted to and tagged with: None for sRGB, else the
    content's own (None too when the content is untagged or sRGB). `content`: a path, or a
    PIL image as opened (its `icc_profile`). Raises ConfigError, before any work, for a
    profile the output cannot be converted to at `bit_depth`."""
    if choice == "srgb":
        return None
    from_file = isinstance(content, (str, Path))
    profile = embedded_profile(content) if from_file else (content.info.get("icc_profile") or None)
    if profile is None or is_srgb(profile):
        return None
    if matrix_profile(profile) is None and profile[16:20] != b"RGB ":
        raise ConfigError(
            f"--output-profile content: the content's ICC profile is {profile[16:20].decode('latin-1').strip()}, "
            "not RGB; write sRGB (the default) instead"
        )
    if matrix_profile(profile) is None and bit_depth == 16:
        raise ConfigError(
            "--output-profile content with --bit-depth 16: the content's ICC profile is LUT based, which nst "
            "converts to at 8 bits only; drop one of the two options"
        )
    return profile
