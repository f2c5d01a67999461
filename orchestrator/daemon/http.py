"""Just enough HTTP/1.1 for the local API: read one bounded request, write one response, close.

Our own small parser rather than :mod:`http.server`: its timeouts apply to each ``recv`` separately,
so a client that sends one byte every few seconds (slow loris) would hold a connection forever, and it
has no bound on a request's total size. Here the whole request head and body must arrive within one
deadline and within :data:`MAX_REQUEST_BYTES`; every response says ``Connection: close``, so there is
no keep-alive state to get wrong. Only what the API needs is understood: a request line, headers,
and a Content-Length body (read and ignored); chunked bodies are refused.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

#: A request (head and body) larger than this is answered 413.
MAX_REQUEST_BYTES = 1024 * 1024
_HEAD_END = b"\r\n\r\n"
_LENGTH_RE = re.compile(r"[0-9]{1,12}")
_CHUNK = 64 * 1024


class HttpStatusError(Exception):
    """Internal to the daemon's server: the request cannot be served; answer ``status``.

    Never leaves :mod:`orchestrator.daemon`: the server turns it into a response at once.
    """

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _recv(conn: socket.socket, deadline: float, clock: Callable[[], float]) -> bytes:
    remaining = deadline - clock()
    if remaining <= 0:
        raise HttpStatusError(HTTPStatus.REQUEST_TIMEOUT, "request not received in time")
    conn.settimeout(remaining)
    try:
        return conn.recv(_CHUNK)
    except TimeoutError as exc:
        raise HttpStatusError(HTTPStatus.REQUEST_TIMEOUT, "request not received in time") from exc


def read_request(
    conn: socket.socket, *, deadline: float, max_bytes: int = MAX_REQUEST_BYTES,
    clock: Callable[[], float] = time.monotonic,
) -> Request:
    """Read one request from ``conn`` before ``deadline`` (a ``clock()`` value).

    Raises:
        HttpStatusError: 408 deadline passed, 413 too large, 400 malformed, 501 chunked body.
        ConnectionError: the client closed the connection before the request was complete.
    """
    buf = bytearray()
    while (end := buf.find(_HEAD_END)) < 0:
        if len(buf) > max_bytes:
            raise HttpStatusError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request over {max_bytes} bytes")
        chunk = _recv(conn, deadline, clock)
        if not chunk:
            raise ConnectionError("client closed the connection mid-request")
        buf += chunk
    head, received = bytes(buf[:end]), len(buf) - end - len(_HEAD_END)
    request, length = _parse_head(head)
    if end + len(_HEAD_END) + length > max_bytes:
        raise HttpStatusError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request over {max_bytes} bytes")
    # The body is read (so the client is not cut off mid-send) and dropped: no endpoint takes one.
    while received < length:
        chunk = _recv(conn, deadline, clock)
        if not chunk:
            raise ConnectionError("client closed the connection mid-body")
        received += len(chunk)
    return request


def _parse_head(head: bytes) -> tuple[Request, int]:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError as exc:
        raise HttpStatusError(HTTPStatus.BAD_REQUEST, "request head is not ASCII") from exc
    line, *header_lines = text.split("\r\n")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpStatusError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, _version = parts
    headers: dict[str, str] = {}
    for header in header_lines:
        name, sep, value = header.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpStatusError(HTTPStatus.BAD_REQUEST, "malformed header line")
        if name.lower() == "content-length" and "content-length" in headers:
            # Two lengths are how requests are smuggled past a proxy: never pick one.
            raise HttpStatusError(HTTPStatus.BAD_REQUEST, "more than one Content-Length")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpStatusError(HTTPStatus.NOT_IMPLEMENTED, "chunked request bodies are not supported")
    length_text = headers.get("content-length", "0")
    # ASCII digits of bounded length: int() refuses more than 4,300 digits with a ValueError.
    if not _LENGTH_RE.fullmatch(length_text):
        raise HttpStatusError(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
    try:
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    except ValueError as exc:  # e.g. "//[" is an unclosed IPv6 host to urlsplit
        raise HttpStatusError(HTTPStatus.BAD_REQUEST, "malformed request target") from exc
    return Request(method, url.path or "/", query, headers), int(length_text)


def loggable(text: str, limit: int = 200) -> str:
    """``text`` fit for a log line: control and other unprintable characters escaped (a client's
    path must not forge log lines or terminal escapes), at most ``limit`` characters of it kept."""
    head = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text[:limit])
    return head if len(text) <= limit else f"{head}… ({len(text) - limit:,} more characters)"


def render_response(response: Response) -> bytes:
    status = response.status
    lines = [f"HTTP/1.1 {status.value} {status.phrase}", f"Content-Type: {response.content_type}",
             f"Content-Length: {len(response.body)}", "Connection: close", "Cache-Control: no-store",
             *(f"{name}: {value}" for name, value in response.headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + response.body


def write_response(
    conn: socket.socket, response: Response, *, deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Send ``response`` and nothing more; a client that does not read it in time is dropped.

    Raises:
        OSError: the client went away or did not read before the deadline (TimeoutError).
    """
    # Since Python 3.5 a socket timeout bounds all of sendall(), not each send inside it.
    conn.settimeout(max(deadline - clock(), 0.01))
    conn.sendall(render_response(response))
