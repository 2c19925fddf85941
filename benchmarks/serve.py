"""`nst serve` under load: a running job's iteration rate with and without 50 clients polling
its status.

    python benchmarks/serve.py [--size 256] [--clients 50] [--interval 0.2] [--window 20] [--rounds 3]

The app runs as `nst serve` runs it (uvicorn, one CPU worker thread, one process); the clients
run in another process (asyncio, one kept-alive connection each, requests written by hand),
each asking GET /api/jobs/ID every --interval seconds (0: as fast as the server answers). The rate is the job's own count: iterations over
the seconds its steps report, read at the start and end of each window. Windows alternate
without and with the clients, --rounds times, so a drift of the machine hits both; medians.
Target (issue 21): the clients slow the job by at most 10 %. Smoke run:
`--size 64 --window 1 --rounds 1 --clients 5`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, machine, median, model_path


def start_server(model: Path, outdir: Path) -> tuple[str, Any, threading.Thread]:
    """The app on a free port, served from a thread: its URL, its uvicorn server, the thread."""
    from nst.runtime.stylize import Stylizer
    from nst.serve.app import create_app
    from nst.serve.gallery import Gallery
    from nst.serve.runner import JobQueue
    from nst.serve.server import Server, bind, url

    queue = JobQueue([Stylizer(model, device="cpu")], Gallery(outdir))
    app = create_app(queue, queue=queue, info={"mode": "serve", "model": model.name, "devices": ["cpu"]})
    sock = bind("127.0.0.1", 0)
    server = Server(app, on_stop=queue.stop)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return url("127.0.0.1", sock.getsockname()[1]), server, thread


def submit(base: str, size: int) -> str:
    import httpx

    files = [("content", (CONTENT.name, CONTENT.read_bytes(), "image/jpeg")),
             ("style", (STYLE.name, STYLE.read_bytes(), "image/jpeg"))]  # fmt: skip
    options = {"size": size, "iterations": 1_000_000, "seed": 0}
    response = httpx.post(base + "api/jobs", files=files, data={"options": json.dumps(options)}, timeout=60)
    response.raise_for_status()
    return response.json()["id"]


def position(base: str, job_id: str) -> tuple[int, float]:
    """(iteration, elapsed seconds) of the job's last step."""
    import httpx

    job = httpx.get(base + f"api/jobs/{job_id}", timeout=60).json()
    return job["iteration"], job["elapsed"] or 0.0


def rate(base: str, job_id: str, seconds: float) -> float:
    """Iterations per second over a window of `seconds` (at least two iterations)."""
    first = position(base, job_id)
    time.sleep(seconds)
    last = position(base, job_id)
    while last[0] - first[0] < 2:
        time.sleep(0.1)
        last = position(base, job_id)
    return (last[0] - first[0]) / (last[1] - first[1])


def poll(url: str, clients: int, interval: float, stop: Any, counts: Any) -> None:
    """In a process of its own: `clients` pollers until `stop` is set; the requests made go to `counts`.

    Each poller keeps one HTTP/1.1 connection open and writes its GET by hand, as a load generator
    such as wrk does: an HTTP client library costs this process a few ms of CPU a request, which
    on a 2-core machine the job would pay for, not the server."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()

    async def client(made: list[int]) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while not stop.is_set():
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:40]
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            made[0] += 1
            await asyncio.sleep(interval)
        writer.close()

    async def run() -> None:
        made = [0]
        await asyncio.gather(*(client(made) for _ in range(clients)))
        counts.put(made[0])

    asyncio.run(run())


def loaded_rate(base: str, job_id: str, args: argparse.Namespace) -> tuple[float, float]:
    """The job's rate while the clients poll, and the requests per second they made."""
    context = multiprocessing.get_context("spawn")
    stop, counts = context.Event(), context.Queue()
    process = context.Process(
        target=poll, args=(base + f"api/jobs/{job_id}", args.clients, args.interval, stop, counts)
    )
    process.start()
    time.sleep(1.0 + args.window / 10)  # the clients connect before the window opens
    start = time.perf_counter()
    measured = rate(base, job_id, args.window)
    seconds = time.perf_counter() - start
    stop.set()
    made = counts.get(timeout=120)
    process.join(timeout=60)
    return measured, made / (seconds + 1.0 + args.window / 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between one client's requests")
    parser.add_argument("--window", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()

    base, server, thread = start_server(args.model or model_path(), Path(tempfile.mkdtemp(prefix="nst-serve-bench-")))
    job_id = submit(base, args.size)
    while position(base, job_id)[0] < 3:  # past the style pass and the first iterations
        time.sleep(0.2)
    alone, loaded, requests = [], [], []
    for _ in range(args.rounds):
        alone.append(rate(base, job_id, args.window))
        with_clients, per_second = loaded_rate(base, job_id, args)
        loaded.append(with_clients)
        requests.append(per_second)
    import httpx

    httpx.delete(base + f"api/jobs/{job_id}", timeout=60)
    server.should_exit = True  # the worker ends its iteration and saves the job, then the server stops
    thread.join(timeout=120)
    quiet, busy = median(alone), median(loaded)
    print(f"# {machine()}; {args.size} px, L-BFGS; {args.rounds} rounds of {args.window:g} s windows; medians")
    print("| clients polling | requests/s | iterations/s | vs no clients |")
    print("|---|---|---|---|")
    print(f"| 0 | 0 | {quiet:.3f} | 1.00 |")
    print(f"| {args.clients} every {args.interval:g} s | {median(requests):.0f} | {busy:.3f} | {busy / quiet:.2f} |")
    print(f"\nslowdown: {1 - busy / quiet:.1%} (target: at most 10 %)")


if __name__ == "__main__":
    main()
