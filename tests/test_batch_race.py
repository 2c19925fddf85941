"""Two batches on one output folder: no output is made twice, manifest.jsonl keeps whole lines,
claims are removed, and a claim left by a killed batch (or let go unmade) does not stop the
next one from making its output."""

from __future__ import annotations

import errno
import json
import os
import signal
import time

import pytest
from odd_files import rgb

import nst
from nst.batch import manifest as manifest_module
from nst.batch.claims import CLAIMS
from nst.batch.manifest import Manifest
from nst.errors import NSTWarning, OutputError
from nst.locks import Claim
from nst.runtime.config import StylizeConfig

from processes import NST, Nst

CONFIG = StylizeConfig(iterations=2, size=0, seed=0)

# nst, each output's run taking a second longer (T_SLOW), so that a second batch overlaps the first.
SLOW = (
    """
import os, time
from nst.batch.worker import Worker
run = Worker.run
def slow(self, *args, **kwargs):
    time.sleep(float(os.environ["T_SLOW"]))
    return run(self, *args, **kwargs)
Worker.run = slow
"""
    + NST
)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        rgb(folder / f"p{i}.png", 40, 32, seed=i)
    return folder, rgb(tmp_path / "style.png", 36, 36, seed=5)


def _lines(out) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_batches_at_once_make_each_output_once(photos, vgg19_onnx, tmp_path):
    folder, style = photos
    out = tmp_path / "out"
    args = ("stylize-batch", folder, "-s", style, "-o", out, "-m", vgg19_onnx, "--iterations", "2", "--size", "0",
            "--seed", "0", "-q", "--no-log")  # fmt: skip
    first = Nst(*args, env={"T_SLOW": "1.5"}, script=SLOW)
    try:
        deadline = time.monotonic() + 120
        while not list((out / CLAIMS).glob("*.claim")):  # the first batch has started an output
            assert time.monotonic() < deadline and first.process.poll() is None, first.output
            time.sleep(0.02)
        second = Nst(*args, env={"T_SLOW": "1.5"}, script=SLOW)
        assert second.finish() == 0, second.output
        assert first.finish() == 0, first.output
    finally:
        first.kill()
    made = [line for line in _lines(out) if line["status"] == "ok"]
    assert sorted(line["output"] for line in made) == [f"p{i}-style.png" for i in range(4)]  # each once
    assert len({line["worker"] for line in made}) == 2  # both batches made some
    assert "another nst process is making" in first.output + second.output
    assert not (out / CLAIMS).exists()


def test_claims_left_by_a_killed_batch_do_not_block(photos, vgg19_onnx, tmp_path):
    folder, style = photos
    out = tmp_path / "out"
    killed = Nst(
        script=f"""
import os, signal
from pathlib import Path
from nst.locks import Claim
for name in ("p0-style.png", "p1-style.png"):
    assert Claim(Path({str(out / CLAIMS)!r}) / (name + ".claim")).take()
os.kill(os.getpid(), signal.SIGKILL)
"""
    )
    assert killed.finish() == -signal.SIGKILL, killed.output
    assert len(list((out / CLAIMS).iterdir())) == 2
    results = nst.stylize_batch([folder], outdir=out, styles=[style], config=CONFIG, model=vgg19_onnx)
    assert [r.status for r in results] == ["ok"] * 4
    assert not (out / CLAIMS).exists()


def test_a_claim_let_go_unmade_is_made_after_waiting(photos, vgg19_onnx, tmp_path):
    """Another batch holds p1 for a while and stops without making it: this batch makes the
    others, says it waits, and then makes p1 too."""
    folder, style = photos
    out = tmp_path / "out"
    claim = Claim(out / CLAIMS / "p1-style.png.claim")
    assert claim.take()

    def let_go_after_the_last(event):
        if event.kind == "done" and event.index == 3:
            claim.release()

    with pytest.warns(NSTWarning, match=r"another nst process is making 1 output\(s\) in .*out; this batch waits"):
        results = nst.stylize_batch([folder], outdir=out, styles=[style], config=CONFIG, model=vgg19_onnx,
                                    callback=let_go_after_the_last)  # fmt: skip
    assert [r.status for r in results] == ["ok"] * 4
    assert [line["output"] for line in _lines(out)] == ["p0-style.png", "p2-style.png", "p3-style.png", "p1-style.png"]


def test_a_full_disk_never_leaves_half_a_manifest_line(tmp_path, monkeypatch):
    manifest = Manifest(tmp_path)
    manifest.append({"output": "a.png", "status": "ok"})
    before = (tmp_path / "manifest.jsonl").read_bytes()
    real_write = os.write

    def half(fd, data):  # what write(2) does on a disk that fills up part-way
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(manifest_module.os, "write", half)
    with pytest.raises(OutputError) as info:
        manifest.append({"output": "b.png", "status": "ok", "error": None})
    assert str(info.value) == (
        f"cannot write {tmp_path / 'manifest.jsonl'}: the disk is full (ENOSPC); "
        "free some space or choose another output path"
    )
    assert (tmp_path / "manifest.jsonl").read_bytes() == before

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manifest_module.os, "write", full)
    with pytest.raises(OutputError, match="the disk is full"):
        manifest.append({"output": "c.png", "status": "ok"})
    assert (tmp_path / "manifest.jsonl").read_bytes() == before
