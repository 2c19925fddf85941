"""Files users really have, built at test time: huge images (header only), animated GIFs,
truncated and mislabelled files. Nothing large is written or allocated."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def png_header_only(path: Path, width: int, height: int, *, padded: bool = False) -> Path:
    """A PNG that declares `width` x `height` RGB pixels but holds one row of data: readers
    that look only at the header see a huge image; nst refuses it as cut off. `padded` adds
    a second IDAT of filler, as many bytes as the best compression of the whole image would
    take, so that it passes that check (a stand-in for a real huge photo, never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" * (3 * width + 1))
    filler = chunk(b"IDAT", bytes(-(-(3 * width + 1) * height // 1032))) if padded else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + filler + chunk(b"IEND", b""))
    return path


def rgb(path: Path, width: int, height: int, seed: int = 0) -> Path:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def animated_gif(path: Path, width: int = 40, height: int = 32, frames: int = 3) -> Path:
    from PIL import Image

    images = [Image.new("RGB", (width, height), (40 * i, 200 - 40 * i, 90)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def truncated(path: Path, source: Path, keep: int = 60) -> Path:
    path.write_bytes(source.read_bytes()[:keep])
    return path
