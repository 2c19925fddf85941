"""Colour management (nst.runtime.icc): tagged inputs become sRGB before the network, outputs carry
a profile, and the float conversion into a matrix/TRC profile agrees with littlecms."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from nst.cli import main
from nst.errors import NSTWarning
from nst.runtime import icc
from nst.runtime.images import Rendered, encode_image, open_image

from icc_profiles import matrix_profile_bytes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ADOBE = matrix_profile_bytes()


def _adobe_copy(path: Path, out: Path) -> Path:
    """`path`'s pixels converted from sRGB to Adobe RGB (littlecms) and tagged as such."""
    srgb = ImageCms.ImageCmsProfile(io.BytesIO(icc.srgb_profile()))
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(ADOBE))
    img = ImageCms.profileToProfile(Image.open(path).convert("RGB"), srgb, adobe)
    img.save(out, icc_profile=ADOBE)
    return out


@pytest.fixture(scope="module")
def style(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("style")
    original = folder / "style.png"
    Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").resize((96, 96), Image.Resampling.LANCZOS).save(original)
    adobe = _adobe_copy(original, folder / "style-adobe.png")
    untagged = Image.open(adobe)
    del untagged.info["icc_profile"]  # Pillow would carry it over
    ignored = folder / "style-adobe-untagged.png"
    untagged.save(ignored)  # the Adobe RGB values read as sRGB: what nst did before
    return {"original": original, "adobe": adobe, "ignored": ignored}


def test_adobe_rgb_tagged_style_gives_the_original_targets(vgg19_onnx, style):
    from nst.runtime.config import PrecomputeConfig
    from nst.runtime.grams import compute_style_targets

    targets = compute_style_targets(vgg19_onnx, list(style.values()), config=PrecomputeConfig(size=96))
    grams = [targets.grams_for(i)[0].grams for i in range(3)]

    def difference(a: dict, b: dict) -> float:
        return max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in b)

    converted, ignored = difference(grams[1], grams[0]), difference(grams[2], grams[0])
    # Measured: 0.1 % converted (two 8-bit conversions), 20 % read as sRGB (random weights are
    # more sensitive to colour than trained ones, for which issue 22 measured 1.1 %).
    assert converted < 0.003, converted
    assert ignored > 10 * converted, (ignored, converted)


def test_open_image_converts_to_srgb_and_drops_the_profile(style):
    original = np.asarray(open_image(style["original"]), float)
    converted = open_image(style["adobe"])
    assert "icc_profile" not in converted.info
    assert np.abs(np.asarray(converted, float) - original).mean() < 0.6  # two 8-bit conversions


def test_float_conversion_matches_littlecms():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    srgb = ImageCms.ImageCmsProfile(io.BytesIO(icc.srgb_profile()))
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(ADOBE))
    lcms = np.asarray(ImageCms.profileToProfile(Image.fromarray(pixels), srgb, adobe), float)
    mine = icc.from_srgb(pixels.astype(np.float32), ADOBE)
    assert np.abs(mine - lcms).max() < 1.5 and np.abs(mine - lcms).mean() < 0.5
    assert icc.is_srgb(icc.srgb_profile()) and icc.is_srgb(None) and not icc.is_srgb(ADOBE)


def test_broken_or_mismatched_profiles_are_taken_as_srgb_with_a_warning(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "broken.png", icc_profile=b"not a profile at all")
    with pytest.warns(NSTWarning, match="embeds an ICC profile that cannot be read"):
        assert np.array_equal(np.asarray(open_image(tmp_path / "broken.png")), pixels)
    gray = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.fromarray(pixels).save(tmp_path / "lab.png", icc_profile=gray)
    with pytest.warns(
        NSTWarning, match="embeds a Lab ICC profile that does not fit its RGB pixels; it is taken as sRGB"
    ):
        assert np.array_equal(np.asarray(open_image(tmp_path / "lab.png")), pixels)
    lut = matrix_profile_bytes(extra=((b"A2B0", b"mft2\0\0\0\0"),))  # lcms reads it, but cannot convert from it
    Image.fromarray(pixels).save(tmp_path / "lut.png", icc_profile=lut)
    with pytest.warns(NSTWarning, match="embeds an ICC profile that cannot be used .*; it is taken as sRGB"):
        assert np.array_equal(np.asarray(open_image(tmp_path / "lut.png")), pixels)


def test_outputs_are_tagged_srgb_by_default():
    rendered = Rendered(np.random.default_rng(2).uniform(0, 255, (6, 8, 3)).astype(np.float32))
    png = Image.open(io.BytesIO(encode_image(rendered, "out.png")))
    assert png.info.get("srgb") == 0 and "icc_profile" not in png.info
    for name in ("out.jpg", "out.tif", "out.webp"):
        assert Image.open(io.BytesIO(encode_image(rendered, name))).info["icc_profile"] == icc.srgb_profile()


def _stylize(files: dict[str, Path], model: Path, out: Path, *extra: str):
    args = ["stylize", str(files["content"]), str(files["style"]), "-m", str(model), "-o", str(out),
            "--iterations", "2", "--seed", "3", "--size", "0", "--no-log", "-q", *extra]  # fmt: skip
    return CliRunner().invoke(main, args)


def test_output_profile_content_converts_back_and_embeds_it(vgg19_onnx, style, tmp_path):
    content = tmp_path / "photo.png"
    Image.open(EXAMPLES / "chelsea.jpg").convert("RGB").resize((40, 32)).save(content)
    files = {"content": _adobe_copy(content, tmp_path / "photo-adobe.png"), "style": style["original"]}
    result = _stylize(files, vgg19_onnx, tmp_path / "srgb.png")
    assert result.exit_code == 0, result.output
    result = _stylize(files, vgg19_onnx, tmp_path / "adobe.png", "--output-profile", "content")
    assert result.exit_code == 0, result.output
    tagged = Image.open(tmp_path / "adobe.png")
    assert tagged.info["icc_profile"] == ADOBE and "srgb" not in tagged.info
    # The same image: read back through its profile it is the sRGB output, to a level or two.
    srgb = np.asarray(open_image(tmp_path / "srgb.png"), float)
    back = np.asarray(open_image(tmp_path / "adobe.png"), float)
    assert np.abs(back - srgb).mean() < 0.7 and not np.array_equal(np.asarray(tagged, float), srgb)


def test_output_profile_content_refuses_bmp_before_any_work(vgg19_onnx, style, tmp_path):
    files = {"content": style["adobe"], "style": style["original"]}
    result = _stylize(files, vgg19_onnx, tmp_path / "out.bmp", "--output-profile", "content")
    assert result.exit_code == 1
    assert (
        result.output.strip() == "Error: --output-profile content needs a format that embeds a profile; out.bmp is BMP"
    )


def test_lut_profiles_cannot_take_16_bits():
    from nst.errors import ConfigError

    lut = matrix_profile_bytes(extra=((b"A2B0", b"mft2\0\0\0\0"),))
    content = Image.new("RGB", (4, 4))
    content.info["icc_profile"] = lut
    assert icc.matrix_profile(lut) is None and icc.output_profile("content", content) == lut
    with pytest.raises(
        ConfigError, match=r"^--output-profile content with --bit-depth 16: the content.s ICC profile is LUT"
    ):
        icc.output_profile("content", content, bit_depth=16)
    assert icc.output_profile("srgb", content, bit_depth=16) is None
