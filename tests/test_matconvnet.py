"""The MatConvNet reader: both file versions, both architectures, and every bad-file error."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from nst.errors import WeightsError
from nst.models.layers import conv_layers
from nst.models.matconvnet import read_matconvnet
from nst.models.synthetic import MEAN_PIXEL


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
@pytest.mark.parametrize("version", ["old", "new"])
def test_reads_both_versions(make_mat, arch, version):
    weights = read_matconvnet(make_mat(arch, version))
    assert weights.architecture == arch
    assert list(weights.convs) == [layer.name for layer in conv_layers(arch)]
    for layer in conv_layers(arch):
        kernel, bias = weights.convs[layer.name]
        assert kernel.shape == (layer.out_channels, layer.in_channels, 3, 3)
        assert bias.shape == (layer.out_channels,)
        assert kernel.dtype == bias.dtype == np.float32
    np.testing.assert_allclose(weights.mean_pixel, MEAN_PIXEL, rtol=1e-6)
    assert len(weights.source_sha256) == 64


def test_versions_give_identical_weights(make_mat):
    old, new = read_matconvnet(make_mat(version="old")), read_matconvnet(make_mat(version="new"))
    for name in old.convs:
        np.testing.assert_array_equal(old.convs[name][0], new.convs[name][0])
        np.testing.assert_array_equal(old.convs[name][1], new.convs[name][1])


def test_kernel_axes_follow_matconvnet(make_mat):
    """A loaded (H, W, in, out) kernel becomes (out, in, H, W) with no spatial swap."""
    path = make_mat()
    raw = scipy.io.loadmat(str(path))["layers"][0][2][0][0]  # conv1_2, read positionally on purpose
    assert str(raw["name"][0]) == "conv1_2"
    kernel = raw["weights"][0][0]
    weights = read_matconvnet(path)
    np.testing.assert_array_equal(weights.convs["conv1_2"][0][5, 7], kernel[:, :, 7, 5])
    swapped = read_matconvnet(path, swap_kernel_axes=True)
    np.testing.assert_array_equal(swapped.convs["conv1_2"][0][5, 7], kernel[:, :, 7, 5].T)
    assert swapped.kernel_axes == "wh" and weights.kernel_axes == "hw"


def test_fc_layers_not_needed(make_mat):
    weights = read_matconvnet(make_mat(fc="none"))
    assert weights.architecture == "vgg19" and len(weights.convs) == 16


# --- bad files -------------------------------------------------------------------------------


def _rewrite(src, dst, edit):
    """Load a synthetic .mat, let `edit` change the dict, save it again."""
    data = {k: v for k, v in scipy.io.loadmat(str(src)).items() if not k.startswith("__")}
    edit(data)
    scipy.io.savemat(str(dst), data)
    return dst


def _layer(data, name):
    for cell in data["layers"][0]:
        if str(cell[0][0]["name"][0]) == name:
            return cell[0][0]
    raise KeyError(name)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match=r"^weights file not found: .*nope\.mat$"):
        read_matconvnet(tmp_path / "nope.mat")


def test_not_a_mat_file(tmp_path):
    path = tmp_path / "photo.mat"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(
        WeightsError, match=r"cannot read .*photo\.mat as a MatConvNet \.mat file \(not a \.mat, or truncated"
    ):
        read_matconvnet(path)


def test_truncated_file(make_mat, tmp_path):
    data = make_mat().read_bytes()
    path = tmp_path / "cut.mat"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"cannot read .*cut\.mat .*download it again"):
        read_matconvnet(path)


def test_no_layers(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(str(path), {"net": np.zeros((2, 2))})
    with pytest.raises(WeightsError, match=r"has no 'layers' variable.*\(variables found: net\)"):
        read_matconvnet(path)


def test_unknown_architecture(make_mat, tmp_path):
    def drop_conv5(data):
        keep = [c for c in data["layers"][0] if not str(c[0][0]["name"][0]).startswith("conv5")]
        cells = np.empty((1, len(keep)), dtype=object)
        for i, c in enumerate(keep):
            cells[0, i] = c
        data["layers"] = cells

    path = _rewrite(make_mat(), tmp_path / "vgg11.mat", drop_conv5)
    with pytest.raises(
        WeightsError,
        match=r"unknown architecture; its conv layers are conv1_1, .*conv4_4, which match neither vgg16 nor vgg19",
    ):
        read_matconvnet(path)


def test_kernel_shape_mismatch(make_mat, tmp_path):
    def shrink(data):
        rec = _layer(data, "conv3_2")
        rec["weights"][0][0] = rec["weights"][0][0][:, :, :128, :]

    path = _rewrite(make_mat(), tmp_path / "bad.mat", shrink)
    with pytest.raises(
        WeightsError, match=r"layer conv3_2 kernel has shape \(3, 3, 128, 256\), expected \(3, 3, 256, 256\)"
    ):
        read_matconvnet(path)


def test_bias_shape_mismatch(make_mat, tmp_path):
    def shrink(data):
        rec = _layer(data, "conv2_1")
        rec["weights"][0][1] = rec["weights"][0][1][:64]

    path = _rewrite(make_mat(), tmp_path / "bad.mat", shrink)
    with pytest.raises(WeightsError, match=r"layer conv2_1 bias has shape \(64, 1\), expected \(128,\)"):
        read_matconvnet(path)


@pytest.mark.parametrize("version", ["old", "new"])
def test_no_mean_pixel(make_mat, tmp_path, version):
    def drop(data):
        data.pop("normalization", None)
        data.pop("meta", None)

    path = _rewrite(make_mat(version=version), tmp_path / "nomean.mat", drop)
    with pytest.raises(WeightsError, match=r"no mean pixel \(normalization\.averageImage"):
        read_matconvnet(path)
