"""Image I/O and colour handling: read anything a user has as RGB, write atomically."""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from nst.errors import ImageError, NSTWarning, OutputError
from nst.fileio import atomic_path

if TYPE_CHECKING:
    from PIL.Image import Image

# A path to an image file, or an image already in memory.
ImageLike = Union[str, Path, "Image"]

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
    """Open an image as 8-bit RGB `PIL.Image`, the way a viewer shows it.

    EXIF orientation is applied; alpha is composited on white; grayscale, palette, CMYK and
    16-bit images are converted (16-bit scaled to 0-255). An animated image gives its first
    frame, with a warning. Images over Pillow's decompression-bomb limit are refused.
    """
    from PIL import ImageOps

    path = Path(path)
    with _opened(path) as img:
        frames = getattr(img, "n_frames", 1)
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"cannot read image {path}: {exc}; is it a complete image file?") from None
        except MemoryError:
            raise ImageError(f"not enough memory to decode {path}; downscale it first") from None
    if frames > 1:
        warnings.warn(f"{path} is animated ({frames} frames); nst uses its first frame", NSTWarning, stacklevel=2)
    return _to_rgb(img)


def probe_image(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as it displays (EXIF orientation applied), read from
    its header only: sizes can be planned and checked before gigabytes are decoded."""
    path = Path(path)
    with _opened(path) as img:
        w, h = img.size
        with contextlib.suppress(Exception):  # a broken EXIF block: the decoder will say so later
            if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):  # a quarter turn
                w, h = h, w
    return h, w


_EXIF_ORIENTATION = 0x0112


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image]:
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
        yield img


def as_image(image: ImageLike) -> Image:
    """An image given as a path or as a PIL image, as 8-bit RGB."""
    if isinstance(image, (str, Path)):
        return open_image(image)
    return image if image.mode == "RGB" else _to_rgb(image)


def image_key(image: Image) -> str:
    """Identifies an image by its pixels, for caches (a few ms for a photo)."""
    return hashlib.sha1(image.tobytes()).hexdigest() + f"-{image.height}x{image.width}"


def _to_rgb(img):
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "RGBa", "PA") or (img.mode == "L" and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB") if img.mode != "RGB" else img


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


def save_image(img: Image, path: str | Path, *, overwrite: bool = False, text: Mapping[str, str] | None = None) -> Path:
    """Write a PIL image atomically; the format follows the extension (JPEG at quality 95).

    `text` becomes PNG text chunks (e.g. the parameters used); other formats ignore it.
    """
    fmt, options = _save_options(path, text)
    with atomic_path(path, overwrite=overwrite) as tmp:
        img.save(tmp, format=fmt, **options)
    return Path(path)


def encode_image(img: Image, name: str | Path, *, text: Mapping[str, str] | None = None) -> bytes:
    """The bytes `save_image` would write to a file called `name` (a worker that has no
    access to the output folder sends these to the process that writes)."""
    import io

    fmt, options = _save_options(name, text)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _save_options(path: str | Path, text: Mapping[str, str] | None) -> tuple[str, dict]:
    from PIL.PngImagePlugin import PngInfo

    fmt, options = output_format(path)
    options = dict(options)
    if fmt == "PNG" and text:
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, str(value))
        options["pnginfo"] = info
    return fmt, options
