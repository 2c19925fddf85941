"""A PNG's chunk list checked against its header, without decoding: a file whose pixel data
is too short for the size it declares is cut off (Pillow would decode the missing rows as black)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from nst.errors import ImageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Deflate never compresses better than about 1032:1 (a 258-byte match costs at least 2 bits),
# so fewer IDAT bytes than raw / 1032 cannot hold the image.
DEFLATE_MAX_RATIO = 1032
# Samples per pixel by PNG colour type (grey, RGB, palette, grey + alpha, RGBA).
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def check_png_data(path: Path) -> None:
    """Raise ImageError when `path` is a PNG whose IDAT chunks are too short for its header's
    size; anything that is not a readable PNG is left to the decoder to judge."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                return
            found = _idat_bytes(f)
    except OSError:
        return
    if found is None:
        return
    (width, height, raw), data = found
    if data * DEFLATE_MAX_RATIO < raw:
        raise ImageError(
            f"cannot read image {path}: its header declares {width}x{height} px but it holds {data} bytes of "
            f"pixel data, too few for that; is it a complete image file?"
        )


def _idat_bytes(f: BinaryIO) -> tuple[tuple[int, int, int], int] | None:
    """((width, height, raw bytes), IDAT bytes) read from the chunk headers, seeking over the
    data; None when the header is not one this check understands."""
    shape = None
    data = 0
    while True:
        head = f.read(8)
        if len(head) < 8:
            break  # cut off between chunks: the IDAT bytes found so far are all there is
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IHDR":
            fields = f.read(13)
            if len(fields) < 13:
                return None
            width, height, depth, colour = struct.unpack(">IIBB", fields[:10])
            if colour not in _CHANNELS:
                return None
            row = (width * _CHANNELS[colour] * depth + 7) // 8 + 1  # a filter byte per row
            shape = (width, height, row * height)
            f.seek(length - 13 + 4, 1)
        else:
            if kind == b"IDAT":
                data += length
            elif kind == b"IEND":
                break
            f.seek(length + 4, 1)  # the data and its CRC
    return (shape, data) if shape is not None else None
