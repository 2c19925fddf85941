"""A style per region through `nst stylize`, `nst stylize-batch` and `Stylizer`: each half of the
image takes its own style (checked with the exported extractor's Grams), and every way of
giving masks wrongly is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nst.cli import main
from nst.contract import gram_output
from nst.runtime.ort_extractor import OrtExtractor

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"
SIZE = (64, 96)  # (height, width) of the content as run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regions")
    paths = {"content": folder / "content.png", "stripes": folder / "stripes.png", "blobs": folder / "blobs.png"}
    Image.open(EXAMPLES / "chelsea.jpg").convert("RGB").resize((SIZE[1], SIZE[0])).save(paths["content"])
    x = np.arange(96)
    stripes = np.zeros((96, 96, 3), np.uint8)
    stripes[:, (x // 4) % 2 == 0] = (250, 220, 30)  # yellow and blue vertical stripes
    stripes[:, (x // 4) % 2 == 1] = (20, 40, 200)
    Image.fromarray(stripes).save(paths["stripes"])
    rng = np.random.default_rng(3)
    blobs = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((96, 96), Image.Resampling.BICUBIC)
    blobs.save(paths["blobs"])  # soft coloured blobs
    left = np.zeros(SIZE, np.uint8)
    left[:, : SIZE[1] // 2] = 255
    paths["left"], paths["right"] = folder / "left.png", folder / "right.png"
    Image.fromarray(left).save(paths["left"])
    Image.fromarray(255 - left).save(paths["right"])
    labels = np.zeros((*SIZE, 3), np.uint8)
    labels[:, : SIZE[1] // 2] = (255, 0, 0)
    labels[:, SIZE[1] // 2 :] = (0, 0, 255)
    paths["labels"] = folder / "labels.png"
    Image.fromarray(labels).save(paths["labels"])
    paths["three"] = folder / "three.png"
    labels[:8] = (0, 255, 0)
    Image.fromarray(labels).save(paths["three"])
    paths["text"] = folder / "mask.txt"
    paths["text"].write_text("white on the left")
    return paths


def _stylize(model, files, out, *extra, iterations=40):
    argv = ["stylize", str(files["content"]), str(files["stripes"]), str(files["blobs"]), "-m", str(model),
            "-o", str(out), "--size", str(SIZE[1]), "--iterations", str(iterations), "--seed", "0", "-q",
            "--style-weight", "5000", *map(str, extra)]  # fmt: skip
    return CliRunner().invoke(main, argv)


def _grams(extractor: OrtExtractor, image: Image.Image) -> dict[str, np.ndarray]:
    array = np.asarray(image.convert("RGB"), np.float32).transpose(2, 0, 1)[None]
    out = extractor.run(array, [gram_output(layer) for layer in ("relu1_1", "relu2_1", "relu3_1")])
    return {name: value[0] for name, value in out.items()}


def _distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return sum(float(np.linalg.norm(a[k] - b[k]) / np.linalg.norm(b[k])) for k in a)


@pytest.mark.parametrize("how", ["masks", "labels"])
def test_each_half_takes_its_own_style(vgg19_onnx, files, tmp_path, how):
    out = tmp_path / "out.png"
    regions = ("--style-mask", files["left"], "--style-mask", files["right"]) if how == "masks" else (
        "--labels", files["labels"])  # fmt: skip
    result = _stylize(vgg19_onnx, files, out, *regions)
    assert result.exit_code == 0, result.output
    if how == "labels":
        assert "note: --labels: the regions take the styles in ascending colour: #0000ff -> stripes.png, " \
               "#ff0000 -> blobs.png" in result.output  # fmt: skip
    extractor = OrtExtractor(vgg19_onnx, provider="cpu")
    image = Image.open(out)
    half = SIZE[1] // 2
    # Labels give the blue (right) region the first style.
    first, second = (image.crop((0, 0, half, SIZE[0])), image.crop((half, 0, SIZE[1], SIZE[0])))
    if how == "labels":
        first, second = second, first
    styles = [_grams(extractor, Image.open(files[name]).resize((SIZE[1], SIZE[1]))) for name in ("stripes", "blobs")]
    g1, g2 = _grams(extractor, first), _grams(extractor, second)
    assert _distance(g1, styles[0]) < _distance(g1, styles[1])
    assert _distance(g2, styles[1]) < _distance(g2, styles[0])
    params = json.loads(image.text["nst:parameters"])
    assert params["mask_mode"] == "soft" and (params["style_masks"] or params["labels"])


def test_content_mask_and_inside_mode_run(vgg19_onnx, files, tmp_path):
    out = tmp_path / "out.png"
    result = _stylize(vgg19_onnx, files, out, "--style-mask", files["left"], "--style-mask", files["right"],
                      "--content-mask", files["left"], "--mask-mode", "inside", iterations=3)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "too small" in result.output  # a 48 px wide region erodes away at relu5_1 (1/16 scale)


def test_style_region_uses_part_of_a_style(vgg19_onnx, files, tmp_path):
    out = tmp_path / "out.png"
    half = np.zeros((96, 96), np.uint8)
    half[:, :48] = 255
    Image.fromarray(half).save(tmp_path / "part.png")
    result = _stylize(vgg19_onnx, files, out, "--style-region", f"stripes.png:{tmp_path / 'part.png'}", iterations=3)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ("--style-mask", "left"),
            "Error: --style-mask is given 1 time(s) for 2 style(s); give one mask per style, in the styles' order",
        ),
        (("--style-mask", "left", "--style-mask", "text"), "is not a readable image"),
        (
            ("--style-mask", "left", "--style-mask", "left"),
            "Error: the style masks overlap: they sum to 2.00 at x=0, "
            "y=0 of the resized content (stripes.png, blobs.png); make them sum to at most 1 (soft values share a pixel)",
        ),
        (
            ("--labels", "three"),
            "Error: --labels has 3 region(s) (#0000ff, #00ff00, #ff0000) for 2 style(s); "
            "give one style per region, in ascending order of colour",
        ),
        (("--labels", "labels", "--style-mask", "left"), "Error: give --style-mask per style or --labels, not both"),
        (
            ("--labels", "labels", "--style-blend-weights", "1,2"),
            "Error: --style-blend-weights blends the styles over "
            "the whole image; with --style-mask or --labels each style has its own region: leave it out",
        ),
        (("--style-region", "3:left"), "Error: --style-region '3:"),
        (("--content-mask", "missing.png"), "Error: --content-mask not found: missing.png"),
    ],
)
def test_mistakes_are_one_line(vgg19_onnx, files, tmp_path, extra, message):
    extra = tuple(str(files.get(a, a)) if not a.startswith("--") else a for a in extra)
    result = _stylize(vgg19_onnx, files, tmp_path / "out.png", *extra, iterations=1)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert message in lines[0], lines[0]
    assert not (tmp_path / "out.png").exists()


def test_batch_and_the_python_api_take_masks(vgg19_onnx, files, tmp_path):
    import nst
    from nst.runtime.config import StylizeConfig

    masks = [np.asarray(Image.open(files[name]), np.float32) / 255 for name in ("left", "right")]
    config = StylizeConfig(iterations=6, size=SIZE[1], seed=0, optimizer="adam")
    session = nst.Stylizer(vgg19_onnx, config=config)
    with_masks = session.stylize(files["content"], styles=[files["stripes"], files["blobs"]], masks=masks)
    via_config = session.stylize(
        files["content"], styles=[files["stripes"], files["blobs"]],
        config=config.replace(style_masks=(str(files["left"]), str(files["right"]))),
    )  # fmt: skip
    assert np.array_equal(np.asarray(with_masks), np.asarray(via_config))
    plain = session.stylize(files["content"], styles=[files["stripes"], files["blobs"]])
    assert not np.array_equal(np.asarray(with_masks), np.asarray(plain))
    result = CliRunner().invoke(main, ["stylize-batch", str(files["content"]), "-s", str(files["stripes"]), "-s",
                                       str(files["blobs"]), "-m", str(vgg19_onnx), "-o", str(tmp_path / "batch"),
                                       "--size", str(SIZE[1]), "--iterations", "6", "--seed", "0", "-q", "--optimizer", "adam",
                                       "--style-mask", str(files["left"]), "--style-mask", str(files["right"])])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(tmp_path / "batch" / "content-stripes+blobs.png"))
    assert np.array_equal(written, np.asarray(with_masks))


def test_masks_work_with_precomputed_targets_and_resume(vgg19_onnx, files, tmp_path):
    targets = tmp_path / "styles.targets"
    result = CliRunner().invoke(main, ["precompute-style", str(files["stripes"]), str(files["blobs"]), "-m",
                                       str(vgg19_onnx), "-o", str(targets), "--size", str(SIZE[1])])  # fmt: skip
    assert result.exit_code == 0, result.output
    masks = ("--style-mask", files["left"], "--style-mask", files["right"])
    argv = ["stylize", str(files["content"]), "--targets", str(targets), "-m", str(vgg19_onnx), "--size",
            str(SIZE[1]), "--iterations", "4", "--seed", "0", "-q", "--checkpoint-iterations", "2"]  # fmt: skip
    result = CliRunner().invoke(main, [*argv, "-o", str(tmp_path / "whole.png"), *map(str, masks)])
    assert result.exit_code == 0, result.output
    state = tmp_path / "whole.0002.state"
    resumed = CliRunner().invoke(
        main, [*argv, "-o", str(tmp_path / "part.png"), "--resume", str(state), *map(str, masks)]
    )
    assert resumed.exit_code == 0, resumed.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "part.png")), np.asarray(Image.open(tmp_path / "whole.png")))
    other = CliRunner().invoke(
        main, [*argv, "-o", str(tmp_path / "other.png"), "--resume", str(state), "--style-mask", str(files["right"]),
               "--style-mask", str(files["left"])],
    )  # fmt: skip
    assert other.exit_code == 1
    assert "Error: the state comes from a run with other regions" in other.output
