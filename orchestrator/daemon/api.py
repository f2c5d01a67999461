"""The endpoints of the local API (all GET, JSON except /metrics).

``/health``    liveness: the process answers (200 as long as it runs)
``/ready``     200 once start-up recovery has finished, 503 before (body says why)
``/sessions``  recent repair sessions from the session store (``?limit=N``, default 20, at most 200);
               one whose session.json cannot be read has status ``unreadable`` and the reason
``/issues``    issues of the last detection with their state (pending, recorded, repairing, ...)
``/metrics``   Prometheus text format (version 0.0.4): the daemon's own metrics and the persisted ones
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from orchestrator.daemon.http import Request, Response
from orchestrator.daemon.metrics import CONTENT_TYPE, DaemonCollector, process_rss_bytes
from orchestrator.daemon.server import json_response
from orchestrator.daemon.state import DaemonState
from orchestrator.session.jsonfile import scan_sessions

ENDPOINTS = ("/health", "/ready", "/sessions", "/issues", "/metrics")
DEFAULT_SESSIONS = 20
MAX_SESSIONS = 200
#: ASCII digits only, and few of them: str.isdigit() accepts '²' (which int() rejects) and other
#: scripts' digits (which int() reads), and int() refuses more than 4,300 digits with a ValueError.
_LIMIT_RE = re.compile(r"[0-9]{1,4}")
_SESSION_KEYS = ("id", "target", "status", "started_at", "finished_at", "summary", "report", "exit_code",
                 "unreadable")


class ApiRoutes:
    """Maps a request to a response; reads ``state`` and the session store, changes nothing."""

    def __init__(self, state: DaemonState, sessions_dir: Path,
                 rss: Callable[[], int | None] = process_rss_bytes,
                 registry: CollectorRegistry | None = None) -> None:
        """``registry``: what /metrics serves; default: the daemon's own metrics only."""
        self._state = state
        self._sessions_dir = sessions_dir
        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(DaemonCollector(state, rss))
        self._registry = registry
        self._routes: dict[str, Callable[[Request], Response]] = {
            "/health": lambda _r: json_response(HTTPStatus.OK, state.health()),
            "/ready": self._ready,
            "/sessions": self._sessions,
            "/issues": lambda _r: json_response(HTTPStatus.OK, state.issues_view()),
            "/metrics": self._metrics,
        }

    def __call__(self, request: Request) -> Response:
        route = self._routes.get(request.path.rstrip("/") or "/")
        if route is None:
            return json_response(HTTPStatus.NOT_FOUND,
                                 {"error": f"no endpoint {request.path}", "endpoints": list(ENDPOINTS)})
        if request.method != "GET":
            response = json_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                     {"error": f"{request.method} is not allowed; use GET"})
            return Response(response.status, response.body, headers=(("Allow", "GET"),))
        return route(request)

    def _ready(self, _request: Request) -> Response:
        view = self._state.readiness()
        return json_response(HTTPStatus.OK if view["ready"] else HTTPStatus.SERVICE_UNAVAILABLE, view)

    def _sessions(self, request: Request) -> Response:
        limit = _parse_limit(request.query.get("limit", str(DEFAULT_SESSIONS)))
        if limit is None:
            return json_response(HTTPStatus.BAD_REQUEST,
                                 {"error": f"limit must be a number from 1 to {MAX_SESSIONS}"})
        try:
            found = scan_sessions(self._sessions_dir, limit=limit)
        except OSError as exc:
            return json_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                                 {"error": f"cannot list sessions in {self._sessions_dir}: "
                                           f"{exc.strerror or exc}"})
        # An unreadable session is listed with its reason ("unreadable"), never left out.
        rows: list[dict[str, Any]] = [
            {k: meta.get(k) for k in _SESSION_KEYS if k in meta or k != "unreadable"} for meta in found]
        return json_response(HTTPStatus.OK, {"sessions": rows})

    def _metrics(self, _request: Request) -> Response:
        return metrics_response(self._registry)


def metrics_response(registry: CollectorRegistry) -> Response:
    return Response(HTTPStatus.OK, generate_latest(registry), content_type=CONTENT_TYPE)


def _parse_limit(text: str) -> int | None:
    """``?limit=`` as a number from 1 to MAX_SESSIONS, or None."""
    if not _LIMIT_RE.fullmatch(text):  # fullmatch: "$" would accept a trailing newline
        return None
    value = int(text)
    return value if 0 < value <= MAX_SESSIONS else None
