"""Atomic writes against faults from outside: the bytes are synced before the rename and the
folder after it, a name another process takes meanwhile is never replaced without
--overwrite, and a full disk is one line that names the file and leaves nothing behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from nst import fileio
from nst.errors import OutputError
from nst.fileio import atomic_path, check_writable


def test_the_file_and_its_folder_are_synced_around_the_rename(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    monkeypatch.setattr(fileio.os, "replace", replace)
    target = tmp_path / "out.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "rename", "fsync"], events
    assert Path(events[0][1]).name.startswith(".out.") and events[0][1].endswith(".part.bin")  # the bytes first
    assert events[2][1] == str(tmp_path)  # then the folder that holds the new name
    assert target.read_bytes() == b"whole"


def test_a_file_that_appears_meanwhile_is_never_replaced_without_overwrite(tmp_path, monkeypatch):
    """Another process writes the same name between this one's check and its rename: without
    --overwrite, its file stays and this write fails in one line."""
    target = tmp_path / "out.png"
    real_chmod = os.chmod

    def other_process_finishes(path, mode):
        target.write_bytes(b"the other run's image")
        return real_chmod(path, mode)

    monkeypatch.setattr(fileio.os, "chmod", other_process_finishes)
    with (
        pytest.raises(OutputError, match=r"out\.png exists; pass --overwrite to replace it"),
        atomic_path(target, overwrite=False) as tmp,
    ):
        tmp.write_bytes(b"this run's image")
    assert target.read_bytes() == b"the other run's image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path):
    before = tmp_path / "out.bin"
    before.write_bytes(b"an earlier run")
    with pytest.raises(OutputError) as info, atomic_path(before) as tmp:
        tmp.write_bytes(b"half")
        _full()
    assert str(info.value) == (
        f"cannot write {before}: the disk is full (ENOSPC); free some space or choose another output path"
    )
    assert before.read_bytes() == b"an earlier run"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_full_disk_at_the_sync_or_the_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.os, "fsync", _full)
    with pytest.raises(OutputError, match=r"the disk is full \(ENOSPC\)"), atomic_path(tmp_path / "o.bin") as tmp:
        tmp.write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(fileio.tempfile, "mkstemp", _full)
    with pytest.raises(OutputError) as info:
        check_writable(tmp_path / "o.png")
    assert str(info.value) == (
        f"cannot write in folder {tmp_path}: the disk is full (ENOSPC); free some space or choose another output path"
    )


@pytest.mark.slow
def test_two_runs_writing_the_same_output_leave_one_whole_file(vgg19_onnx, tmp_path):
    import json

    from odd_files import rgb
    from PIL import Image

    from processes import Nst

    content, style, out = (
        rgb(tmp_path / "c.png", 40, 32, seed=1),
        rgb(tmp_path / "s.png", 36, 36, seed=2),
        tmp_path / "o",
    )
    out.mkdir()
    args = ("stylize", content, style, "-m", vgg19_onnx, "-o", out / "same.png", "--size", "0", "--iterations", "3")
    runs = [Nst(*args, "--seed", seed, "--overwrite", "-q") for seed in ("1", "2")]
    assert [run.finish() for run in runs] == [0, 0], [run.output for run in runs]
    with Image.open(out / "same.png") as img:
        img.load()  # whole: every row decodes
        assert json.loads(img.text["nst:parameters"])["seed"] in (1, 2)
    assert sorted(p.name for p in out.iterdir()) == ["same.losses.csv", "same.png"]  # no temporaries left
