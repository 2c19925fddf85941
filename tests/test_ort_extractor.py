"""The onnxruntime extractor: outputs, parity with the mirror, providers, and models it rejects."""

from __future__ import annotations

import numpy as np
import pytest

from nst.errors import ConfigError, LayerError
from nst.models.layers import STYLE_LAYERS
from nst.runtime.ort_extractor import OrtExtractor, cuda_unavailable_reason, physical_cores, resolve_providers


@pytest.fixture(scope="module")
def extractor(vgg19_onnx) -> OrtExtractor:
    return OrtExtractor(vgg19_onnx, provider="cpu")


def _max_relative_error(a: dict, b: dict) -> float:
    """max over layers of max|a - b| / max|b|: the error relative to each Gram's scale."""
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in b)


def test_extractor_outputs_and_defaults(extractor):
    assert extractor.provider == "cpu"
    assert extractor.output_names[-5:] == tuple(f"gram_{n}" for n in STYLE_LAYERS)
    assert extractor.threads == physical_cores() >= 1
    assert extractor.session.get_session_options().intra_op_num_threads == physical_cores()
    batch = np.random.default_rng(0).uniform(0, 255, (2, 3, 20, 28)).astype(np.float32)
    out = extractor.run(batch, ["relu4_2", "gram_relu3_1"])
    assert list(out) == ["relu4_2", "gram_relu3_1"]
    assert out["relu4_2"].shape == (2, 512, 3, 4)  # ceil-mode pooling: 20 -> 10 -> 5 -> 3
    assert out["gram_relu3_1"].shape == (2, 256, 256)
    with pytest.raises(LayerError, match=r"has no output 'relu9_9'; it has relu1_1, relu2_1"):
        extractor.run(batch, ["relu9_9"])


def test_ort_grams_equal_mirror_grams(extractor, vgg19_onnx):
    import torch

    from nst.runtime.mirror import VGGMirror

    mirror = VGGMirror.from_onnx(vgg19_onnx)
    batch = np.random.default_rng(1).uniform(0, 255, (2, 3, 48, 40)).astype(np.float32)
    ort = extractor.run(batch, [f"gram_{n}" for n in STYLE_LAYERS])
    with torch.no_grad():
        torch_out = mirror(torch.from_numpy(batch), layers=STYLE_LAYERS, grams=STYLE_LAYERS)
    error = _max_relative_error(ort, {k: torch_out[k].numpy() for k in ort})
    print(f"ORT vs mirror Grams: max relative error {error:.2e}")
    assert error <= 1e-4


def test_auto_provider_is_silent_without_a_gpu(vgg19_onnx, capfd):
    if cuda_unavailable_reason() is None:
        pytest.skip("CUDA is usable here")
    assert resolve_providers("auto") == ["CPUExecutionProvider"]
    extractor = OrtExtractor(vgg19_onnx)  # auto
    assert extractor.provider == "cpu"
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # no provider-load errors printed


def test_provider_errors(vgg19_onnx):
    with pytest.raises(
        ConfigError, match=r"^unknown provider 'tpu'; choose one of auto, cpu, cuda, tensorrt, openvino$"
    ):
        OrtExtractor(vgg19_onnx, provider="tpu")
    if cuda_unavailable_reason() is not None:
        with pytest.raises(ConfigError, match=r"^provider cuda is not usable: .*; use --provider cpu \(or auto\)$"):
            OrtExtractor(vgg19_onnx, provider="cuda")


def test_model_that_onnxruntime_rejects(vgg19_onnx, tmp_path):
    import onnx

    from nst.errors import ModelError

    model = onnx.load(str(vgg19_onnx))
    next(node for node in model.graph.node if node.op_type == "Conv").input[1] = "no_such_tensor"
    onnx.save(model, str(tmp_path / "broken.onnx"))
    with pytest.raises(
        ModelError, match=r"^onnxruntime cannot open .*broken.onnx \(.*\); export it again with `nst export-vgg`$"
    ):
        OrtExtractor(tmp_path / "broken.onnx", provider="cpu")


@pytest.mark.cuda
def test_cuda_provider(vgg19_onnx):
    if cuda_unavailable_reason() is not None:
        pytest.skip(cuda_unavailable_reason())
    assert OrtExtractor(vgg19_onnx, provider="cuda").provider == "cuda"
