"""16-bit PNG and TIFF encoders, by hand from the formats' specifications: Pillow holds RGB only at
8 bits per channel, and a 16-bit output must come from the float image, never through 8 bits.

PNG: IHDR (16-bit truecolour), sRGB or iCCP, tEXt/iTXt, deflated IDAT with a filter per row
chosen as libpng does (the least sum of absolute differences). TIFF: baseline RGB, Adobe
deflate in strips with horizontal differencing (predictor 2), and the ICC profile tag.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ROWS_PER_BLOCK = 256  # PNG filters are chosen this many rows at a time (bounded memory)
_STRIP_BYTES = 1 << 18  # TIFF strips of about 256 KiB, as libtiff recommends small strips


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats 0-255 -> uint16 0-65535, rounded (255 -> 65535 exactly)."""
    return np.rint(np.clip(np.asarray(pixels, np.float64), 0.0, 255.0) * (65535.0 / 255.0)).astype(np.uint16)


def encode_png16(pixels: np.ndarray, *, text: Mapping[str, str] | None = None, icc: bytes | None = None) -> bytes:
    """A 16-bit RGB PNG of (H, W, 3) uint16 `pixels`; `icc` embedded (iCCP), else tagged sRGB."""
    h, w, _ = pixels.shape
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))]
    if icc:
        chunks.append(_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    else:
        chunks.append(_chunk(b"sRGB", b"\0"))  # rendering intent: perceptual
    for key, value in (text or {}).items():
        chunks.append(_text_chunk(key, str(value)))
    rows = pixels.astype(">u2").reshape(h, w * 3).view(np.uint8)  # (H, 6W), big-endian samples
    compressor = zlib.compressobj(6)
    data = [compressor.compress(_filtered(rows, i, min(i + _ROWS_PER_BLOCK, h))) for i in range(0, h, _ROWS_PER_BLOCK)]
    chunks.append(_chunk(b"IDAT", b"".join(data) + compressor.flush()))
    chunks.append(_chunk(b"IEND", b""))
    return PNG_SIGNATURE + b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _text_chunk(key: str, value: str) -> bytes:
    keyword = key.encode("latin-1")[:79]
    try:
        return _chunk(b"tEXt", keyword + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:  # iTXt: uncompressed UTF-8, no language tag
        return _chunk(b"iTXt", keyword + b"\0\0\0\0\0" + value.encode("utf-8"))


def _filtered(rows: np.ndarray, start: int, stop: int, bpp: int = 6) -> bytes:
    """Rows start..stop, each prefixed by the filter type (0-4) with the least sum of |bytes|
    (signed), the heuristic the PNG specification suggests."""
    raw = rows[start:stop].astype(np.int16)  # (n, 6W)
    above = rows[start - 1 : stop - 1].astype(np.int16) if start else np.vstack([np.zeros_like(raw[:1]), raw[:-1]])
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    upleft = np.zeros_like(raw)
    upleft[:, bpp:] = above[:, :-bpp]
    estimate = left + above - upleft
    pa, pb, pc = np.abs(estimate - left), np.abs(estimate - above), np.abs(estimate - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, upleft))
    candidates = np.stack([raw, raw - left, raw - above, raw - (left + above) // 2, raw - paeth]) & 0xFF  # (5, n, 6W)
    cost = np.minimum(candidates, 256 - candidates).sum(axis=2)  # (5, n)
    best = cost.argmin(axis=0)  # (n,)
    chosen = candidates[best, np.arange(len(best))].astype(np.uint8)
    return np.hstack([best[:, None].astype(np.uint8), chosen]).tobytes()


def encode_tiff16(pixels: np.ndarray, *, icc: bytes) -> bytes:
    """A 16-bit RGB TIFF (little endian, deflate + predictor 2) of (H, W, 3) uint16 `pixels`,
    with `icc` as its InterColorProfile tag."""
    h, w, _ = pixels.shape
    rows = max(1, min(h, _STRIP_BYTES // (w * 6)))
    differenced = pixels.astype("<u2").copy()
    differenced[:, 1:] -= pixels[:, :-1]  # predictor 2: each sample minus its left neighbour, mod 2^16
    strips = [zlib.compress(differenced[i : i + rows].tobytes(), 6) for i in range(0, h, rows)]
    n = len(strips)
    # (tag, type, values): SHORT = 3, LONG = 4, RATIONAL = 5, UNDEFINED = 7.
    entries: list[tuple[int, int, bytes, int]] = []

    def add(tag: int, kind: int, fmt: str, *values: int) -> None:
        entries.append((tag, kind, struct.pack("<" + fmt * len(values), *values), len(values)))

    add(256, 4, "I", w)
    add(257, 4, "I", h)
    add(258, 3, "H", 16, 16, 16)  # BitsPerSample
    add(259, 3, "H", 8)  # Compression: Adobe deflate
    add(262, 3, "H", 2)  # PhotometricInterpretation: RGB
    add(273, 4, "I", *([0] * n))  # StripOffsets, filled in below
    add(277, 3, "H", 3)  # SamplesPerPixel
    add(278, 4, "I", rows)
    add(279, 4, "I", *(len(s) for s in strips))  # StripByteCounts
    add(282, 5, "I", 72, 1)  # XResolution
    add(283, 5, "I", 72, 1)
    add(284, 3, "H", 1)  # PlanarConfiguration: chunky
    add(296, 3, "H", 2)  # ResolutionUnit: inch
    add(317, 3, "H", 2)  # Predictor: horizontal differencing
    add(339, 3, "H", 1, 1, 1)  # SampleFormat: unsigned
    entries.append((34675, 7, icc, len(icc)))  # InterColorProfile
    rationals = {282, 283}
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    extra = b""
    offsets: dict[int, int] = {}
    for tag, _, data, _ in entries:
        if len(data) > 4:
            offsets[tag] = extra_at + len(extra)
            extra += data + b"\0" * (len(data) % 2)  # word-aligned
    data_at = extra_at + len(extra)
    strip_offsets = np.cumsum([data_at] + [len(s) for s in strips[:-1]]).tolist()
    packed = struct.pack(f"<{n}I", *strip_offsets)
    if 273 in offsets:
        extra = extra[: offsets[273] - extra_at] + packed + extra[offsets[273] - extra_at + len(packed) :]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, data, count in entries:
        if tag == 273 and tag not in offsets:
            data = packed
        count = count // 2 if tag in rationals else count
        value = struct.pack("<I", offsets[tag]) if tag in offsets else data.ljust(4, b"\0")
        ifd += struct.pack("<HHI", tag, kind, count) + value
    ifd += struct.pack("<I", 0)  # no next IFD
    return b"II*\0" + struct.pack("<I", 8) + ifd + extra + b"".join(strips)
