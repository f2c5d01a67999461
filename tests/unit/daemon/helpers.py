"""Helpers of the daemon's unit tests: issues, and a raw HTTP client for the API socket."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from orchestrator.model import Issue, IssueKind, Severity


def make_issue(component: str = "sampleapp", kind: IssueKind = IssueKind.UNIT_INACTIVE,
               severity: Severity = Severity.CRITICAL, subject: str = "sampleapp.service") -> Issue:
    return Issue(component, kind, severity, subject, f"{subject} is not running", f"unit:{subject}")


def http_get(path: Path, target: str, *, raw: bytes | None = None, timeout: float = 5.0) -> bytes:
    """Send one request (``raw``, or a GET of ``target``) and read the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        # The server may answer early (413, 503) and stop reading: its answer is still readable.
        with contextlib.suppress(BrokenPipeError):
            sock.sendall(raw if raw is not None else f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def split_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body
