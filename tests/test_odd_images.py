"""Image files whose pixels are not what they seem: float TIFFs (0-1 or 0-255) and a PNG whose
header promises far more pixels than its data holds."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from odd_files import png_header_only
from PIL import Image

from nst.errors import ImageError
from nst.runtime.images import open_image, probe_image


def _float_tiff(path, values: np.ndarray):
    Image.fromarray(values.astype(np.float32), "F").save(path)
    return path


@pytest.mark.parametrize("white", [1.0, 255.0])
def test_a_float_tiff_is_read_at_its_own_scale(tmp_path, white):
    """0-1 floats (the float convention) and 0-255 floats give the same 8-bit grey ramp."""
    ramp = np.tile(np.linspace(0, 1, 32), (8, 1))  # (8, 32)
    image = open_image(_float_tiff(tmp_path / "ramp.tif", ramp * white))
    pixels = np.asarray(image)
    assert image.mode == "RGB" and pixels.shape == (8, 32, 3)
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255
    np.testing.assert_allclose(pixels[..., 0], np.rint(ramp * 255), atol=1)


def test_a_float_tiff_above_255_is_read_as_16_bits(tmp_path):
    values = np.full((4, 4), 65535.0)
    values[0, 0] = 0.0
    pixels = np.asarray(open_image(_float_tiff(tmp_path / "deep.tif", values)))
    assert pixels[0, 0, 0] == 0 and pixels[1, 1, 0] == 255


def test_a_float_tiff_with_nans_reads_them_as_black(tmp_path):
    values = np.full((4, 4), 0.5)
    values[0, 0] = np.nan
    pixels = np.asarray(open_image(_float_tiff(tmp_path / "nan.tif", values)))
    assert pixels[0, 0, 0] == 0 and pixels[1, 1, 0] == 128


def test_a_png_with_too_little_data_for_its_header_is_refused_unread(tmp_path, monkeypatch):
    from PIL import ImageFile

    hollow = png_header_only(tmp_path / "hollow.png", 12000, 12000)
    data = len(zlib.compress(bytes(3 * 12000 + 1)))  # the one row it holds
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    for read in (probe_image, open_image):
        with pytest.raises(ImageError) as caught:
            read(hollow)
        assert str(caught.value) == (
            f"cannot read image {hollow}: its header declares 12000x12000 px but it holds {data} bytes of pixel "
            "data, too few for that; is it a complete image file?"
        )


def test_a_png_with_enough_data_passes_the_check(tmp_path):
    padded = png_header_only(tmp_path / "padded.png", 12000, 12000, padded=True)
    assert probe_image(padded) == (12000, 12000)
    black = tmp_path / "black.png"
    Image.new("RGB", (3000, 2000)).save(black, optimize=True)  # compresses about as far as deflate goes
    assert open_image(black).size == (3000, 2000)
