"""--bit-depth 16 (nst.runtime.encode16): PNG and TIFF written from the float image hold more than 256
levels, decode exactly (with decoders written here from the specifications), and read back
through open_image; checkpoints, batch workers and the CLI honour the option."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nst.cli import main
from nst.runtime.config import StylizeConfig, applied_options
from nst.runtime.encode16 import to_uint16
from nst.runtime.images import Rendered, encode_image, open_image, save_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def decode_png16(data: bytes) -> tuple[np.ndarray, dict[bytes, bytes]]:
    """(H, W, 3) uint16 of a 16-bit RGB PNG (filters undone row by row), and its chunks."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, idat = 8, {}, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        idat += body if kind == b"IDAT" else b""
        chunks.setdefault(kind, body)
        pos += 12 + length
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (16, 2)
    raw, stride, bpp = zlib.decompress(idat), w * 6, 6
    out = np.zeros((h, stride), np.int64)
    for y in range(h):
        kind, row = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        up = out[y - 1] if y else np.zeros(stride, np.int64)
        for x in range(stride):
            a = out[y, x - bpp] if x >= bpp else 0
            c = up[x - bpp] if x >= bpp else 0
            p = a + up[x] - c
            pa, pb, pc = abs(p - a), abs(p - up[x]), abs(p - c)
            predictor = [0, a, up[x], (a + up[x]) // 2, a if pa <= pb and pa <= pc else (up[x] if pb <= pc else c)][
                kind
            ]
            out[y, x] = (row[x] + predictor) & 0xFF
    return out.astype(np.uint8).view(">u2").reshape(h, w, 3).astype(np.uint16), chunks


def decode_tiff16(data: bytes) -> tuple[np.ndarray, dict[int, bytes]]:
    """(H, W, 3) uint16 of a little-endian deflate + predictor-2 RGB TIFF, and its tags' raw values."""
    assert data[:4] == b"II*\0"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    sizes = {3: 2, 4: 4, 5: 8, 7: 1}
    tags = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * i)
        size = sizes[kind] * n
        tags[tag] = data[value : value + size] if size > 4 else data[ifd + 10 + 12 * i : ifd + 10 + 12 * i + size]

    def ints(tag: int) -> list[int]:
        fmt = "H" if len(tags[tag]) % 4 else "I"
        if tag in (256, 257, 273, 278, 279):
            fmt = "I"
        return list(struct.unpack(f"<{len(tags[tag]) // struct.calcsize(fmt)}{fmt}", tags[tag]))

    (w,), (h,) = ints(256), ints(257)
    assert ints(258) == [16, 16, 16] and ints(259) == [8] and ints(317) == [2]
    raw = b"".join(zlib.decompress(data[o : o + n]) for o, n in zip(ints(273), ints(279)))
    diffs = np.frombuffer(raw, "<u2").reshape(h, w, 3).astype(np.uint64)
    return (np.cumsum(diffs, axis=1) % 65536).astype(np.uint16), tags


@pytest.fixture(scope="module")
def gradient() -> Rendered:
    """A smooth float image: over 256 distinct values per channel, which 8 bits would band."""
    y, x = np.mgrid[0:48, 0:160]
    ramp = (x * 48 + y) / (160 * 48 - 1)  # 7680 distinct values in 0-1
    pixels = np.stack([60 + 100 * ramp, 100 + 30 * ramp, 255 * ramp], axis=-1)
    return Rendered(pixels.astype(np.float32))


def test_16_bit_png_holds_the_float_image(gradient, tmp_path):
    text = {"nst:parameters": '{"seed": 1}', "Comment": "caf\u00e9 \u2713"}
    path = save_image(gradient, tmp_path / "out.png", bit_depth=16, text=text)
    decoded, chunks = decode_png16(path.read_bytes())
    np.testing.assert_array_equal(decoded, to_uint16(gradient.pixels))
    assert len(np.unique(decoded[..., 0])) > 256 >= len(np.unique(np.asarray(gradient.image)[..., 0]))
    assert chunks[b"sRGB"] == b"\0"
    info = Image.open(path).info  # Pillow reads it, text chunks included
    assert info["nst:parameters"] == '{"seed": 1}' and info["Comment"] == "caf\u00e9 \u2713"
    # As an input it reads as the 8-bit image (Pillow keeps each sample's high byte).
    assert np.abs(np.asarray(open_image(path), float) - np.asarray(gradient.image, float)).max() <= 1


def test_16_bit_tiff_holds_the_float_image_and_its_profile(gradient, tmp_path):
    from nst.runtime.icc import from_srgb, srgb_profile

    from icc_profiles import matrix_profile_bytes

    path = save_image(gradient, tmp_path / "out.tif", bit_depth=16)
    decoded, tags = decode_tiff16(path.read_bytes())
    np.testing.assert_array_equal(decoded, to_uint16(gradient.pixels))
    assert tags[34675] == srgb_profile()
    assert np.abs(np.asarray(open_image(path), float) - np.asarray(gradient.image, float)).max() <= 1
    adobe = matrix_profile_bytes()
    decoded, tags = decode_tiff16(encode_image(gradient, "x.tiff", bit_depth=16, profile=adobe))
    np.testing.assert_array_equal(decoded, to_uint16(from_srgb(gradient.pixels, adobe)))  # converted in float
    assert tags[34675] == adobe


def test_8_bit_formats_refuse_16_bits(gradient):
    from nst.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--bit-depth 16 needs a \.png or \.tif output; out\.jpg is JPEG"):
        encode_image(gradient, "out.jpg", bit_depth=16)


def test_bit_depth_and_output_profile_are_output_only():
    config = StylizeConfig(bit_depth=16, output_profile="content")
    assert applied_options(config) == applied_options(StylizeConfig())  # PNG parameters, --resume checks


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    content, style = folder / "content.png", folder / "style.png"
    Image.open(EXAMPLES / "astronaut.jpg").resize((40, 32)).save(content)
    Image.open(EXAMPLES / "hubble-deep-field.jpg").resize((32, 32)).save(style)
    return {"content": content, "style": style}


def test_stylize_writes_16_bit_outputs_and_checkpoints(vgg19_onnx, files, tmp_path):
    out = tmp_path / "out.png"
    args = ["stylize", str(files["content"]), str(files["style"]), "-m", str(vgg19_onnx), "-o", str(out),
            "--iterations", "4", "--checkpoint-iterations", "2", "--seed", "1", "--size", "0", "--no-log", "-q",
            "--bit-depth", "16"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for path in (out, tmp_path / "out.0002.png"):
        decoded, _ = decode_png16(path.read_bytes())
        assert decoded.shape == (32, 40, 3)
        assert (decoded % 257 != 0).any()  # not an 8-bit image widened: the float image's own levels
    result = CliRunner().invoke(main, [*args[:6], str(tmp_path / "out.jpg"), *args[7:]])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "Error: --bit-depth 16 needs a .png or .tif output; out.jpg is JPEG, which holds 8 bits"
    )


def test_batch_workers_encode_16_bits(vgg19_onnx, files, tmp_path):
    from nst.batch import stylize_batch

    config = StylizeConfig(iterations=2, size=0, seed=1, bit_depth=16)
    stylize_batch([files["content"]], styles=[files["style"]], outdir=tmp_path / "out", config=config, model=vgg19_onnx)
    (written,) = (tmp_path / "out").glob("*.png")
    decoded, _ = decode_png16(written.read_bytes())
    assert (decoded % 257 != 0).any()


def test_rendered_float_image_is_what_stylize_rounds(vgg19_onnx, files):
    from nst.runtime.stylize import Stylizer

    config = StylizeConfig(iterations=2, size=0, seed=4, preserve_colors="histogram")
    session = Stylizer(vgg19_onnx, config=config, device="cpu")
    rendered = session.render(files["content"], styles=[files["style"]])
    image = session.stylize(files["content"], styles=[files["style"]])
    assert np.array_equal(np.asarray(image), np.asarray(rendered.image))
    assert rendered.pixels.dtype == np.float32 and 0 <= rendered.pixels.min() <= rendered.pixels.max() <= 255
    assert not np.array_equal(rendered.pixels, np.rint(rendered.pixels))


def test_pil_images_are_widened_exactly(tmp_path):
    img = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    decoded, _ = decode_png16(encode_image(img, "x.png", bit_depth=16))
    np.testing.assert_array_equal(decoded, np.asarray(img, np.uint16) * 257)
    assert Image.open(io.BytesIO(encode_image(img, "x.png"))).info.get("srgb") == 0
