"""Image I/O and colour handling: read anything a user has as sRGB, write atomically (8 or 16
bits, tagged with a colour profile)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from nst.errors import ConfigError, ImageError, NSTWarning, OutputError
from nst.fileio import atomic_path
from nst.runtime import encode16, icc
from nst.runtime.config import BitDepth
from nst.runtime.png_data import check_png_data

if TYPE_CHECKING:
    from PIL.Image import Image

# A path to an image file, or an image already in memory.
ImageLike = Union[str, Path, "Image"]

# Output formats that can hold 16 bits per channel.
DEEP_FORMATS = ("PNG", "TIFF")
# Output formats by extension, with their save options.
_FORMATS: dict[str, tuple[str, dict]] = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95}),
    ".jpeg": ("JPEG", {"quality": 95}),
    ".webp": ("WEBP", {"quality": 95}),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
}


def open_image(path: str | Path) -> Image:
    """Open an image as 8-bit sRGB `PIL.Image`, the way a colour-managed viewer shows it.

    EXIF orientation is applied; an embedded ICC profile is converted to sRGB (untagged
    images are taken as sRGB); alpha is composited on white; grayscale, palette, CMYK and
    16-bit and float images are converted (scaled to 0-255 by `white_level`). An animated image gives its first
    frame, with a warning. Images over Pillow's decompression-bomb limit are refused.
    """
    from PIL import ImageOps

    path = Path(path)
    with opened(path) as img:
        frames = getattr(img, "n_frames", 1)
        profile = img.info.get("icc_profile")
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"cannot read image {path}: {exc}; is it a complete image file?") from None
        except MemoryError:
            raise ImageError(f"not enough memory to decode {path}; downscale it first") from None
    if frames > 1:
        warnings.warn(f"{path} is animated ({frames} frames); nst uses its first frame", NSTWarning, stacklevel=2)
    return icc.to_srgb(img, profile, str(path))


def probe_image(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as it displays (EXIF orientation applied), read from
    its header only: sizes can be planned and checked before gigabytes are decoded."""
    path = Path(path)
    with opened(path) as img:
        w, h = img.size
        with contextlib.suppress(Exception):  # a broken EXIF block: the decoder will say so later
            if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):  # a quarter turn
                w, h = h, w
    return h, w


_EXIF_ORIENTATION = 0x0112


@contextlib.contextmanager
def opened(path: Path) -> Iterator[Image]:
    """Image.open with one clear ImageError per way a file can be wrong."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            # Between Pillow's warning and error thresholds: a large photo, which nst resizes.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            img = PILImage.open(path)
    except PILImage.DecompressionBombError:
        limit = 2 * (PILImage.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ImageError(
            f"{path} has more pixels than the limit of {limit:.0f} megapixels (Pillow's guard against "
            "decompression bombs); downscale it first"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}; is it a complete image file?") from None
    with img:
        if img.format == "PNG":
            check_png_data(path)  # before a size is planned from its header
        yield img


def as_image(image: ImageLike) -> Image:
    """An image given as a path or as a PIL image, as 8-bit sRGB (an embedded profile converted)."""
    if isinstance(image, (str, Path)):
        return open_image(image)
    return icc.to_srgb(image, image.info.get("icc_profile"), "the image")


def image_key(image: Image) -> str:
    """Identifies an image by its pixels, for caches (a few ms for a photo)."""
    return hashlib.sha1(image.tobytes()).hexdigest() + f"-{image.height}x{image.width}"


def rgb_image(img):
    """Any PIL image as 8-bit RGB (its encoded values as they are; no colour conversion)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        arr = np.clip(arr / white_level(img.mode, arr) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "RGBa", "PA") or (img.mode == "L" and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB") if img.mode != "RGB" else img


def white_level(mode: str, values: np.ndarray) -> float:
    """The value that is white in a single-channel image of `mode` with these `values`: 65535
    for 16 bits; for 32-bit ints 255 unless a value exceeds it (then 65535); for floats 1 when
    no value exceeds 1 (the float convention), else 255 unless a value exceeds it, else 65535."""
    top = float(values.max(initial=0))
    if mode.startswith("I;16"):
        return 65535.0
    if mode == "F" and top <= 1.0:
        return 1.0
    return 255.0 if top <= 255 else 65535.0


def resized_shape(
    size: tuple[int, int], *, long_side: float | None = None, width: float | None = None
) -> tuple[int, int]:
    """(height, width) of an image of `size` (height, width) once resized, keeping its aspect:
    its width to `width` when given, else its long side to `long_side` (None or 0: as it is).
    The target is rounded to whole pixels first, then the other side follows. The one size rule
    of contents (`--size`, `--width`) and styles (scale x the content's width, or x `--size`)."""
    h, w = size
    if width is not None:
        factor = round(width) / w
    elif long_side:
        factor = round(long_side) / max(h, w)
    else:
        return size
    return max(1, round(h * factor)), max(1, round(w * factor))


def resized(img, size: tuple[int, int]):
    """`img` at `size` (height, width), Lanczos; itself when it has that size already."""
    from PIL import Image

    if (img.height, img.width) == size:
        return img
    return img.resize((size[1], size[0]), Image.Resampling.LANCZOS)


def resized_pixels(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) floats at `size` (height, width): each channel resized as a float image with
    Lanczos, as `resized` resizes 8-bit ones; itself when it has that size."""
    from PIL import Image

    if pixels.shape[:2] == size:
        return pixels
    target = (size[1], size[0])  # PIL's (width, height)
    channels = [
        Image.fromarray(np.ascontiguousarray(pixels[..., c], np.float32), "F").resize(target, Image.Resampling.LANCZOS)
        for c in range(3)
    ]
    return np.stack([np.asarray(channel) for channel in channels], axis=-1)  # (H, W, 3)


def to_array(img) -> np.ndarray:
    """PIL RGB image -> float32 (1, 3, H, W), 0-255: the extractor's input convention."""
    arr = np.asarray(img, dtype=np.float32)  # (H, W, 3)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])  # (1, 3, H, W)


def from_array(arr: np.ndarray):
    """(1, 3, H, W) or (3, H, W) or (H, W, 3) 0-255 floats -> PIL RGB image (rounded, clipped)."""
    from PIL import Image

    arr = np.asarray(arr)
    if arr.ndim == 4:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def output_format(path: str | Path) -> tuple[str, dict]:
    """The PIL format and save options for an output path, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise OutputError(f"cannot tell the image format of {path}; use one of {', '.join(sorted(_FORMATS))}")
    return _FORMATS[suffix]


@dataclass(frozen=True)
class Rendered:
    """A stylized image before any rounding: (H, W, 3) float32 sRGB, 0-255, clipped. `image` is
    the 8-bit PIL image derived from it; 16-bit writers use `pixels`."""

    pixels: np.ndarray

    @functools.cached_property
    def image(self) -> Image:
        return from_array(self.pixels)


OutputImage = Union["Image", Rendered]  # what the writers take: a PIL image or the float image


def check_output(path: str | Path, *, bit_depth: BitDepth = 8, embed_profile: bool = False) -> str:
    """The PIL format of output `path`, after checking that it can hold `bit_depth` bits and,
    with `embed_profile`, embed another profile than sRGB (a ConfigError says what to change;
    call it before any work)."""
    fmt, _ = output_format(path)
    if bit_depth == 16 and fmt not in DEEP_FORMATS:
        raise ConfigError(f"--bit-depth 16 needs a .png or .tif output; {Path(path).name} is {fmt}, which holds 8 bits")
    if bit_depth not in (8, 16):
        raise ConfigError(f"--bit-depth must be 8 or 16, got {bit_depth!r}")
    if embed_profile and fmt == "BMP":
        raise ConfigError(f"--output-profile content needs a format that embeds a profile; {Path(path).name} is BMP")
    return fmt


def save_image(
    img: OutputImage,
    path: str | Path,
    *,
    overwrite: bool = False,
    text: Mapping[str, str] | None = None,
    bit_depth: BitDepth = 8,
    profile: bytes | None = None,
) -> Path:
    """Write an image atomically; the format follows the extension (JPEG at quality 95).

    `text` becomes PNG text chunks (e.g. the parameters used); other formats ignore it.
    `bit_depth` 16 (PNG, TIFF) writes a `Rendered` image's float pixels at 16 bits. The
    output is tagged sRGB, or converted to `profile` (ICC bytes) and embeds it.
    """
    data = encode_image(img, path, text=text, bit_depth=bit_depth, profile=profile)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def encode_image(
    img: OutputImage,
    name: str | Path,
    *,
    text: Mapping[str, str] | None = None,
    bit_depth: BitDepth = 8,
    profile: bytes | None = None,
) -> bytes:
    """The bytes `save_image` would write to a file called `name` (a worker that has no
    access to the output folder sends these to the process that writes)."""
    import io

    fmt = check_output(name, bit_depth=bit_depth, embed_profile=profile is not None)
    if bit_depth == 16 or (profile is not None and icc.matrix_profile(profile) is not None):
        pixels = img.pixels if isinstance(img, Rendered) else np.asarray(img.convert("RGB"), np.float32)
        if profile is not None:
            pixels = icc.from_srgb(pixels, profile)  # in float: never through 8 bits
        if bit_depth == 16:
            deep = encode16.to_uint16(pixels)
            if fmt == "PNG":
                return encode16.encode_png16(deep, text=text, icc=profile)
            return encode16.encode_tiff16(deep, icc=profile or icc.srgb_profile())
        eight = from_array(pixels)
    else:
        eight = img.image if isinstance(img, Rendered) else img
        if profile is not None:  # a LUT-based RGB profile: ImageCms, at 8 bits
            eight = icc.from_srgb_8bit(eight.convert("RGB"), profile)
    buffer = io.BytesIO()
    eight.save(buffer, format=fmt, **_save_options(fmt, name, text, profile))
    return buffer.getvalue()


def _save_options(fmt: str, name: str | Path, text: Mapping[str, str] | None, profile: bytes | None) -> dict:
    from PIL.PngImagePlugin import PngInfo

    options = dict(output_format(name)[1])
    if fmt == "PNG":
        info = PngInfo()
        for key, value in (text or {}).items():
            info.add_text(key, str(value))
        if profile is None:
            info.add(b"sRGB", b"\0")  # perceptual; one byte instead of a profile
        options["pnginfo"] = info
        options["icc_profile"] = profile  # None: no iCCP beside the sRGB chunk
    elif fmt != "BMP":
        options["icc_profile"] = profile or icc.srgb_profile()
    return options
