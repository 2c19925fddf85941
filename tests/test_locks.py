"""Locks between nst processes: a lock held too long is one line, a holder that makes progress
is waited for, and two first runs at once on an empty cache download and export once."""

from __future__ import annotations

import re
import threading
import time

import pytest
from click.testing import CliRunner
from PIL import Image

from nst.cli import main
from nst.errors import ConfigError, LockError
from nst.locks import Claim, waiting_lock

from processes import Nst
from weights_server import fixture_weights, weights_home  # noqa: F401 (fixtures)


def _hold(path, seconds: float, grow=None) -> threading.Thread:
    """Another holder of the lock at `path` for `seconds` (appending to `grow` as it works)."""
    taken = threading.Event()

    def run() -> None:
        with waiting_lock(path, what="testing"):
            taken.set()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if grow is not None:
                    with open(grow, "ab") as f:
                        f.write(b"x")
                time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert taken.wait(10)
    return thread


def test_a_lock_held_without_progress_is_one_line(tmp_path):
    lock = tmp_path / "locks" / "x.lock"
    holder = _hold(lock, 3)
    heard: list[str] = []
    start = time.monotonic()
    with pytest.raises(LockError) as info, waiting_lock(lock, what="downloading x", notify=heard.append, timeout=0.5):
        pass
    assert time.monotonic() - start < 2.5
    assert heard == [f"waiting for another nst process that is downloading x (lock {lock})"]
    assert str(info.value) == (
        f"another nst process has been downloading x for 0.5 s without progress (lock {lock}); "
        "wait for it to finish or stop it, or set NST_LOCK_TIMEOUT=SECONDS to wait longer"
    )
    holder.join()


def test_a_holder_that_makes_progress_is_waited_for(tmp_path):
    lock, part = tmp_path / "x.lock", tmp_path / "x.part"
    start = time.monotonic()
    holder = _hold(lock, 1.5, grow=part)
    with waiting_lock(lock, what="downloading x", progress=lambda: part.exists() and part.stat().st_size, timeout=0.6):
        assert time.monotonic() - start >= 1.4  # the holder finished; its 1.5 s were not too long
    holder.join()


def test_a_claim_is_taken_once_and_its_file_goes_with_it(tmp_path):
    first, second = Claim(tmp_path / "a.claim"), Claim(tmp_path / "a.claim")
    assert first.take()
    assert not second.take()
    first.release()
    assert not (tmp_path / "a.claim").exists()
    assert second.take()
    second.release()


def test_nst_lock_timeout_must_be_seconds(monkeypatch, tmp_path, weights_home):
    monkeypatch.setenv("NST_LOCK_TIMEOUT", "soon")
    with waiting_lock(tmp_path / "free.lock", what="x"):  # a free lock does not read it
        pass
    holder = _hold(tmp_path / "held.lock", 1)
    with (
        pytest.raises(ConfigError, match=r"NST_LOCK_TIMEOUT='soon' must be a number of seconds above 0"),
        waiting_lock(tmp_path / "held.lock", what="x"),
    ):
        pass
    holder.join()


def test_download_weights_while_another_process_holds_the_lock(fixture_weights, monkeypatch):
    from nst.models.cache import lock_path

    monkeypatch.setenv("NST_LOCK_TIMEOUT", "0.5")
    lock = lock_path("weights-imagenet-vgg-verydeep-19.mat")
    holder = _hold(lock, 3)
    result = CliRunner().invoke(main, ["download-weights"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"waiting for another nst process that is downloading the vgg19 weights (lock {lock})",
        f"Error: another nst process has been downloading the vgg19 weights for 0.5 s without progress "
        f"(lock {lock}); wait for it to finish or stop it, or set NST_LOCK_TIMEOUT=SECONDS to wait longer",
    ]
    assert fixture_weights.server.requests == []
    holder.join()


@pytest.mark.slow
def test_two_first_runs_at_once_download_and_export_once(fixture_weights, tmp_path):
    """Two `nst stylize` on an empty cache: the second waits on the first's download (held
    open by the server until the second says it waits), then on its export, then uses it."""
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.new("RGB", (40, 32), (200, 40, 90)).save(content)
    Image.new("RGB", (36, 36), (20, 140, 220)).save(style)
    env = {
        "NST_HOME": str(fixture_weights.home),
        "NST_WEIGHTS_URL": fixture_weights.server.url,
        "T_SHA256": fixture_weights.sha256,
        "T_SIZE": str(fixture_weights.mat.stat().st_size),
    }
    fixture_weights.server.gate = gate = threading.Event()
    args = (content, style, "--size", "0", "--iterations", "2", "--seed", "1", "-q", "--no-log")
    first = Nst("stylize", *args, "-o", tmp_path / "a.png", env=env)
    try:
        first.wait_for("downloading vgg19 weights")
        second = Nst("stylize", *args, "-o", tmp_path / "b.png", env=env)
        try:
            second.wait_for("waiting for another nst process that is downloading the vgg19 weights", timeout=60)
            gate.set()
            assert first.finish() == 0, first.output
            assert second.finish() == 0, second.output
        finally:
            second.kill()
    finally:
        gate.set()
        first.kill()
    both = first.output + "\n" + second.output
    assert len(fixture_weights.server.requests) == 1
    assert len(re.findall(r"downloading vgg19 weights \(", both)) == 1
    assert len(re.findall(r"exporting \S+ to \S+ \(once", both)) == 1
    assert "waiting for another nst process that is exporting" in second.output
    models = list((fixture_weights.home / "models").glob("*.onnx"))
    assert len(models) == 1
    assert f"using cached model {models[0]}" in second.output
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
