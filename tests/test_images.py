"""Images as users have them: grayscale, palette, alpha, 16-bit, EXIF orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _rgb(path: Path) -> np.ndarray:
    from nst.runtime.images import open_image

    img = open_image(path)
    assert img.mode == "RGB"
    return np.asarray(img)


def test_grayscale_becomes_gray_rgb(tmp_path):
    from PIL import Image

    gray = np.array([[0, 90], [180, 255]], dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    assert np.array_equal(_rgb(tmp_path / "g.png"), np.repeat(gray[..., None], 3, axis=2))


def test_palette_becomes_its_colours(tmp_path):
    from PIL import Image

    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    img.save(tmp_path / "p.gif")
    for name in ("p.png", "p.gif"):
        assert _rgb(tmp_path / name).tolist() == [[[255, 0, 0], [0, 0, 255]]]


def test_alpha_is_composited_on_white(tmp_path):
    from PIL import Image

    rgba = np.array([[[255, 0, 0, 0], [0, 0, 0, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    transparent, opaque, half = _rgb(tmp_path / "a.png")[0].tolist()
    assert transparent == [255, 255, 255]  # not the hidden red
    assert opaque == [0, 0, 0]
    assert all(abs(v - 127) <= 1 for v in half)
    Image.fromarray(np.array([[[50, 0]]], dtype=np.uint8), "LA").save(tmp_path / "la.png")
    assert _rgb(tmp_path / "la.png").tolist() == [[[255, 255, 255]]]
    # A palette with a transparent index, as GIFs have.
    img = Image.new("P", (2, 1))
    img.putpalette([0, 255, 0, 10, 20, 30] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "t.png", transparency=0)
    assert _rgb(tmp_path / "t.png").tolist() == [[[255, 255, 255], [10, 20, 30]]]


def test_16_bit_is_scaled_to_8_bit(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0, 32896, 65535, 257]], dtype=np.uint16)).save(tmp_path / "16.png")
    assert _rgb(tmp_path / "16.png")[0, :, 0].tolist() == [0, 128, 255, 1]
    # A dark 16-bit image stays dark (its values are not mistaken for 8-bit ones).
    Image.fromarray(np.array([[0, 200]], dtype=np.uint16)).save(tmp_path / "dark.png")
    assert _rgb(tmp_path / "dark.png")[0, :, 0].tolist() == [0, 1]


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    stored = np.zeros((16, 32, 3), dtype=np.uint8)  # 32 wide, 16 tall: left half red, right half blue
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif, quality=95)
    shown = _rgb(tmp_path / "r.jpg").astype(int)
    assert shown.shape == (32, 16, 3)  # displayed portrait
    assert np.abs(shown[4, 8] - (255, 0, 0)).max() < 40  # the stored left (red) is now on top
    assert np.abs(shown[28, 8] - (0, 0, 255)).max() < 40
