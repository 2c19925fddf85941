"""A full disk at each write nst makes: one line that says the disk is full (ENOSPC) and names
the file, no partial file left, and no file that was there before changed.

The disk is a 2 MiB tmpfs, filled up to a few KB, mounted for each test where this process
may mount one (root with CAP_SYS_ADMIN) and skipped elsewhere; the same errors are injected
as OSError(ENOSPC) in tests/test_fileio.py, tests/test_batch_race.py and below, which run
everywhere."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from odd_files import rgb
from PIL import Image

from nst.cli import main

from weights_server import fixture_weights, weights_home  # noqa: F401 (fixtures)

OLD_LINE = '{"output": "old.png", "status": "ok"}'
QUICK = "--size 0 --iterations 2 --seed 0 -q --no-log"
DISK_FULL = r"the disk is full \(ENOSPC\)"
# name, command, KB left free, files put on the disk before (name -> bytes), the error line
CASES = [
    ("output", f"stylize {{C}} {{S}} -m {{M}} -o {{DISK}}/out.png --overwrite {QUICK}", 0, {"out.png": b"earlier"},
     rf"Error: cannot write {{DISK}}/out\.png: {DISK_FULL}; free some space or choose another output path; "
     r"the image was saved to (\S+) instead"),
    ("checkpoint image", f"stylize {{C}} {{S}} -m {{M}} -o {{DISK}}/out.png --checkpoint-iterations 1 {QUICK}", 0, {},
     rf"Error: cannot write {{DISK}}/out\.0001\.png: {DISK_FULL}; free some space or choose another output path"),
    ("checkpoint state", f"stylize {{C}} {{S}} -m {{M}} -o {{DISK}}/out.png --checkpoint-iterations 1 {QUICK}", 64,
     {}, rf"Error: cannot write {{DISK}}/out\.0001\.state: {DISK_FULL}; free some space or choose another output path"),
    ("targets", "precompute-style {S} -m {M} -o {DISK}/s.targets --overwrite --size 32", 0, {"s.targets": b"earlier"},
     rf"Error: cannot write {{DISK}}/s\.targets: {DISK_FULL}; free some space or choose another output path"),
    ("export", "export-vgg {MAT} -o {DISK}/m.onnx", 0, {},
     rf"Error: cannot write {{DISK}}/m\.onnx: {DISK_FULL}; free some space or choose another output path"),
    ("manifest", f"stylize-batch {{C}} -s {{S}} -m {{M}} -o {{DISK}}/batch {QUICK}", 0,
     {"batch/manifest.jsonl": OLD_LINE.ljust(4095).encode() + b"\n"},  # a whole page: a new line needs another
     rf"Error: cannot write {{DISK}}/batch/manifest\.jsonl: {DISK_FULL}; free some space or choose another output path"),
    ("cache export", f"stylize {{C}} {{S}} --weights {{MAT}} -o {{O}}/out.png {QUICK}", 256, {},
     rf"Error: cannot write {{DISK}}/home/models/\w+-\w+\.onnx: {DISK_FULL}; free some space or choose another "
     r"output path"),
]  # fmt: skip


@pytest.fixture
def disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk, unmounted afterwards; skipped where it cannot be mounted."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or mounted.returncode})")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave_kb: int) -> None:
    stat = os.statvfs(folder)
    with open(folder / ".filler", "wb") as f:
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave_kb * 1024))


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.parent.name != "locks"  # the cache's lock files are empty and stay
    }


@pytest.mark.parametrize("name, command, leave, before, message", CASES, ids=[case[0] for case in CASES])
def test_a_full_disk_is_one_line(disk, tmp_path, vgg19_onnx, make_mat, monkeypatch, name, command, leave, before,
                                 message):  # fmt: skip
    files = {"C": rgb(tmp_path / "c.png", 40, 32, seed=1), "S": rgb(tmp_path / "s.png", 36, 36, seed=2),
             "M": vgg19_onnx, "MAT": make_mat(), "DISK": disk, "O": tmp_path}  # fmt: skip
    names = {key: str(value) for key, value in files.items()}
    monkeypatch.setenv("NST_HOME", str(disk / "home"))
    for path, data in before.items():
        (disk / path).parent.mkdir(parents=True, exist_ok=True)
        (disk / path).write_bytes(data)
    _fill(disk, leave)
    earlier = _files(disk)
    result = CliRunner().invoke(main, [arg.format(**names) for arg in shlex.split(command)])
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and [line for line in lines if line.startswith("Error:")] == lines[-1:]
    match = re.fullmatch(message.format(**{k: re.escape(v) for k, v in names.items()}), lines[-1])
    assert match, lines[-1]
    now = _files(disk)
    assert {k: now[k] for k in earlier if k in now} == earlier  # nothing that was there changed
    new = [k for k in now if k not in earlier and not k.startswith("home/")]
    if name == "checkpoint state":  # the checkpoint's image fitted, whole; its state did not
        assert new == ["out.0001.png"] and Image.open(disk / "out.0001.png").load() is not None
    else:
        assert new == []  # nothing half-written
    if match.groups():  # the finished image went to the temporary folder instead
        Path(match.group(1)).unlink()


def test_a_full_disk_during_the_download(disk, fixture_weights, monkeypatch):
    monkeypatch.setenv("NST_HOME", str(disk / "home"))
    _fill(disk, 256)
    result = CliRunner().invoke(main, ["download-weights"])
    part = disk / "home" / "weights" / "imagenet-vgg-verydeep-19.mat.part"
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: cannot download imagenet-vgg-verydeep-19.mat: the disk is full (ENOSPC) writing {part}; "
        f"the partial file was deleted. Free some space in {part.parent}, or set NST_HOME to a folder on another disk"
    )
    assert not part.exists() and not part.with_suffix("").exists()


def test_an_injected_full_disk_during_the_download(fixture_weights, monkeypatch):
    """The same without a tmpfs: the write of the downloaded bytes fails with ENOSPC."""
    import builtins

    real_open = builtins.open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def opening(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return Full(f) if str(file).endswith(".mat.part") and "b" in mode and "r" not in mode else f

    monkeypatch.setattr(builtins, "open", opening)
    result = CliRunner().invoke(main, ["download-weights"])
    part = fixture_weights.home / "weights" / "imagenet-vgg-verydeep-19.mat.part"
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        f"Error: cannot download imagenet-vgg-verydeep-19.mat: the disk is full (ENOSPC) writing {part}; "
    )
    assert not part.exists()
