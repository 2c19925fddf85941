"""nst.models.download against a local server: full, cut and resumed, Range ignored, corrupt, unreachable."""

from __future__ import annotations

import hashlib

import pytest

from nst.errors import DownloadError
from nst.models.download import download_file, part_path

from weights_server import WeightsServer, closed_port_url

PAYLOAD = bytes(range(256)) * 1200  # 300 KB, not a multiple of the chunk size
NAME = "weights.bin"
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with WeightsServer({NAME: PAYLOAD}) as srv:
        yield srv


def test_full_download_verifies_and_reports_progress(server, tmp_path):
    dest = tmp_path / "w" / NAME  # the folder does not exist yet
    calls = []
    result = download_file(
        f"{server.url}/{NAME}",
        dest,
        {"sha256": SHA256, "md5": MD5},
        progress=lambda done, total: calls.append((done, total)),
    )
    assert dest.read_bytes() == PAYLOAD
    assert not part_path(dest).exists()
    assert result.digests == {"sha256": SHA256, "md5": MD5}
    assert (result.bytes_fetched, result.resumed_from) == (len(PAYLOAD), 0)
    assert server.ranges == [None]
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_cut_download_resumes_with_range(server, tmp_path):
    server.cut_at = 100_000
    dest = tmp_path / NAME
    result = download_file(f"{server.url}/{NAME}", dest, {"sha256": SHA256}, size=len(PAYLOAD))
    assert server.ranges == [None, "bytes=100000-"]
    assert dest.read_bytes() == PAYLOAD
    assert result.bytes_fetched == len(PAYLOAD)  # 100000 + the rest, nothing twice


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    dest = tmp_path / NAME
    part_path(dest).write_bytes(PAYLOAD[:12345])
    result = download_file(f"{server.url}/{NAME}", dest, {"sha256": SHA256})
    assert server.ranges == ["bytes=12345-"]
    assert dest.read_bytes() == PAYLOAD
    assert (result.resumed_from, result.bytes_fetched) == (12345, len(PAYLOAD) - 12345)


def test_complete_partial_file_is_verified_without_a_request(server, tmp_path):
    dest = tmp_path / NAME
    part_path(dest).write_bytes(PAYLOAD)
    download_file(f"{server.url}/{NAME}", dest, {"sha256": SHA256}, size=len(PAYLOAD))
    assert server.requests == []
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.ignore_range = True
    dest = tmp_path / NAME
    part_path(dest).write_bytes(b"x" * 5000)  # wrong bytes: appending to them would corrupt the file
    calls = []
    download_file(f"{server.url}/{NAME}", dest, {"sha256": SHA256}, progress=lambda done, total: calls.append(done))
    assert server.ranges == ["bytes=5000-"]
    assert dest.read_bytes() == PAYLOAD
    assert calls[0] == 0  # progress restarted with the file


def test_corrupt_download_is_rejected_and_deleted(server, tmp_path):
    server.corrupt = True
    dest = tmp_path / NAME
    bad = bytearray(PAYLOAD)
    bad[len(bad) // 2] ^= 0xFF
    bad_sha = hashlib.sha256(bad).hexdigest()
    with pytest.raises(DownloadError) as err:
        download_file(f"{server.url}/{NAME}", dest, {"sha256": SHA256})
    assert str(err.value) == (
        f"{NAME} downloaded from {server.url}/{NAME} failed its check (sha256 {bad_sha}, expected {SHA256}): "
        f"the download is corrupt or the server holds another file. The partial file {part_path(dest)} was "
        "deleted; run the command again to download it afresh."
    )
    assert not dest.exists() and not part_path(dest).exists()


def test_md5_alone_is_checked(server, tmp_path):
    with pytest.raises(DownloadError, match=r"failed its check \(md5 "):
        download_file(f"{server.url}/{NAME}", tmp_path / NAME, {"md5": "0" * 32})
    assert not part_path(tmp_path / NAME).exists()


def test_no_server_gives_one_clear_error(tmp_path):
    url = f"{closed_port_url()}/{NAME}"
    dest = tmp_path / NAME
    with pytest.raises(DownloadError) as err:
        download_file(url, dest, {"sha256": SHA256})
    assert str(err.value) == (
        f"cannot download {NAME} ({url}: connection refused). Without network, get the file by other "
        f"means and pass it with --weights PATH, or put it at {dest}."
    )
    assert not dest.exists() and not part_path(dest).exists()


def test_http_error_and_fallback_url(server, tmp_path):
    dest = tmp_path / NAME
    with pytest.raises(DownloadError, match=rf"\({server.url}/missing: HTTP 404 Not Found\)"):
        download_file(f"{server.url}/missing", dest, {"sha256": SHA256})
    # The next URL is tried when one fails.
    result = download_file([f"{closed_port_url()}/{NAME}", f"{server.url}/{NAME}"], dest, {"sha256": SHA256})
    assert result.url == f"{server.url}/{NAME}" and dest.read_bytes() == PAYLOAD


def test_cut_download_that_never_finishes_keeps_the_part_for_next_time(server, tmp_path, monkeypatch):
    dest = tmp_path / NAME
    server.cut_at = 70_000
    with pytest.raises(DownloadError, match=r"The 70000 bytes received so far are kept in .*\.part"):
        download_file(f"{server.url}/{NAME}", dest, {"sha256": SHA256}, retries=0)
    assert part_path(dest).stat().st_size == 70_000
    download_file(f"{server.url}/{NAME}", dest, {"sha256": SHA256})
    assert server.ranges[-1] == "bytes=70000-" and dest.read_bytes() == PAYLOAD
