"""The style-targets file: exact round trips, one clear error per bad file, model checks."""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nst.contract import read_model_info
from nst.errors import OutputError, TargetsError
from nst.models.layers import STYLE_LAYERS
from nst.runtime.config import PrecomputeConfig
from nst.runtime.grams import compute_style_targets
from nst.runtime.targets import (
    FORMAT_VERSION,
    MAGIC,
    StyleEntry,
    StyleSource,
    StyleTargets,
    load_targets,
    save_targets,
)

CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}


def _random_targets(seed: int = 0) -> StyleTargets:
    """Targets with random Grams (not symmetric: the file must not assume it)."""
    rng = np.random.default_rng(seed)
    sources = (StyleSource("a.png", "0" * 64), StyleSource("b é.jpg", "f" * 64))
    entries = tuple(
        StyleEntry(
            style=s,
            scale=scale,
            size=(10 + s, 20 + k),
            grams={name: rng.standard_normal((c, c), dtype=np.float32) for name, c in CHANNELS.items()},
        )
        for s in range(2)
        for k, scale in enumerate((1.0, 0.5))
    )
    return StyleTargets(
        weights_sha256="ab" * 32,
        architecture="vgg19",
        pooling="max",
        layers=STYLE_LAYERS,
        gram_normalization="G = F F^T / (C*H*W)",
        sources=sources,
        entries=entries,
        size=64,
        scales=(1.0, 0.5),
    )


def _assert_same(a: StyleTargets, b: StyleTargets) -> None:
    plain = [f.name for f in dataclasses.fields(StyleTargets) if f.name != "entries"]
    assert {n: getattr(a, n) for n in plain} == {n: getattr(b, n) for n in plain}
    assert len(a.entries) == len(b.entries)
    for x, y in zip(a.entries, b.entries):
        assert (x.style, x.scale, x.size) == (y.style, y.scale, y.size)
        assert x.grams.keys() == y.grams.keys()
        for name in x.grams:
            assert y.grams[name].dtype == np.float32
            assert np.array_equal(x.grams[name], y.grams[name])  # bit for bit


def test_round_trip_is_exact(tmp_path):
    targets = _random_targets()
    path = save_targets(targets, tmp_path / "style.targets")
    assert path == tmp_path / "style.targets" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.targets"]  # no .npz appended, no temp left
    loaded = load_targets(path)
    _assert_same(targets, loaded)
    assert [e.style for e in loaded.grams_for(1)] == [1, 1]


def test_computed_targets_round_trip(tmp_path, vgg19_onnx):
    from PIL import Image

    rng = np.random.default_rng(3)
    style = tmp_path / "s.png"
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(style)
    targets = compute_style_targets(vgg19_onnx, [style], config=PrecomputeConfig(size=40, style_scales=(1.0, 0.8)))
    loaded = load_targets(save_targets(targets, tmp_path / "s.targets"))
    _assert_same(targets, loaded)
    assert loaded.sources[0].name == "s.png"
    assert [e.size for e in loaded.entries] == [(24, 40), (19, 32)]
    loaded.check_targets(read_model_info(vgg19_onnx))


def test_save_refuses_to_overwrite_and_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "style.targets"
    save_targets(_random_targets(0), path)
    with pytest.raises(OutputError, match=r"exists; pass --overwrite to replace it$"):
        save_targets(_random_targets(1), path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OutputError, match=r"^cannot write .*style.targets \(disk full\); choose another output path$"):
        save_targets(_random_targets(1), path, overwrite=True)
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.targets"]


# ---------------------------------------------------------------- bad files, each its own error


def _recompute(path: Path) -> str:
    return f"compute them again with `nst precompute-style STYLE... -m MODEL.onnx -o {path}`"


def _write_npz(path: Path, meta: dict | None, arrays: dict[str, np.ndarray]) -> Path:
    if meta is not None:
        arrays = {"metadata": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _valid_meta_and_arrays() -> tuple[dict, dict[str, np.ndarray]]:
    meta = {
        "magic": MAGIC,
        "format": FORMAT_VERSION,
        "weights_sha256": "ab" * 32,
        "architecture": "vgg19",
        "pooling": "max",
        "layers": ["relu1_1", "relu2_1"],
        "gram_normalization": "G = F F^T / (C*H*W)",
        "size": 32,
        "width": None,
        "scales": [1.0],
        "sources": [{"name": "a.png", "sha256": "0" * 64}],
        "entries": [{"key": "entry0", "style": 0, "scale": 1.0, "size": [32, 32]}],
    }
    arrays = {"entry0/relu1_1": np.eye(64, dtype=np.float32), "entry0/relu2_1": np.eye(128, dtype=np.float32)}
    return meta, arrays


def test_hand_written_valid_file_loads(tmp_path):
    meta, arrays = _valid_meta_and_arrays()
    targets = load_targets(_write_npz(tmp_path / "ok.targets", meta, arrays))
    assert targets.layers == ("relu1_1", "relu2_1") and targets.entries[0].size == (32, 32)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.targets"
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value) == (
        f"style-targets file not found: {path}; create it with `nst precompute-style STYLE... -m MODEL.onnx -o {path}`"
    )


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n", b"\x89PNG\r\n\x1a\n0000"])
def test_not_a_targets_file(tmp_path, content):
    path = tmp_path / "x.targets"
    path.write_bytes(content)
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value) == f"{path} is not a style-targets file; create one with `nst precompute-style`"


def test_npz_without_nst_metadata(tmp_path):
    path = _write_npz(tmp_path / "weights.npz", None, {"w": np.zeros(3, np.float32)})
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value) == (
        f"{path} is not a style-targets file (no nst metadata); create one with `nst precompute-style`"
    )


def test_npz_with_foreign_metadata(tmp_path):
    meta, arrays = _valid_meta_and_arrays()
    path = _write_npz(tmp_path / "other.npz", {**meta, "magic": "something else"}, arrays)
    with pytest.raises(TargetsError, match=re.escape("is not a style-targets file (no nst metadata)")):
        load_targets(path)


def test_truncated_file(tmp_path):
    path = save_targets(_random_targets(), tmp_path / "t.targets")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    message = str(err.value)
    assert message.startswith(f"{path} is truncated or corrupt (")
    assert message.endswith(f"); {_recompute(path)}")


def test_corrupt_bytes_fail_the_checksum(tmp_path):
    path = save_targets(_random_targets(), tmp_path / "c.targets")
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("entry1/relu5_1.npy")
    # Past the zip member's local header (30 bytes + name) and the .npy header (128 bytes).
    start = member.header_offset + 30 + len(member.filename) + 128 + 1000
    data = bytearray(path.read_bytes())
    data[start : start + 8] = bytes(255 - b for b in data[start : start + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value).startswith(f"{path} is truncated or corrupt (")
    assert "CRC" in str(err.value)


def test_missing_layer(tmp_path):
    meta, arrays = _valid_meta_and_arrays()
    del arrays["entry0/relu2_1"]
    path = _write_npz(tmp_path / "m.targets", meta, arrays)
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value) == f"{path} has no Gram for layer relu2_1 (entry entry0); {_recompute(path)}"


def test_wrong_gram_shape(tmp_path):
    meta, arrays = _valid_meta_and_arrays()
    arrays["entry0/relu2_1"] = np.zeros((128, 3), np.float32)
    path = _write_npz(tmp_path / "s.targets", meta, arrays)
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value) == (
        f"{path}: Gram entry0/relu2_1 is float32 (128, 3), not a square float32 matrix; {_recompute(path)}"
    )


def test_unsupported_version(tmp_path):
    meta, arrays = _valid_meta_and_arrays()
    path = _write_npz(tmp_path / "v.targets", {**meta, "format": 2}, arrays)
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value) == (
        f"{path} has style-targets format 2, this nst reads format {FORMAT_VERSION}; {_recompute(path)}"
    )


def test_incomplete_metadata(tmp_path):
    meta, arrays = _valid_meta_and_arrays()
    del meta["sources"]
    path = _write_npz(tmp_path / "i.targets", meta, arrays)
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value) == f"{path}: style-targets metadata is incomplete (KeyError('sources')); {_recompute(path)}"


def test_pickles_are_never_loaded(tmp_path, monkeypatch):
    import pickle

    meta, arrays = _valid_meta_and_arrays()
    arrays["entry0/relu1_1"] = np.array([{"evil": 1}], dtype=object)  # np.savez pickles object arrays
    path = _write_npz(tmp_path / "p.targets", meta, arrays)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("a pickle was loaded"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert str(err.value) == f"{path} holds pickled objects, which nst never loads; {_recompute(path)}"


# ---------------------------------------------------------------- check_targets


@pytest.fixture(scope="module")
def computed(vgg19_onnx, tmp_path_factory):
    from PIL import Image

    style = tmp_path_factory.mktemp("style") / "style.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(style)
    return compute_style_targets(vgg19_onnx, [style], config=PrecomputeConfig(size=20))


def _info(path):
    return read_model_info(path)


def test_check_model_accepts_the_same_model(computed, vgg19_onnx):
    computed.check_targets(_info(vgg19_onnx))


def test_check_model_refuses_another_models_targets(computed, make_onnx):
    other = _info(make_onnx(seed=1))
    with pytest.raises(TargetsError) as err:
        computed.check_targets(other)
    assert str(err.value) == (
        f"the style targets were computed with model weights {computed.weights_sha256[:12]}, "
        f"but {other.path} has weights {other.weights_sha256[:12]}; "
        f"compute them again with `nst precompute-style STYLE... -m {other.path}`"
    )
    assert computed.weights_sha256[:12] != other.weights_sha256[:12]


def test_check_model_refuses_other_pooling(computed, make_onnx):
    avg = _info(make_onnx(pooling="avg"))
    assert avg.weights_sha256 == computed.weights_sha256  # same weights: only the pooling tells them apart
    with pytest.raises(TargetsError) as err:
        computed.check_targets(avg)
    assert str(err.value) == (
        f"the style targets were computed with max pooling, but {avg.path} uses avg pooling; "
        f"compute them again with `nst precompute-style STYLE... -m {avg.path}`"
    )


def test_check_model_refuses_missing_layers(computed, vgg19_onnx):
    info = _info(vgg19_onnx)
    partial = dataclasses.replace(computed, layers=("relu1_1", "relu2_1"))
    with pytest.raises(TargetsError) as err:
        partial.check_targets(info)
    assert str(err.value) == (
        "the style targets have no Grams for relu3_1, relu4_1, relu5_1 (they have relu1_1, relu2_1); "
        f"compute them again with `nst precompute-style STYLE... -m {info.path}`"
    )
    partial.check_targets(info, layers=("relu1_1",))  # enough when stylize uses only those
