"""The PyTorch mirror: frozen weights named like the ONNX initializers, truncation, pooling,
checkpointing, and the models it refuses. (Its parity with onnxruntime is in test_export.)"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from nst.errors import LayerError, ModelError
from nst.models.layers import STYLE_LAYERS
from nst.runtime.device import cpu_has_bf16
from nst.runtime.mirror import VGGMirror

from reference_forward import max_rel_error


def _image(n=3, h=37, w=53, seed=0):
    return (np.random.default_rng(seed).random((n, 3, h, w)) * 255).astype(np.float32)


def test_mirror_is_frozen_and_named_like_onnx(vgg19_onnx):
    mirror = VGGMirror.from_onnx(vgg19_onnx)
    initializers = [t.name for t in onnx.load(str(vgg19_onnx)).graph.initializer if not t.name.startswith("gram.")]
    assert sorted(mirror.state_dict()) == sorted(initializers)
    assert not any(p.requires_grad for p in mirror.parameters())
    image = torch.from_numpy(_image(n=1, h=16, w=16)).requires_grad_(True)
    out = mirror(image, layers=["relu1_1"])
    assert list(out) == ["relu1_1"]  # stops at the deepest layer asked for
    out["relu1_1"].sum().backward()
    assert image.grad is not None and all(p.grad is None for p in mirror.parameters())


def test_mirror_rejects_layers_beyond_graph(make_onnx):
    mirror = VGGMirror.from_onnx(make_onnx(layers=("relu2_1",), grams=False))
    with pytest.raises(LayerError, match=r"layer relu3_1 is deeper than .* \(ends at relu2_1\)"):
        mirror(torch.zeros(1, 3, 8, 8), layers=["relu3_1"])


def test_mirror_rejects_foreign_onnx(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelError, match=r"is an ONNX model but not an nst extractor"):
        VGGMirror.from_onnx(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all \xff\xff")
    with pytest.raises(ModelError, match=r"cannot read .*junk\.onnx as an ONNX model"):
        VGGMirror.from_onnx(tmp_path / "junk.onnx")


@pytest.mark.cuda
def test_mirror_cuda_matches_cpu(vgg19_onnx):
    mirror = VGGMirror.from_onnx(vgg19_onnx)
    image = torch.from_numpy(_image(n=2, h=37, w=53))
    with torch.no_grad():
        cpu = mirror(image, grams=STYLE_LAYERS)
        gpu = mirror.to("cuda")(image.cuda(), grams=STYLE_LAYERS)
    for name, value in cpu.items():
        assert max_rel_error(gpu[name].cpu().numpy(), value.numpy().astype(np.float64)) <= 1e-3, name


def test_mirror_checkpoint_gives_same_gradient(vgg19_onnx):
    mirror = VGGMirror.from_onnx(vgg19_onnx)
    grads = []
    for checkpoint in (False, True):
        image = torch.from_numpy(_image(n=1, h=21, w=19)).requires_grad_(True)
        out = mirror(image, grams=STYLE_LAYERS, checkpoint=checkpoint)
        sum(v.square().mean() for v in out.values()).backward()
        grads.append(image.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_mirror_keeps_wanted_conv_output(vgg19_onnx):
    """The in-place ReLU must not overwrite a conv output that was asked for."""
    mirror = VGGMirror.from_onnx(vgg19_onnx)
    with torch.no_grad():
        out = mirror(torch.from_numpy(_image(n=1, h=12, w=12)), layers=["conv1_1", "relu1_1"])
    assert (out["conv1_1"] < 0).any()
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp(min=0))


def test_with_pooling_shares_the_weights_and_matches_an_avg_export(vgg19_onnx, make_onnx):
    mirror = VGGMirror.from_onnx(vgg19_onnx)
    switched = mirror.with_pooling("avg")
    assert mirror.with_pooling("max") is mirror and mirror.pools_like_file and not switched.pools_like_file
    assert switched.pooling == "avg" and mirror.pooling == "max"
    assert switched.conv1_1.weight.data_ptr() == mirror.conv1_1.weight.data_ptr()
    exported = VGGMirror.from_onnx(make_onnx(pooling="avg"))
    x = torch.from_numpy(_image(n=1, h=20, w=24))
    with torch.no_grad():
        a, b = switched(x, layers=STYLE_LAYERS), exported(x, layers=STYLE_LAYERS)
    for name in STYLE_LAYERS:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 matrix units (AMX or AVX512-BF16)")
def test_bf16_channels_last_features_stay_close_to_fp32(vgg19_onnx):
    """The CPU's bf16 path (autocast, channels-last) against float32 on every exported layer:
    bf16 keeps 8 bits of mantissa, so each layer is within a few percent of its own scale."""
    mirror = VGGMirror.from_onnx(vgg19_onnx)
    fast = VGGMirror.from_onnx(vgg19_onnx).to(memory_format=torch.channels_last)
    image = torch.from_numpy(_image(n=1, h=64, w=48))
    with torch.no_grad():
        want = mirror(image, grams=STYLE_LAYERS)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast(image.contiguous(memory_format=torch.channels_last), grams=STYLE_LAYERS)
    errors = {name: float((got[name].float() - value).abs().max() / value.abs().max()) for name, value in want.items()}
    print("bf16 vs fp32, max error relative to each output's scale:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) <= 0.03, errors
