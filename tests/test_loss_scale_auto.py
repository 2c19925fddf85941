"""--loss-scale auto: reference for a model exported from a registry MatConvNet VGG-19 (by the
source hash in its metadata), balanced for every other weights; what a run says, records in
its PNG and in its state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nst.models import registry
from nst.runtime.config import StylizeConfig
from nst.runtime.stylize import Stylizer

# A stand-in for a registry file's SHA-256 (the real ones are not published), written into a
# synthetic export's metadata as the hash of the file it came from.
FAKE_SHA256 = "ab" * 32


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))  # no cache verified anything
    return tmp_path / "home"


@pytest.fixture(scope="module")
def faked_onnx(make_mat, tmp_path_factory):
    """The random VGG-19 exported as if from a file whose SHA-256 is FAKE_SHA256."""
    from nst.export.save import export_vgg_file

    path = tmp_path_factory.mktemp("faked") / "faked.onnx"
    export_vgg_file(make_mat(), path, source_sha256=FAKE_SHA256)
    return path


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    content = Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    style = Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8))
    return content, style


def _publish(monkeypatch, name: str = "vgg19") -> None:
    monkeypatch.setitem(registry.WEIGHTS, name, registry.WEIGHTS[name].replace(sha256=FAKE_SHA256))


@pytest.mark.parametrize("name", ["vgg19", "vgg19-2015"])
def test_auto_is_reference_for_a_registry_vgg19(faked_onnx, monkeypatch, name):
    assert Stylizer(faked_onnx).resolve().loss_scale == "balanced"  # the hash is nobody's yet
    _publish(monkeypatch, name)
    assert Stylizer(faked_onnx).resolve().loss_scale == "reference"


def test_auto_is_balanced_for_other_weights(make_onnx, monkeypatch):
    _publish(monkeypatch)
    for model in (make_onnx(), make_onnx(arch="vgg16")):  # a random VGG-19 and a VGG-16: their own hashes
        assert Stylizer(model).resolve().loss_scale == "balanced"


def test_a_download_verified_by_the_cache_counts_as_the_registry_file(faked_onnx, home):
    """The registry publishes MD5s only: the SHA-256 that the cache recorded for the file it
    checked against them is what identifies it."""
    from nst.models.cache import remember_sha256, weights_dir

    cached = weights_dir() / registry.WEIGHTS["vgg19"].cache_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stands in for the verified download")
    remember_sha256(cached, FAKE_SHA256)
    assert Stylizer(faked_onnx).resolve().loss_scale == "reference"


def test_explicit_scales_stay(faked_onnx, monkeypatch):
    _publish(monkeypatch)
    session = Stylizer(faked_onnx)
    for scale in ("reference", "balanced"):
        assert session.resolve(StylizeConfig(loss_scale=scale)).loss_scale == scale


def test_auto_runs_as_the_scale_it_resolves_to(faked_onnx, vgg19_onnx, images, monkeypatch):
    """The same image as the explicit scale, with the explicit scale's default weights."""
    _publish(monkeypatch)
    config = StylizeConfig(size=0, iterations=3, seed=0)
    for model, scale in ((faked_onnx, "reference"), (vgg19_onnx, "balanced")):
        session = Stylizer(model)
        auto = session.stylize(images[0], styles=[images[1]], config=config)
        explicit = session.stylize(images[0], styles=[images[1]], config=config.replace(loss_scale=scale))
        assert np.array_equal(np.asarray(auto), np.asarray(explicit)), scale


def _stylize_cli(model, files, out, *extra):
    from nst.cli import main

    argv = ["stylize", str(files[0]), str(files[1]), "-m", str(model), "-o", str(out), "--iterations", "2",
            "--seed", "0", "--size", "0", *extra]  # fmt: skip
    return CliRunner().invoke(main, argv)


@pytest.fixture
def files(images, tmp_path):
    paths = (tmp_path / "content.png", tmp_path / "style.png")
    for image, path in zip(images, paths):
        image.save(path)
    return paths


def test_the_run_says_which_scale_and_weights_and_the_png_records_them(faked_onnx, vgg19_onnx, files, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    from nst.contract import read_model_info
    from nst.runtime.config import DEFAULT_WEIGHTS

    _publish(monkeypatch)
    source = read_model_info(vgg19_onnx).source_sha256
    for model, scale, line in (
        (vgg19_onnx, "balanced", f"loss scale balanced (auto: not a registry MatConvNet VGG-19): content "
                                 f"{DEFAULT_WEIGHTS['balanced'][0]:g}, style {DEFAULT_WEIGHTS['balanced'][1]:g}, "
                                 f"TV {DEFAULT_WEIGHTS['balanced'][2]:g}; model {vgg19_onnx.name} from vgg19 weights "
                                 f"{source[:12]}"),
        (faked_onnx, "reference", f"loss scale reference (auto: the weights it was tuned on): content 5, style 500, "
                                  f"TV 100; model {faked_onnx.name} from vgg19"),
    ):  # fmt: skip
        out = tmp_path / f"{scale}.png"
        result = _stylize_cli(model, files, out)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[1] == line  # after "nst: float32 on cpu (...)"
        with Image.open(out) as image:
            params = json.loads(image.text["nst:parameters"])
        weights = DEFAULT_WEIGHTS[scale]
        assert params["loss_scale"] == scale
        assert (params["content_weight"], params["style_weight"], params["tv_weight"]) == weights
        assert params["model_source_sha256"] == read_model_info(model).source_sha256
    result = _stylize_cli(vgg19_onnx, files, tmp_path / "explicit.png", "--loss-scale", "reference")
    assert result.output.splitlines()[1].startswith("loss scale reference: content 5, style 500, TV 100; model ")
    quiet = _stylize_cli(vgg19_onnx, files, tmp_path / "quiet.png", "-q")
    assert quiet.exit_code == 0 and "loss scale" not in quiet.output  # -q: the PNG still records it


def test_a_state_holds_the_resolved_scale_and_resumes_under_auto(vgg19_onnx, files, tmp_path):
    from nst.runtime.state import load_state

    whole, out = tmp_path / "whole.png", tmp_path / "out.png"
    assert _stylize_cli(vgg19_onnx, files, whole, "--iterations", "4").exit_code == 0
    assert _stylize_cli(vgg19_onnx, files, out, "--iterations", "4", "--checkpoint-iterations", "2").exit_code == 0
    state = tmp_path / "out.0002.state"
    assert load_state(state).config["loss_scale"] == "balanced"
    for extra in ((), ("--loss-scale", "auto"), ("--loss-scale", "balanced")):  # all the same run
        result = _stylize_cli(vgg19_onnx, files, out, "--iterations", "4", "--resume", str(state), "--overwrite",
                              *extra)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == whole.read_bytes()
    result = _stylize_cli(vgg19_onnx, files, out, "--iterations", "4", "--resume", str(state), "--overwrite",
                          "--loss-scale", "reference")  # fmt: skip
    assert result.exit_code == 1
    assert (
        result.output
        == "Error: the state comes from a run with other settings (--loss-scale); leave them as they were\n"
    )


def test_batch_names_manifest_and_outputs_have_the_resolved_scale(vgg19_onnx, files, tmp_path):
    """auto is settled once the model is known, before the outputs are named: a name's fields,
    the manifest's options and the PNG all give the scale and weights used."""
    from nst.batch import MANIFEST, stylize_batch
    from nst.runtime.config import DEFAULT_WEIGHTS

    results = stylize_batch([files[0]], styles=[files[1]], outdir=tmp_path / "out", model=vgg19_onnx,
                            config=StylizeConfig(size=0, iterations=2, seed=0),
                            name="{content}-{loss-scale}-{style-weight}.png")  # fmt: skip
    assert [(r.status, r.output.name) for r in results] == [
        ("ok", f"content-balanced-{DEFAULT_WEIGHTS['balanced'][1]:g}.png")
    ]
    with Image.open(results[0].output) as image:
        params = json.loads(image.text["nst:parameters"])
    options = json.loads((tmp_path / "out" / MANIFEST).read_text().splitlines()[-1])["options"]
    for recorded in (params, options):
        assert recorded["loss_scale"] == "balanced"
        weights = (recorded["content_weight"], recorded["style_weight"], recorded["tv_weight"])
        assert weights == DEFAULT_WEIGHTS["balanced"]


def _registry_pth(make_mat, path, layout: str):
    """The random VGG-19 as a torchvision-keyed .pth in `layout`'s input convention."""
    import torch

    from nst.models.convention import TORCHVISION
    from nst.models.layers import layer_table
    from nst.models.matconvnet import read_matconvnet

    vgg = read_matconvnet(make_mat())
    state = {}
    for index, layer in enumerate(layer_table("vgg19")):
        if layer.kind == "conv":
            kernel, bias = vgg.convs[layer.name]
            if layer.name == "conv1_1":  # the input convention, as the real files have it
                scale = (255.0 * np.asarray(TORCHVISION.std, np.float32))[None, :, None, None]
                kernel = kernel * scale if layout == "torchvision" else kernel[:, ::-1]
            state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel, np.float32))
            state[f"features.{index}.bias"] = torch.from_numpy(bias.copy())
    torch.save(state, path)
    return path


@pytest.mark.parametrize("name", ["vgg19-torchvision", "vgg19-caffe"])
def test_a_registry_pytorch_vgg19_is_balanced(make_mat, tmp_path, monkeypatch, name):
    """A .pth export records the .pth's own SHA-256; even when the registry knows that file as
    one of its PyTorch VGG-19s, auto is balanced: reference is for MatConvNet's files only."""
    from nst.export.save import export_vgg_file
    from nst.fileio import file_sha256

    pth = _registry_pth(make_mat, tmp_path / f"{name}.pth", registry.WEIGHTS[name].layout)
    digest = file_sha256(pth)
    monkeypatch.setitem(registry.WEIGHTS, name, registry.WEIGHTS[name].replace(sha256_prefix=digest[:8]))
    info = export_vgg_file(pth, tmp_path / "pth.onnx")
    assert info.source_sha256 == digest and info.weights_layout == registry.WEIGHTS[name].layout
    session = Stylizer(info.path)
    assert session.model.info.source_sha256 == digest
    assert session.resolve().loss_scale == "balanced"
    _publish(monkeypatch)  # a MatConvNet file's hash published: not this one's
    assert session.resolve().loss_scale == "balanced"
