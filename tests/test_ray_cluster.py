"""stylize-batch on a real two-node Ray cluster: a `ray start --head` and a second
`ray start --address ...` on this machine (two raylets, one CPU each), joined through the GCS
address and through Ray Client (ray://). A worker process killed mid-task is retried and the
batch completes; a task whose worker is killed every time is recorded failed after --retries,
and the rest completes. Plus the addresses where nothing listens: one line, at once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from odd_files import rgb

import nst.batch
from nst.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    gcs: str  # 127.0.0.1:PORT
    client: str  # ray://127.0.0.1:PORT


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # A session of its own, so that teardown ends this node's processes (and theirs) and no other Ray.
    ray = Path(sys.executable).with_name("ray")
    with open(log, "w") as out:
        return subprocess.Popen([str(ray), "start", *args, "--block"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _wait_started(process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while "Ray runtime started" not in log.read_text():
        assert process.poll() is None and time.monotonic() < end, log.read_text()[-3000:]
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    # A short temporary folder of its own: Ray's socket paths must fit in 107 bytes, and
    # TMPDIR keeps this cluster's files (and its "current cluster" note) away from any other Ray here.
    temp = Path(tempfile.mkdtemp(prefix="nstray", dir="/tmp"))
    gcs, client = _free_port(), _free_port()
    env = {**os.environ, "TMPDIR": str(temp), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # fmt: skip
    small = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--object-store-memory=200000000"]
    nodes = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")  # the driver, this process, joins without a token too
        try:
            head = _ray_start([*small, "--head", f"--port={gcs}", f"--ray-client-server-port={client}",
                               f"--dashboard-port={_free_port()}", "--include-dashboard=false",
                               f"--temp-dir={temp}/ray"], env, temp / "head.log")  # fmt: skip
            nodes.append(head)
            _wait_started(head, temp / "head.log")
            second = _ray_start([*small, f"--address=127.0.0.1:{gcs}"], env, temp / "node.log")
            nodes.append(second)
            _wait_started(second, temp / "node.log")
            yield Cluster(f"127.0.0.1:{gcs}", f"ray://127.0.0.1:{client}")
        finally:
            for node in reversed(nodes):
                _stop(node)
            shutil.rmtree(temp, ignore_errors=True)


def _stop(node: subprocess.Popen) -> None:
    """End the node's process group: `ray start` and every process it started."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            return
        try:
            node.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)  # its children take a moment after it


@pytest.fixture
def batch(tmp_path, vgg19_onnx):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        rgb(photos / f"p{i}.png", 48, 40, seed=i)
    style = rgb(tmp_path / "style.png", 36, 36, seed=5)
    return ["stylize-batch", str(photos), "-s", str(style), "-o", str(tmp_path / "out"), "-m", str(vgg19_onnx),
            "--size", "0", "--iterations", "40", "--seed", "0", "-q", "--no-log"]  # fmt: skip


def _killing(monkeypatch, *, index: int, every_time: bool) -> list[int]:
    """Kill (SIGKILL) the Ray worker process that reports a step of job `index`: once, or at
    each attempt. Returns the pids killed."""
    killed: list[int] = []
    real = nst.batch.stylize_batch

    def with_killer(*args, callback=None, **kwargs):
        def on_event(event):
            if event.kind == "step" and event.index == index and (every_time or not killed):
                pid = int(event.worker.rsplit(":", 1)[1])
                if pid not in killed:
                    killed.append(pid)
                    os.kill(pid, signal.SIGKILL)
            if callback is not None:
                callback(event)

        return real(*args, callback=on_event, **kwargs)

    monkeypatch.setattr(nst.batch, "stylize_batch", with_killer)
    return killed


def _manifest(out: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {line["output"]: line for line in lines}


@pytest.mark.slow
@pytest.mark.parametrize("through", ["gcs", "client"])
def test_a_worker_killed_mid_task_is_retried(cluster, batch, tmp_path, monkeypatch, through):
    killed = _killing(monkeypatch, index=0, every_time=False)
    address = cluster.gcs if through == "gcs" else cluster.client
    result = CliRunner().invoke(main, [*batch, f"--ray={address}", "--retries", "2"])
    assert result.exit_code == 0, result.output
    assert len(killed) == 1
    lines = _manifest(tmp_path / "out")
    assert sorted(lines) == ["p0-style.png", "p1-style.png", "p2-style.png"]
    assert all(line["status"] == "ok" for line in lines.values()) and all(
        (tmp_path / "out" / n).is_file() for n in lines
    )
    assert int(lines["p0-style.png"]["worker"].rsplit(":", 1)[1]) != killed[0]  # made again, by another process


@pytest.mark.slow
def test_a_task_that_keeps_dying_fails_after_its_retries(cluster, batch, tmp_path, monkeypatch):
    killed = _killing(monkeypatch, index=1, every_time=True)
    result = CliRunner().invoke(main, [*batch, f"--ray={cluster.gcs}", "--retries", "1"])
    assert result.exit_code == 1, result.output
    assert len(killed) == 2  # the first attempt and its one retry
    lines = _manifest(tmp_path / "out")
    assert [lines[f"p{i}-style.png"]["status"] for i in range(3)] == ["ok", "failed", "ok"]
    assert "the Ray task failed after 1 retries" in lines["p1-style.png"]["error"]
    assert result.output.splitlines()[-1] == (
        f"Error: 1 of 3 output(s) failed; the reasons are above and in {tmp_path / 'out' / 'manifest.jsonl'}"
    )


@pytest.mark.parametrize("address", ["ray://127.0.0.1:1", "127.0.0.1:1"])
def test_no_cluster_at_the_address_is_one_line_at_once(batch, address):
    pytest.importorskip("ray")
    start = time.monotonic()
    result = CliRunner().invoke(main, [*batch, f"--ray={address}"])
    assert time.monotonic() - start < 10
    assert result.exit_code == 1
    assert result.output == (
        f"Error: --ray: no Ray cluster answers at {address} (connection refused); start one there "
        "(ray start --head) or check the address and port\n"
    )
