"""The onnxruntime extractor with deployment graphs and providers: a static graph's fixed
batch and size, fp16 input and outputs, and providers that are chosen, refused or fallen
back from without onnxruntime's own load errors reaching the terminal."""

from __future__ import annotations

import numpy as np
import pytest

import nst.runtime.ort_extractor as ort_extractor
from nst.errors import ConfigError
from nst.runtime.ort_extractor import PROVIDERS, OrtExtractor, provider_unavailable_reason, resolve_providers

SMALL = ("relu1_1", "relu2_1")


def _batch(n: int, h: int = 12, w: int = 14) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 3, h, w)).astype(np.float32)


def test_static_graph_takes_any_batch_at_its_size(make_onnx):
    dynamic = OrtExtractor(make_onnx(layers=SMALL), provider="cpu")
    static = OrtExtractor(make_onnx(layers=SMALL, static=(2, 12, 14)), provider="cpu")
    for n in (1, 2, 3, 5):  # padded to whole batches of 2, the padding's outputs dropped
        batch = _batch(n)
        a, b = dynamic.run(batch), static.run(batch)
        assert list(a) == list(b)
        for name in a:
            assert b[name].shape == a[name].shape
            np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-3)
    with pytest.raises(
        ConfigError,
        match=r"is a static 2x3x12x14 float32 deployment graph: it takes 12x14 images, not 16x16; export a dynamic "
        r"graph \(nst export-vgg WEIGHTS -o M.onnx\) or one with --static 2x16x16$",
    ):
        static.run(_batch(1, 16, 16))


def test_fp16_io_gives_float32(make_onnx):
    fp32 = OrtExtractor(make_onnx(layers=SMALL), provider="cpu").run(_batch(2))
    half = OrtExtractor(make_onnx(layers=SMALL, precision="fp16", io="fp16"), provider="cpu").run(_batch(2))
    for name, value in half.items():
        assert value.dtype == np.float32
        assert np.abs(value - fp32[name]).max() <= 5e-3 * np.abs(fp32[name]).max()


def test_every_provider_is_silent(make_onnx, capfd):
    """Whether each provider runs or is refused here, nothing is printed (onnxruntime prints
    load errors when a provider it tries cannot start; nst asks before it tries)."""
    path = make_onnx(layers=("relu1_1",))
    for provider in PROVIDERS:
        try:
            OrtExtractor(path, provider=provider).run(_batch(1))
        except ConfigError as exc:
            assert provider not in ("auto", "cpu")
            assert str(exc).startswith(f"provider {provider} ")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_named_provider_that_cannot_run_is_an_error():
    for provider in ("openvino", "tensorrt", "cuda"):
        reason = provider_unavailable_reason(provider)
        if reason is None:
            continue
        with pytest.raises(
            ConfigError, match=rf"^provider {provider} is not usable: .*; use --provider cpu \(or auto\)$"
        ):
            resolve_providers(provider)
    if provider_unavailable_reason("openvino") is not None:
        assert "pip install onnxruntime-openvino" in str(provider_unavailable_reason("openvino"))


def test_auto_falls_back_with_one_notice(monkeypatch):
    # A GPU that onnxruntime cannot use: one line.
    monkeypatch.setattr(ort_extractor, "cuda_unavailable_reason", lambda: "cuDNN 9 is missing")
    monkeypatch.setattr(ort_extractor, "_no_gpu_reason", lambda: None)
    notes: list[str] = []
    assert resolve_providers("auto", notify=notes.append) == ["CPUExecutionProvider"]
    assert notes == ["onnxruntime runs on the CPU: its CUDA provider is not usable (cuDNN 9 is missing)"]
    # No GPU on this machine: the CPU was always going to run it; nothing to say.
    monkeypatch.setattr(ort_extractor, "_no_gpu_reason", lambda: "the CUDA driver finds no GPU")
    notes.clear()
    assert resolve_providers("auto", notify=notes.append) == ["CPUExecutionProvider"] and notes == []
    # A usable GPU: CUDA first, no notice.
    monkeypatch.setattr(ort_extractor, "cuda_unavailable_reason", lambda: None)
    assert resolve_providers("auto", notify=notes.append) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert notes == []


def test_stylize_style_pass_gives_the_auto_notice_as_a_warning(monkeypatch, vgg19_onnx):
    """On a CUDA run whose onnxruntime cannot use the GPU, the style pass falls back to the CPU
    with one NSTWarning (the CLI prints it as one `warning:` line)."""
    import torch

    from nst.errors import NSTWarning
    from nst.runtime.stylize import Stylizer

    monkeypatch.setattr(ort_extractor, "cuda_unavailable_reason", lambda: "cuDNN 9 is missing")
    monkeypatch.setattr(ort_extractor, "_no_gpu_reason", lambda: None)
    session = Stylizer(vgg19_onnx)
    session.device = torch.device("cuda")  # as a CUDA run has it; only the provider choice reads it
    with pytest.warns(NSTWarning, match="its CUDA provider is not usable") as caught:
        extractor = session._open_extractor()
    assert extractor.provider == "cpu" and len(caught) == 1
