"""stylize-batch on a real two-node Ray cluster: a `ray start --head` and a second
`ray start --address ...` on this machine (two raylets, one CPU each), joined through the GCS
address and through Ray Client (ray://). A worker process killed mid-task is retried and the
batch completes; a task whose worker is killed every time is recorded failed after --retries,
and the rest completes. Plus the addresses where nothing listens: one line, at once."""

from __future__ import annotations

import json
import os
import re
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

from nst.cli import main

from processes import NST, Nst

ROOT = Path(__file__).resolve().parents[1]
# The test cluster and its drivers: no token (one would be written to ~/.ray), no usage report.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


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
    env = {**os.environ, **RAY_ENV, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    small = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--object-store-memory=200000000"]
    nodes = []
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


# nst, killing (SIGKILL) the Ray worker process that reports a step of job T_KILL_INDEX: once, or
# at each attempt (T_KILL_EVERY=1). Each kill is a "killed PID" line.
KILLER = (
    """
import os, signal, sys
import nst.batch
index, every = int(os.environ["T_KILL_INDEX"]), os.environ["T_KILL_EVERY"] == "1"
stylize_batch, killed = nst.batch.stylize_batch, []

def with_killer(*args, callback=None, **kwargs):
    def on_event(event):
        if event.kind == "step" and event.index == index and (every or not killed):
            pid = int(event.worker.rsplit(":", 1)[1])
            if pid not in killed:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)
                print(f"killed {pid}", file=sys.stderr, flush=True)
        if callback is not None:
            callback(event)
    return stylize_batch(*args, callback=on_event, **kwargs)

nst.batch.stylize_batch = with_killer
"""
    + NST
)


def _run_killing(args: list[str], *, index: int, every_time: bool) -> tuple[int, list[str], list[int]]:
    """The batch in a process of its own (Ray's settings are per process: one that started a
    local instance before would carry them here); its exit status, lines, and the pids killed."""
    run = Nst(*args, env={"T_KILL_INDEX": str(index), "T_KILL_EVERY": "1" if every_time else "0", **RAY_ENV},
              script=KILLER)  # fmt: skip
    code = run.finish()
    killed = [int(line.split()[1]) for line in run.lines if line.startswith("killed ")]
    lines = [line for line in run.lines if not line.startswith("killed ")]
    assert not [line for line in lines if re.match(r"\d{4}-\d\d-\d\d .*(INFO|WARNING)", line)], (
        lines
    )  # Ray's, held back
    return code, lines, killed


def _manifest(out: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {line["output"]: line for line in lines}


@pytest.mark.slow
@pytest.mark.parametrize("through", ["gcs", "client"])
def test_a_worker_killed_mid_task_is_retried(cluster, batch, tmp_path, through):
    address = cluster.gcs if through == "gcs" else cluster.client
    code, lines, killed = _run_killing([*batch, f"--ray={address}", "--retries", "2"], index=0, every_time=False)
    assert code == 0, lines
    assert len(killed) == 1
    made = _manifest(tmp_path / "out")
    assert sorted(made) == ["p0-style.png", "p1-style.png", "p2-style.png"]
    assert all(line["status"] == "ok" for line in made.values()) and all((tmp_path / "out" / n).is_file() for n in made)
    assert int(made["p0-style.png"]["worker"].rsplit(":", 1)[1]) != killed[0]  # made again, by another process


@pytest.mark.slow
def test_a_task_that_keeps_dying_fails_after_its_retries(cluster, batch, tmp_path):
    code, lines, killed = _run_killing([*batch, f"--ray={cluster.gcs}", "--retries", "1"], index=1, every_time=True)
    assert code == 1, lines
    assert len(killed) == 2  # the first attempt and its one retry
    made = _manifest(tmp_path / "out")
    assert [made[f"p{i}-style.png"]["status"] for i in range(3)] == ["ok", "failed", "ok"]
    assert "the Ray task failed after 1 retries" in made["p1-style.png"]["error"]
    assert lines[-1] == (
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
