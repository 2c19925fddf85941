"""Who may use the app: the token (needed off the loopback interface), the same-origin check on
requests that change something, the Host check against DNS rebinding, and the upload cap.

Plain ASGI middleware, so that a refused request is answered before its body is read.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TOKEN_PARAM = "token"
TOKEN_HEADER = "x-nst-token"
SPOOL_IN_MEMORY = 2**20  # bytes of a request body held in memory; the rest goes to a temporary file
CHUNK = 2**16


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def new_token() -> str:
    return secrets.token_urlsafe(18)


def cookie_name(port: int) -> str:
    """Cookies ignore the port: two servers on one host must not share one."""
    return f"nst_token_{port}"


@dataclass(frozen=True)
class Access:
    """`token`: required on every request when set (any --host off the loopback interface).
    `hosts`: the Host headers accepted without a token (the loopback names), so that a web
    page whose domain resolves to 127.0.0.1 cannot read the app (DNS rebinding)."""

    token: str | None = None
    hosts: tuple[str, ...] = LOOPBACK


class Guard:
    """Refuses, with 401/403 and one line of JSON, any request that is not the user's own."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        if refusal is not None:
            return await reply(send, *refusal)
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = _headers(scope)
        host = headers.get("host", "")
        token = self.access.token
        if token is None:
            if _hostname(host) not in self.access.hosts:
                return 403, f"unexpected Host header {host!r}; open the app at the address nst serve printed"
        else:
            given, source = _token(scope, headers)
            if given is None:
                return 401, "this server needs its token: open the URL nst serve printed (with ?token=...)"
            if not secrets.compare_digest(given.encode(), token.encode()):
                return 403, "wrong token: open the URL nst serve printed"
            if source != "cookie":  # another site's page has neither the token nor a way to set a header
                return None
        if scope["method"] not in SAFE_METHODS and not _same_origin(headers, host):
            return 403, "cross-origin request refused: use the page this server serves"
        return None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _hostname(host: str) -> str:
    if host.startswith("["):  # [::1]:8765
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _token(scope: Scope, headers: dict[str, str]) -> tuple[str | None, str]:
    """The token and where it came from: header, query or cookie."""
    if TOKEN_HEADER in headers:
        return headers[TOKEN_HEADER], "header"
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), "header"
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if TOKEN_PARAM in query:
        return query[TOKEN_PARAM][0], "query"
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header: as if there were none
        return None, "cookie"
    server = scope.get("server") or ("", 0)
    morsel = cookies.get(cookie_name(int(server[1] or 0)))
    return (morsel.value if morsel is not None else None), "cookie"


def _same_origin(headers: dict[str, str], host: str) -> bool:
    """Browsers send Origin with every request that changes something, and Sec-Fetch-Site
    with every request at all; a client that sends neither is not a browser tab (curl, a
    script), and cross-site requests need a browser."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == host


class BodyLimit:
    """Answers 413 to a request body over `limit` bytes: at once when its Content-Length says
    so, else as soon as the bytes read pass it. The body is read (and spooled to disk past
    1 MB) before the app sees the request, so the app never holds a part of a refused one."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return await self.app(scope, receive, send)
        length = _headers(scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await reply(send, 413, self.message(int(length)))
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            seen = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.limit:
                    return await reply(send, 413, self.message(None))
                spool.write(chunk)
                if not message.get("more_body", False):
                    break
            spool.seek(0)
            await self.app(scope, _replay(spool, receive), send)

    def message(self, size: int | None) -> str:
        limit = f"{self.limit / 2**20:g} MB"
        given = f"{size / 2**20:.1f} MB" if size is not None else "larger"
        return f"the upload is {given}; the limit is {limit} (nst serve --max-upload-mb)"


def _replay(spool: Any, receive: Receive) -> Receive:
    """A receive() that gives the spooled body back in chunks, then waits on the client."""
    done = False

    async def replayed() -> Message:
        nonlocal done
        if done:
            return await receive()  # the client's disconnect, whenever it comes
        chunk = spool.read(CHUNK)
        done = len(chunk) < CHUNK
        return {"type": "http.request", "body": chunk, "more_body": not done}

    return replayed


async def reply(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
