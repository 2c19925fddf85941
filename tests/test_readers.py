"""Weights readers (nst.models.readers): .pth, .safetensors and ONNX classifiers export to the same
features as the equivalent MatConvNet .mat; detection, refusals and pickled code."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from click.testing import CliRunner

from nst.cli import main
from nst.errors import ConfigError, WeightsError
from nst.export.save import export_vgg_file
from nst.models import registry
from nst.models.convention import CAFFE, TORCHVISION
from nst.models.layers import layer_table
from nst.models.matconvnet import read_matconvnet
from nst.models.readers import read_weights
from nst.models.synthetic import write_synthetic_mat

TV_MEAN = tuple(255.0 * m for m in TORCHVISION.mean)  # the .mat twin of a torchvision file: exactly 255 * mean
CAFFE_RGB_MEAN = tuple(reversed(CAFFE.mean))


def _state_dict(mat: pathlib.Path, layout: str, *, classifier: str | None = None) -> dict[str, np.ndarray]:
    """The .mat's network as a torchvision-keyed state dict in `layout`'s convention: conv1_1
    scaled by 255 * std per input channel (torchvision) or its input channels reversed (caffe)."""
    vgg = read_matconvnet(mat)
    state = {}
    for index, layer in enumerate(layer_table(vgg.architecture)):
        if layer.kind != "conv":
            continue
        kernel, bias = vgg.convs[layer.name]
        if layer.name == "conv1_1":
            if layout == "torchvision":
                kernel = kernel * (255.0 * np.asarray(TORCHVISION.std, np.float32))[None, :, None, None]
            else:
                kernel = kernel[:, ::-1]
        state[f"features.{index}.weight"] = np.ascontiguousarray(kernel, np.float32)
        state[f"features.{index}.bias"] = bias
    for i in {"torchvision": (0, 3, 6), "caffe": (1, 4, 6)}.get(classifier or "", ()):
        state[f"classifier.{i}.weight"] = np.zeros((4, 2), np.float32)  # small fake shapes: skipped
        state[f"classifier.{i}.bias"] = np.zeros(4, np.float32)
    return state


def _save_pth(state: dict[str, np.ndarray], path: pathlib.Path, **kwargs) -> pathlib.Path:
    import torch

    torch.save({k: torch.from_numpy(v.copy()) for k, v in state.items()}, path, **kwargs)
    return path


def _features(model: pathlib.Path, image: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": image})))


def _assert_same_features(a: pathlib.Path, b: pathlib.Path) -> None:
    image = np.random.default_rng(3).uniform(0, 255, (1, 3, 32, 40)).astype(np.float32)
    fa, fb = _features(a, image), _features(b, image)
    assert fa.keys() == fb.keys()
    for name in fa:
        error = np.abs(fa[name] - fb[name]).max() / np.abs(fa[name]).max()
        assert error < 1e-4, (name, error)


@pytest.fixture(scope="module")
def mats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mats")
    return {
        "torchvision": write_synthetic_mat(folder / "tv.mat", "vgg19", seed=5, fc="none", mean_pixel=TV_MEAN),
        "caffe": write_synthetic_mat(folder / "caffe.mat", "vgg16", seed=6, fc="none", mean_pixel=CAFFE_RGB_MEAN),
    }


@pytest.fixture(scope="module")
def mat_models(mats, tmp_path_factory):
    """Each .mat's export: what the other formats' exports must match."""
    folder = tmp_path_factory.mktemp("mat-models")
    return {name: export_vgg_file(mat, folder / f"{name}.onnx").path for name, mat in mats.items()}


def test_torchvision_pth_exports_the_features_of_its_mat(mats, mat_models, tmp_path):
    pth = _save_pth(_state_dict(mats["torchvision"], "torchvision", classifier="torchvision"), tmp_path / "tv.pth")
    info = export_vgg_file(pth, tmp_path / "pth.onnx", _config(weights_layout="torchvision"))
    _assert_same_features(mat_models["torchvision"], tmp_path / "pth.onnx")
    assert (info.architecture, info.weights_format, info.weights_layout, info.layout_source) == (
        "vgg19",
        "pth",
        "torchvision",
        "option",
    )
    np.testing.assert_allclose(info.mean_pixel, TV_MEAN, rtol=1e-6)


def test_caffe_pth_is_detected_by_its_classifier_keys_and_matches_its_mat(mats, mat_models, tmp_path):
    pth = _save_pth(_state_dict(mats["caffe"], "caffe", classifier="caffe"), tmp_path / "vgg16-caffe.pth")
    info = export_vgg_file(pth, tmp_path / "pth.onnx", _config())
    _assert_same_features(mat_models["caffe"], tmp_path / "pth.onnx")
    assert (info.architecture, info.weights_layout, info.layout_source) == ("vgg16", "caffe", "keys")


def test_legacy_pth_and_checkpoint_wrapping_are_read(mats, tmp_path):
    import torch

    state = _state_dict(mats["caffe"], "caffe")
    legacy = _save_pth(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    wrapped = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {k: torch.from_numpy(v.copy()) for k, v in state.items()}}, wrapped)
    a = read_weights(legacy, layout="caffe")
    b = read_weights(wrapped, layout="caffe")
    for name, (kernel, bias) in a.convs.items():
        np.testing.assert_array_equal(kernel, b.convs[name][0])
        np.testing.assert_array_equal(bias, b.convs[name][1])


def test_safetensors_matches_its_mat(mats, mat_models, tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy")
    state = _state_dict(mats["torchvision"], "torchvision")
    state = {f"module.{k}": v.astype(np.float16) if k.endswith("bias") else v for k, v in state.items()}
    safetensors.save_file(state, str(tmp_path / "tv.safetensors"), metadata={"format": "pt"})
    info = export_vgg_file(tmp_path / "tv.safetensors", tmp_path / "st.onnx", _config(weights_layout="torchvision"))
    assert info.weights_format == "safetensors"
    # The fp16 biases round by up to 2^-11 relative; the features follow within 1e-3.
    image = np.random.default_rng(3).uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)
    fa, fb = _features(mat_models["torchvision"], image), _features(tmp_path / "st.onnx", image)
    for name in fa:
        assert np.abs(fa[name] - fb[name]).max() / np.abs(fa[name]).max() < 1e-3, name


def test_safetensors_bf16_is_widened_exactly(tmp_path):
    import json

    from nst.models.safetensors import load_safetensors

    values = np.array([1.5, -2.25, 3e-3], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")  # bfloat16: the top half of each float32
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    (tmp_path / "bf16.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
    loaded = load_safetensors(tmp_path / "bf16.safetensors")["x"]
    np.testing.assert_array_equal(loaded, (bits.astype(np.uint32) << 16).view(np.float32))
    assert np.abs(loaded - values).max() < 0.01


def _classifier_onnx(mat: pathlib.Path, layout: str, path: pathlib.Path, *, preprocess: bool) -> pathlib.Path:
    """A VGG classifier graph (convs, ReLUs, pools, a tiny Gemm) with the .mat's network in
    `layout`'s convention, optionally with Sub/Div preprocessing nodes in front."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    vgg = read_matconvnet(mat)
    state = _state_dict(mat, layout)
    convention = TORCHVISION if layout == "torchvision" else CAFFE
    nodes, inits, previous = [], [], "data"
    if preprocess:
        inits.append(numpy_helper.from_array(np.array(convention.mean, np.float32).reshape(1, 3, 1, 1), "mean"))
        inits.append(numpy_helper.from_array(np.array(convention.std, np.float32).reshape(1, 3, 1, 1), "std"))
        nodes += [
            helper.make_node("Sub", ["data", "mean"], ["centred"]),
            helper.make_node("Div", ["centred", "std"], ["x"]),
        ]
        previous = "x"
    for index, layer in enumerate(layer_table(vgg.architecture)):
        out = f"t{index}"
        if layer.kind == "conv":
            w, b = f"vgg0_conv{index}_weight", f"vgg0_conv{index}_bias"
            inits += [numpy_helper.from_array(state[f"features.{index}.weight"], w),
                      numpy_helper.from_array(state[f"features.{index}.bias"], b)]  # fmt: skip
            nodes.append(helper.make_node("Conv", [previous, w, b], [out], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        elif layer.kind == "relu":
            nodes.append(helper.make_node("Relu", [previous], [out]))
        else:
            nodes.append(helper.make_node("MaxPool", [previous], [out], kernel_shape=[2, 2], strides=[2, 2]))
        previous = out
    inits.append(numpy_helper.from_array(np.zeros((10, 4), np.float32), "fc_weight"))
    nodes += [
        helper.make_node("Flatten", [previous], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_weight"], ["prob"], transB=1),
    ]
    graph = helper.make_graph(nodes, "vgg", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 10])], initializer=inits)  # fmt: skip
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_onnx_classifier_preprocessing_is_detected_and_folded(mats, mat_models, tmp_path):
    graph = _classifier_onnx(mats["torchvision"], "torchvision", tmp_path / "vgg19.onnx", preprocess=True)
    info = export_vgg_file(graph, tmp_path / "from-onnx.onnx", _config())
    _assert_same_features(mat_models["torchvision"], tmp_path / "from-onnx.onnx")
    assert (info.weights_format, info.weights_layout, info.layout_source) == ("onnx", "onnx", "preprocessing")


def test_onnx_classifier_without_preprocessing_needs_the_option(mats, mat_models, tmp_path):
    graph = _classifier_onnx(mats["caffe"], "caffe", tmp_path / "vgg16.onnx", preprocess=False)
    with pytest.raises(WeightsError) as caught:
        read_weights(graph)
    assert str(caught.value) == (
        "vgg16.onnx has no preprocessing nodes that tell its input convention; pass --weights-layout torchvision "
        "(RGB, normalized by mean and std) or --weights-layout caffe (BGR 0-255)"
    )
    export_vgg_file(graph, tmp_path / "from-onnx.onnx", _config(weights_layout="caffe"))
    _assert_same_features(mat_models["caffe"], tmp_path / "from-onnx.onnx")


def test_pickled_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    import torch

    marker = tmp_path / "pwned.txt"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.write_text, (marker, "ran"))

    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": Payload()}, evil)
    torch.load(evil, weights_only=False)  # the control: loaded the unsafe way, the payload runs
    assert marker.read_text() == "ran"
    marker.unlink()
    with pytest.raises(WeightsError) as caught:
        read_weights(evil, layout="torchvision")
    assert not marker.exists()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{evil} holds pickled code (it calls ")
    assert message.endswith("which nst never runs; save the weights as a plain state dict "
                            "(torch.save(model.state_dict(), ...)) or as .safetensors, from a Python you trust")  # fmt: skip


def test_missing_and_misshaped_keys_are_named(mats, tmp_path):
    state = _state_dict(mats["caffe"], "caffe")
    missing = dict(state)
    del missing["features.17.bias"]
    with pytest.raises(WeightsError, match=r"has no features\.17\.bias \(conv4_1's bias\); it is not a whole VGG"):
        read_weights(_save_pth(missing, tmp_path / "missing.pth"), layout="caffe")
    wrong = {**state, "features.5.weight": state["features.5.weight"][:, :32]}
    with pytest.raises(WeightsError) as caught:
        read_weights(_save_pth(wrong, tmp_path / "wrong.pth"), layout="caffe")
    assert str(caught.value) == (
        f"{tmp_path / 'wrong.pth'}: features.5.weight (conv2_1's kernel) has shape (128, 32, 3, 3), "
        "expected (128, 64, 3, 3)"
    )


def test_undetectable_layout_is_refused_naming_the_option(mats, tmp_path):
    pth = _save_pth(_state_dict(mats["torchvision"], "torchvision", classifier="torchvision"), tmp_path / "my.pth")
    result = CliRunner().invoke(main, ["export-vgg", str(pth), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: cannot tell whether my.pth expects torchvision's or Caffe's input (its keys and shapes fit both, "
        "and its hash is not a known file's); pass --weights-layout torchvision (RGB, normalized by mean and std) "
        "or --weights-layout caffe (BGR 0-255)"
    ]
    assert not (tmp_path / "m.onnx").exists()


def test_known_hash_decides_and_the_summary_says_so(mats, tmp_path, monkeypatch):
    from nst.fileio import file_sha256

    pth = _save_pth(_state_dict(mats["torchvision"], "torchvision"), tmp_path / "vgg19-x.pth")
    entry = registry.WEIGHTS["vgg19-torchvision"].replace(sha256_prefix=file_sha256(pth)[:8])
    monkeypatch.setitem(registry.WEIGHTS, "vgg19-torchvision", entry)
    result = CliRunner().invoke(main, ["export-vgg", str(pth), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "exported vgg19 (from a .pth in torchvision's layout, known by its hash; max pooling; 7 layers + 5 grams:"
    )
    # The option still overrides what the hash says (and is reported as such).
    result = CliRunner().invoke(
        main, ["export-vgg", str(pth), "-o", str(tmp_path / "c.onnx"), "--weights-layout", "caffe"]
    )
    assert "in Caffe's layout, as --weights-layout says;" in result.output


def test_options_that_do_not_fit_the_format_are_refused(make_mat, mats, tmp_path):
    with pytest.raises(ConfigError, match=r"^--weights-layout is for \.pth, \.safetensors and \.onnx files"):
        read_weights(make_mat(), layout="caffe")
    pth = _save_pth(_state_dict(mats["caffe"], "caffe"), tmp_path / "c.pth")
    with pytest.raises(ConfigError, match=r"^--swap-kernel-axes reproduces neural-style's reading of \.mat files"):
        read_weights(pth, layout="caffe", swap_kernel_axes=True)
    with pytest.raises(WeightsError, match=r"^cannot tell the format of .*\.h5; nst reads \.mat, \.pth"):
        read_weights(tmp_path / "weights.h5")


def test_registry_pth_entries_download_against_their_hash_prefix(mats, tmp_path, monkeypatch):
    from nst.fileio import file_sha256
    from nst.models.cache import ensure_weights
    from nst.models.download import digest_matches

    from weights_server import WeightsServer

    pth = _save_pth(_state_dict(mats["caffe"], "caffe"), tmp_path / "vgg16-caffe.pth")
    prefix = file_sha256(pth)[:8]
    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))
    with WeightsServer({"vgg16-00b39a1b.pth": pth.read_bytes()}) as server:
        monkeypatch.setenv("NST_WEIGHTS_URL", server.url)
        good = registry.WEIGHTS["vgg16-caffe"].replace(sha256_prefix=prefix)
        monkeypatch.setitem(registry.WEIGHTS, "vgg16-caffe", good)
        path = ensure_weights("vgg16-caffe")
        assert read_weights(path).layout_source == "hash"
        path.unlink()
        bad = good.replace(sha256_prefix="0" * 8 if prefix != "0" * 8 else "1" * 8)
        monkeypatch.setitem(registry.WEIGHTS, "vgg16-caffe", bad)
        with pytest.raises(Exception, match="failed its check"):
            ensure_weights("vgg16-caffe")
    assert digest_matches("ab" * 32, "abababab") and not digest_matches("ab" * 32, "abab")


def _config(**options):
    from nst.export.onnx_graph import ExportConfig

    return ExportConfig(**options)


def test_stylize_takes_a_pth_through_weights_and_its_layout_option(mats, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))
    pth = _save_pth(_state_dict(mats["caffe"], "caffe"), tmp_path / "mine.pth")
    for name, size in (("content.png", (40, 32)), ("style.png", (32, 32))):
        Image.fromarray(np.random.default_rng(len(name)).integers(0, 256, (*size[::-1], 3), np.uint8)).save(
            tmp_path / name
        )
    argv = ["stylize", str(tmp_path / "content.png"), str(tmp_path / "style.png"), "-o", str(tmp_path / "out.png"),
            "--weights", str(pth), "--iterations", "2", "--size", "0", "--no-log", "-q"]  # fmt: skip
    refused = CliRunner().invoke(main, argv)
    assert refused.exit_code == 1 and "pass --weights-layout torchvision" in refused.output
    result = CliRunner().invoke(main, [*argv, "--weights-layout", "caffe"])
    assert result.exit_code == 0, result.output
    (model,) = (tmp_path / "home" / "models").glob("*.onnx")
    from nst.contract import read_model_info

    assert (read_model_info(model).weights_format, read_model_info(model).weights_layout) == ("pth", "caffe")


def test_check_model_builds_its_reference_from_the_pth_with_the_recorded_layout(mats, tmp_path):
    from nst.check import CheckConfig, check_model

    pth = _save_pth(_state_dict(mats["torchvision"], "torchvision"), tmp_path / "tv.pth")
    model = export_vgg_file(pth, tmp_path / "tv.onnx", _config(weights_layout="torchvision")).path
    report = check_model(model, config=CheckConfig(runtime="onnxruntime", weights=pth, size=(16, 20)))
    assert report.ok, report
    with pytest.raises(WeightsError, match=r"is not the file .* was exported from .*; pass that \.pth$"):
        check_model(model, config=CheckConfig(runtime="onnxruntime", weights=mats["torchvision"], size=(16, 20)))
