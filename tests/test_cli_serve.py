"""`nst serve` as a command: one line without the extra or on a taken port, a token off the
loopback interface, and Ctrl-C that stops a running job, keeps it, and exits 130."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nst.cli import main

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from test_serve import CONTENT, STYLE  # noqa: E402

START = "from nst.cli import main; main()"


def test_without_the_extra_serve_says_what_to_install(monkeypatch):
    import nst.cli.serve_cmd as serve_cmd

    real = serve_cmd.importlib.util.find_spec
    monkeypatch.setattr(serve_cmd.importlib.util, "find_spec", lambda name: None if name == "uvicorn" else real(name))
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.output == "Error: nst serve needs the serve extra (uvicorn missing): pip install 'nst[serve]'\n"


def test_serve_help_loads_neither_the_web_stack_nor_torch():
    probe = (
        "import sys; from click.testing import CliRunner; from nst.cli import main; "
        "r = CliRunner().invoke(main, ['serve', '--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'starlette', 'uvicorn', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_taken_port_is_one_line(vgg19_onnx, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main, ["serve", "-m", str(vgg19_onnx), "--port", str(port), "--outdir", str(tmp_path)]
        )
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot listen on 127.0.0.1:{port} (")
    assert result.output.endswith("; pass another --port or --host\n") and result.output.count("\n") == 1


def test_a_bad_device_or_two_models_are_one_line_before_anything_loads(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--device", "gpu", "--outdir", str(tmp_path)])
    assert result.exit_code == 2 and "Invalid value for '--device': must be auto, cpu, cuda or cuda:N, got 'gpu'" in (
        result.output
    )
    result = CliRunner().invoke(main, ["serve", "-m", "a.onnx", "--weights", "vgg16", "--outdir", str(tmp_path)])
    assert (result.exit_code, result.output) == (1, "Error: give -m MODEL.onnx or --weights, not both\n")


def start_server(args: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", START, "serve", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()  # the URL, once it listens
    assert line.startswith("nst serve: http://"), (line, process.stderr.read() if process.stderr else "")
    return process, line.split()[2]


def stop_server(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def test_off_loopback_the_url_carries_a_token_that_is_required(vgg19_onnx, tmp_path):
    process, url = start_server(["--host", "0.0.0.0", "-m", str(vgg19_onnx), "--outdir", str(tmp_path)])
    try:
        assert "?token=" in url
        token = url.split("?token=")[1]
        port = url.split(":")[2].split("/")[0]
        local = f"http://127.0.0.1:{port}/api/jobs"
        assert httpx.get(local).status_code == 401
        assert httpx.get(local, headers={"x-nst-token": token}).json() == {"jobs": []}
    finally:
        code, err = stop_server(process)
    assert code == 130 and "Traceback" not in err


def test_ctrl_c_stops_the_running_job_keeps_its_image_and_the_finished_ones(vgg19_onnx, tmp_path):
    process, url = start_server(["-m", str(vgg19_onnx), "--outdir", str(tmp_path)])
    files = [("content", ("photo.png", CONTENT, "image/png")), ("style", ("s.png", STYLE, "image/png"))]

    def submit(iterations: int) -> str:
        options = json.dumps({"iterations": iterations, "size": 64, "seed": 1})
        response = httpx.post(url + "api/jobs", files=files, data={"options": options})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def status(job_id: str) -> dict:
        return httpx.get(url + f"api/jobs/{job_id}").json()

    try:
        finished = submit(5)
        running = submit(100_000)
        queued = submit(5)
        deadline = time.monotonic() + 120
        while status(running)["iteration"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status(finished)["status"] == "done"
    finally:
        code, err = stop_server(process)
    assert code == 130, err
    assert "Traceback" not in err and f"stopped; the results are in {tmp_path}" in err
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "manifest.jsonl").read_text().splitlines())}
    assert records[finished]["status"] == "done" and (tmp_path / f"{finished}.png").is_file()
    assert records[running]["status"] == "cancelled" and (tmp_path / f"{running}.png").is_file()
    assert (
        records[queued]["status"] == "cancelled" and records[queued]["error"] == "the server stopped before it started"
    )
    assert not (tmp_path / f"{queued}.png").exists()
    assert not list(Path(tmp_path).glob("*.part*"))


def test_stylize_preview_serves_the_run_live_until_it_ends(vgg19_onnx, tmp_path):
    (tmp_path / "c.png").write_bytes(CONTENT)
    (tmp_path / "s.png").write_bytes(STYLE)
    argv = [sys.executable, "-c", START, "stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-m",
            str(vgg19_onnx), "-o", str(tmp_path / "out.png"), "--size", "64", "--iterations", "100", "-q",
            "--preview", "0"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.startswith("live view: http://127.0.0.1:"), line
    url = line.split()[2]
    job_id = httpx.get(url + "api/jobs").json()["jobs"][0]["id"]
    events = []
    with httpx.stream("GET", url + f"api/jobs/{job_id}/events", timeout=60) as stream:
        for text in stream.iter_lines():
            if text.startswith("data: "):
                events.append(json.loads(text[6:]))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert events[-1]["status"] == "done" and events[-1]["iteration"] == 100
    assert all(e["status"] == "running" for e in events[:-1]) and len(events) >= 2
    assert out.startswith(f"wrote {tmp_path / 'out.png'}")


def test_a_second_ctrl_c_does_not_wait(vgg19_onnx, tmp_path):
    process, url = start_server(["-m", str(vgg19_onnx), "--outdir", str(tmp_path)])
    files = [("content", ("photo.png", CONTENT, "image/png")), ("style", ("s.png", STYLE, "image/png"))]
    options = json.dumps({"iterations": 100_000, "size": 256})
    job_id = httpx.post(url + "api/jobs", files=files, data={"options": options}).json()["id"]
    while httpx.get(url + f"api/jobs/{job_id}").json()["status"] != "running":
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert "the results are in" in err
