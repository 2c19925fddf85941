"""The ONNX contract module: the Gram normalization (numpy and torch alike) and the metadata
that an export writes and every reader parses."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch

from nst.contract import FORMAT_VERSION, ModelInfo, gram, model_info, read_model_info, write_metadata
from nst.errors import ModelError


def test_gram_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # C=2, H=1, W=2
    # F F^T = [[1+4, 3+8], [3+8, 9+16]], divided by C*H*W = 4
    assert torch.equal(gram(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)
    as_numpy = gram(f.numpy())
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    assert np.array_equal(as_numpy, gram(f).numpy())


def test_gram_numpy_and_torch_agree_on_real_shapes():
    features = np.random.default_rng(0).random((2, 64, 13, 17), dtype=np.float32) * 50
    a, b = gram(features), gram(torch.from_numpy(features)).numpy()
    assert a.shape == (2, 64, 64)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_metadata_round_trip(vgg19_onnx):
    info = read_model_info(vgg19_onnx)
    model = onnx.ModelProto()
    write_metadata(model, info)
    again = model_info(model, info.path)
    for field in dataclasses.fields(ModelInfo):
        a, b = getattr(info, field.name), getattr(again, field.name)
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b, field.name


def test_other_format_versions_are_refused(vgg19_onnx):
    info = read_model_info(vgg19_onnx)
    model = onnx.ModelProto()
    write_metadata(model, info)
    next(p for p in model.metadata_props if p.key == "nst.format").value = "99"
    with pytest.raises(ModelError, match=f"has nst format 99, this nst reads format {FORMAT_VERSION}; export it again"):
        model_info(model, "m.onnx")
