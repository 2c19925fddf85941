"""Resumable, verified HTTP(S) download of one file (standard library only: urllib).

The bytes go to `<dest>.part` beside the destination. A cut transfer is resumed with an
HTTP Range request (at once, up to `retries` times, and again by a later call that finds the
`.part`). The file is renamed into place only after its size and checksums match; a mismatch
deletes the partial file. Progress is reported through a callback; nothing is printed here.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nst.errors import DownloadError
from nst.fileio import disk_full, file_digests

# (bytes done, total bytes or None when the server does not say) -> None
ProgressFn = Callable[[int, "int | None"], None]

DEFAULT_TIMEOUT = 30.0  # seconds, for connecting and for each read: a stalled server fails, a slow one does not
CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadResult:
    """What a completed download produced."""

    path: Path
    url: str  # the URL the last bytes came from
    digests: dict[str, str]  # "sha256" and "md5" of the file, hex
    bytes_fetched: int  # bytes received over the network by this call
    resumed_from: int  # bytes an earlier `.part` held when this call started (0: none)


class _Cut(Exception):
    """The server closed or stalled before sending the whole file: resume with Range."""

    def __init__(self, done: int, total: int | None, cause: str = ""):
        self.done, self.total, self.cause = done, total, cause
        self.received = 0  # bytes this request added to the .part before the cut
        of = f" of {total}" if total is not None else ""
        super().__init__(f"connection cut after {done}{of} bytes{f' ({cause})' if cause else ''}")


def part_path(dest: str | Path) -> Path:
    """Where the bytes of `dest` accumulate until they are verified."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def download_file(
    urls: str | Sequence[str],
    dest: str | Path,
    checksums: Mapping[str, str],
    *,
    size: int | None = None,
    progress: ProgressFn | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 3,
) -> DownloadResult:
    """Download `dest` from the first of `urls` that works; verify it; rename it into place.

    `checksums` maps hashlib names ("sha256", "md5") to expected hex digests; at least one
    is required. `retries` is how many times a cut transfer is resumed per URL.
    Raises DownloadError when no URL works or the file fails its checksum.
    """
    if not checksums:
        raise ValueError("download_file needs at least one expected checksum")
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    dest = Path(dest)
    part = part_path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the folder {dest.parent} for {dest.name}: {exc.strerror or exc}") from None

    failures: list[tuple[str, str]] = []
    fetched = 0
    resumed_from = part.stat().st_size if part.is_file() else 0
    for url in urls:
        for _ in range(1 + retries):
            try:
                fetched += _fetch(url, part, size, progress, timeout)
            except _Cut as cut:
                fetched += cut.received
                failures.append((url, str(cut)))
                continue  # resume from what the .part now holds
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
                if disk_full(exc):
                    raise _disk_full(dest, part) from None
                failures.append((url, _reason(exc, timeout)))
                break  # this URL does not answer (or is not a URL urllib can fetch): try the next one
            digests = _verify(url, dest, part, checksums, size)
            os.replace(part, dest)
            return DownloadResult(dest, url, digests, fetched, resumed_from)

    kept = part.stat().st_size if part.is_file() else 0
    keep_note = f" The {kept} bytes received so far are kept in {part} and the next try resumes them." if kept else ""
    tried = "; ".join(f"{url}: {reason}" for url, reason in _last_per_url(failures))
    raise DownloadError(
        f"cannot download {dest.name} ({tried}). Without network, get the file by other means and "
        f"pass it with --weights PATH, or put it at {dest}.{keep_note}"
    )


def _fetch(url: str, part: Path, size: int | None, progress: ProgressFn | None, timeout: float) -> int:
    """Append the rest of `url` to `part` (Range from its current size); return bytes received.

    Returns normally once the server has sent everything it announced; raises _Cut when the
    transfer stops early, and urllib/OSError errors when the server cannot be reached.
    """
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:  # not a prefix of this file
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset:
        return 0  # already complete: verification decides
    headers = {"User-Agent": "nst-weights-download", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return 0  # nothing after `offset`: the .part holds the whole file, or is wrong (checksum tells)
        raise

    with response:
        total = size
        if offset and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                # A range we did not ask for: cannot be appended; start again from zero.
                part.unlink()
                raise _Cut(0, size, "server answered a different range; restarting")
            if total is None and match.group(3) != "*":
                total = int(match.group(3))
            mode = "ab"
        else:
            # 200: a fresh download, or a server that ignores Range and sends the whole file.
            offset = 0
            mode = "wb"
            length = response.headers.get("Content-Length")
            if total is None and length and length.isdigit():
                total = int(length)
        length = response.headers.get("Content-Length")
        end = offset + int(length) if length and length.isdigit() else total

        done = offset
        if progress:
            progress(done, total)
        cut = None
        with open(part, mode) as f:
            try:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                if disk_full(exc):
                    raise
                cut = _Cut(done, end, _reason(exc, timeout))
        # http.client returns b"" at a premature close instead of raising: compare with the length.
        if cut is None and end is not None and done < end:
            cut = _Cut(done, end)
        if cut is not None:
            cut.received = done - offset
            raise cut
        return done - offset


def _disk_full(dest: Path, part: Path) -> DownloadError:
    """The disk filled up during the download: its partial file goes, to give the space back."""
    part.unlink(missing_ok=True)
    return DownloadError(
        f"cannot download {dest.name}: the disk is full (ENOSPC) writing {part}; the partial file was deleted. "
        f"Free some space in {dest.parent}, or set NST_HOME to a folder on another disk"
    )


def _verify(url: str, dest: Path, part: Path, checksums: Mapping[str, str], size: int | None) -> dict[str, str]:
    """Digests of the finished `.part`; on a size or checksum mismatch delete it and raise."""
    actual_size = part.stat().st_size
    digests = file_digests(part, tuple(dict.fromkeys(("sha256", "md5", *checksums))))
    problem = None
    if size is not None and actual_size != size:
        problem = f"size {actual_size} bytes, expected {size}"
    else:
        for algo, expected in checksums.items():
            if not digest_matches(digests[algo], expected):
                problem = f"{algo} {digests[algo]}, expected {expected.lower()}"
                break
    if problem:
        part.unlink()
        raise DownloadError(
            f"{dest.name} downloaded from {url} failed its check ({problem}): the download is corrupt or "
            f"the server holds another file. The partial file {part} was deleted; run the command again "
            "to download it afresh."
        )
    return digests


def digest_matches(actual: str, expected: str) -> bool:
    """`actual` hex digest against an expected whole digest, or against the first 8+ hex digits
    that a file name publishes (torch.hub's `check_hash` convention)."""
    expected = expected.lower()
    return actual == expected or (8 <= len(expected) < len(actual) and actual.startswith(expected))


def _reason(exc: BaseException, timeout: float) -> str:
    """A short, stable phrase for why a request failed."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host not found (no network?)"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed early"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _last_per_url(failures: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The last failure of each URL, in the order the URLs were tried."""
    last: dict[str, str] = {}
    for url, reason in failures:
        last.pop(url, None)
        last[url] = reason
    return list(last.items())
