"""A test-only HTTP file server on 127.0.0.1, with Range support and failure switches.

`WeightsServer(files)` serves `files[name]` at `/<name>` and records every request (path and
Range header). Switches: `cut_at` (close the connection once after that many bytes of the
file, announcing the full length), `corrupt` (flip one byte), `ignore_range` (answer 200
with the whole file), `gate` (a threading.Event each answer waits for, to hold a download
open while a test starts a second process). Plus the fixtures `weights_home` and `fixture_weights`, which point
NST_HOME at a temporary folder and the registry's vgg19 entry at a synthetic `.mat` served
here (import them into a test module to use them).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class WeightsServer:
    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header or None)
        self.cut_at: int | None = None  # one-shot: file offset after which the connection is closed
        self.corrupt = False
        self.ignore_range = False
        self.gate: threading.Event | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ranges(self) -> list[str | None]:
        return [r for _, r in self.requests]

    def __enter__(self) -> WeightsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: a cut is a close

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                if server.gate is not None:
                    server.gate.wait(timeout=120)
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                if server.corrupt:
                    middle = len(data) // 2
                    data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                end = len(data)
                if server.cut_at is not None and start < server.cut_at < end:
                    end, server.cut_at = server.cut_at, None  # once
                self.wfile.write(data[start:end])
                self.wfile.flush()

        return Handler


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def weights_home(tmp_path, monkeypatch) -> Path:
    """An empty NST_HOME for one test."""
    home = tmp_path / "nst-home"
    monkeypatch.setenv("NST_HOME", str(home))
    return home


@dataclass
class FixtureWeights:
    server: WeightsServer
    mat: Path  # the synthetic .mat the server serves as the registry's vgg19
    sha256: str
    home: Path


@pytest.fixture
def fixture_weights(make_mat, weights_home, monkeypatch):
    """The registry's vgg19 entry served from a local server: a synthetic .mat with its own checksum."""
    from nst.models import registry

    mat = make_mat("vgg19", "new", 0, "small")
    data = mat.read_bytes()
    entry = registry.WEIGHTS["vgg19"]
    sha256 = hashlib.sha256(data).hexdigest()
    monkeypatch.setitem(
        registry.WEIGHTS, "vgg19", entry.replace(sha256=sha256, md5=hashlib.md5(data).hexdigest(), size=len(data))
    )
    with WeightsServer({entry.file_name: data}) as server:
        monkeypatch.setenv("NST_WEIGHTS_URL", server.url)
        yield FixtureWeights(server, mat, sha256, weights_home)
