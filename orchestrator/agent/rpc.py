"""AgentRpc: one request to the agent and its answer, over any Transport; the plumbing under
:class:`~orchestrator.agent.client.RemoteAgent`.

The agent script (``remote/vmrepair_agent.py``, stdlib only) is uploaded once per client to
``<remote_dir>/agent-<sha12>.py`` and run as ``python3 -I -B <script> --serve``, one process answering
every request of this client (:mod:`orchestrator.agent.server`); transports that cannot keep a command
open run ``python3 -I -B <script>`` with one JSON request on stdin instead. Batched read-only requests
(:meth:`AgentRpc.prefetch`) are answered here too.

Separate from the client's typed methods because this part knows nothing of any operation: it moves a
request and returns the answer's ``result`` as untrusted JSON, size-capped and with refusals raised;
parsing that result with :mod:`orchestrator.agent.wire` and checking it against the request is the
client's job (helped by :meth:`AgentRpc._parse` and :meth:`AgentRpc._expect`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import posixpath
import tempfile
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.agent.api import AgentRead
from orchestrator.agent.errors import AgentFailedError
from orchestrator.agent.requests import (
    BATCHABLE_OPS,
    DEFAULT_REMOTE_DIR,
    MAX_BATCH,
    READ_ANSWER_CAP,
    SCRIPT_MISSING_EXIT,
    agent_script,
    cap_of,
    clean,
    request_key,
)
from orchestrator.agent.server import AgentServer, ServerGone
from orchestrator.agent.wire import FailedAnswer, render_errors
from orchestrator.batchscope import BatchStore
from orchestrator.errors import AgentError
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

W = TypeVar("W", bound=BaseModel)


class AgentRpc:
    """Runs the agent script on the transport's host; one instance uploads it at most once.

    Raises (from every request):
        AgentFailedError: the agent refused or failed the operation; ``code`` says why.
        AgentError: the agent crashed or answered something malformed or oversized.
        TransportError: running the agent or copying a file failed (the transport's errors).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = 120.0,
        remote_dir: str = DEFAULT_REMOTE_DIR,
        python: str = "python3",
    ) -> None:
        if not remote_dir.startswith("/") or posixpath.normpath(remote_dir) != remote_dir:
            raise ValueError(f"remote_dir must be an absolute, normalised path, got {remote_dir!r}")
        self.transport = transport
        self.timeout = timeout
        self.remote_dir = remote_dir
        self.python = python
        self._script = agent_script()
        self._sha256 = hashlib.sha256(self._script).hexdigest()
        self.script_path = f"{remote_dir}/agent-{self._sha256[:12]}.py"
        self._installed = False
        # Probes run concurrently (detect.detector.run_probes): one upload, not one per thread.
        self._install_lock = threading.Lock()
        self._prefetch_lock = threading.Lock()
        #: Answers of a batch (prefetch), by request, waiting for the request that uses them; one
        #: store per batch of probes (:meth:`prefetch_scope`), so batches run at once keep their own.
        self._prefetched: BatchStore[dict[str, list[object]]] = BatchStore(dict)
        #: Files this client left in remote_dir (pack archives, pushed uploads), for cleanup(); kept
        #: by RemoteAgent's pack, unpack and push, beside the rest of what the client owns on the host.
        self._leftovers: set[str] = set()
        #: One interpreter answering every request (about 0.5 s saved per call in a TCG guest).
        self._server = AgentServer(transport, [python, "-I", "-B", self.script_path])
        #: False for a :meth:`sharing` client: closing it leaves the server to its owner.
        self._owns_server = True

    def sharing(self, *, timeout: float) -> Self:
        """A client of the same host that sends its requests to this one's server (and its uploaded
        script), each with its own ``timeout``: the apply's longer one. A new client would start its
        own interpreter in the guest first (0.6 s under TCG). Its :meth:`close` leaves the server
        running for this client, which owns it."""
        twin = copy.copy(self)
        twin.timeout = timeout
        twin._owns_server = False
        return twin

    @property
    def host(self) -> str:
        return self.transport.host

    def install(self) -> None:
        """Create ``remote_dir`` (0700) and upload the script unless the host has it already."""
        with self._install_lock:
            self._install_locked()

    def _install_locked(self) -> None:
        if self._installed:
            return
        self.transport.check(["install", "-d", "-m", "0700", self.remote_dir], timeout=self.timeout)
        probe = self.transport.run(["sha256sum", "--", self.script_path], timeout=self.timeout,
                                   max_output=4096)
        if not (probe.succeeded and probe.stdout.split(b" ", 1)[0] == self._sha256.encode()):
            log.debug("uploading agent to %s:%s", self.host, self.script_path)
            with tempfile.TemporaryDirectory(prefix="vmrepair-agent-") as tmp:
                local = Path(tmp) / "vmrepair_agent.py"
                local.write_bytes(self._script)
                self.transport.put_file(local, self.script_path, mode=0o700)
        self._installed = True

    def prefetch(self, requests: Sequence[AgentRead]) -> None:
        """Answer several read-only requests with one agent call (one interpreter start in the guest
        instead of one each); each answer is handed out once, to the first identical request, and
        checked there exactly as a direct answer would be. A request never made again costs nothing;
        :meth:`discard_prefetched` drops what is left.

        Raises: AgentError, TransportError (the batch itself failed; nothing is kept).
        """
        wanted = [(op, args) for op, args in requests if op in BATCHABLE_OPS]
        store = self._prefetched.current()   # the batch's, taken in the caller's context
        # The agent answers at most MAX_BATCH requests a call: a host with many components asks in
        # several batches, still far fewer calls than one per probe.
        for start in range(0, len(wanted), MAX_BATCH):
            chunk = wanted[start:start + MAX_BATCH]
            body = [{"op": op, "args": args} for op, args in chunk]
            cap = min(READ_ANSWER_CAP, sum(cap_of(op, args) for op, args in chunk))
            result = self._call("batch", {"requests": body}, max_output=cap)
            answers = result.get("answers") if isinstance(result, dict) else None
            self._expect("batch", isinstance(answers, list) and len(answers) == len(body),
                         "not one answer per request")
            with self._prefetch_lock:
                for (op, args), answer in zip(chunk, answers or [], strict=True):
                    store.setdefault(request_key(op, args), []).append(answer)

    def prefetch_scope(self) -> AbstractContextManager[object]:
        """Answers prefetched inside this block serve only the requests made inside it (and in the
        threads it starts through ``run_probes``); they are dropped when it ends."""
        return self._prefetched.scope()

    def discard_prefetched(self) -> None:
        with self._prefetch_lock:
            self._prefetched.current().clear()

    def _take_prefetched(self, op: str, args: dict[str, Any]) -> object | None:
        with self._prefetch_lock:
            waiting = self._prefetched.current().get(request_key(op, args))
            return waiting.pop(0) if waiting else None

    def _call(self, op: str, args: dict[str, Any], *, max_output: int | None = None) -> Any:
        """Run one request and return its ``result`` (untrusted JSON, still to be validated)."""
        cap = max_output or cap_of(op, args)
        prefetched = self._take_prefetched(op, args)
        if prefetched is not None:
            # The same checks as a direct answer, the size cap included.
            if len(json.dumps(prefetched, ensure_ascii=True)) > cap:
                raise self._error(op, f"answer larger than the {cap} bytes allowed")
            return self._result(op, prefetched)
        self.install()
        request = json.dumps({"op": op, "args": args}, ensure_ascii=True).encode("ascii")
        if self._server.is_supported:
            served = self._served(op, request, cap)
            if served is not None:
                return self._decoded(op, served)
        argv = [self.python, "-I", "-B", self.script_path]
        result = self.transport.run(argv, stdin=request, timeout=self.timeout, max_output=cap)
        if result.exit_status == SCRIPT_MISSING_EXIT and self.script_path.encode() in result.stderr:
            # remote_dir is on /run, a tmpfs: the host rebooted since the upload. The script could not
            # even start, so nothing ran: upload again and run the request once more.
            log.info("agent script gone from %s (host rebooted?); uploading it again", self.host)
            self._installed = False
            self.install()
            result = self.transport.run(argv, stdin=request, timeout=self.timeout, max_output=cap)
        if result.stdout_dropped:
            raise self._error(op, f"answer larger than the {cap} bytes allowed")
        if result.exit_status != 0:
            tail = " | ".join(result.stderr_text.strip().splitlines()[-3:])
            hint = "; is python3 installed on the host?" if result.exit_status == 127 else ""
            raise self._error(op, f"agent exited {result.exit_status}{hint}: {clean(tail)}")
        return self._decoded(op, result.stdout)

    def _served(self, op: str, request: bytes, cap: int) -> bytes | None:
        """The answer from the long-lived agent server; None when this transport cannot hold one
        (the caller then runs one process for this request)."""
        for _ in range(2):
            try:
                return self._server.exchange(op, request, cap=cap, timeout=self.timeout)
            except ServerGone as gone:
                if not self._server.is_supported:
                    return None
                if "can't open file" not in gone.stderr:
                    continue  # it died between two requests (a revert, a reboot): start another
                # remote_dir is on /run, a tmpfs: the host rebooted since the upload.
                log.info("agent script gone from %s (host rebooted?); uploading it again", self.host)
                with self._install_lock:
                    self._installed = False
                self.install()
        raise self._error(op, "the agent server exited twice before reading the request")

    def _decoded(self, op: str, raw: bytes) -> Any:
        try:
            answer = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested, hostile JSON
            raise self._error(op, f"answer is not JSON: {clean(raw[:200].decode(errors='replace'))}"
                              ) from None
        return self._result(op, answer)

    def close(self) -> None:
        """Stop the agent server (the host's process ends when its stdin closes), unless this client
        only shares another's. Idempotent."""
        if self._owns_server:
            self._server.close()

    def _result(self, op: str, answer: object) -> Any:
        """The ``result`` of a parsed answer; a refusal becomes AgentFailedError."""
        if isinstance(answer, dict) and answer.get("ok") is False:
            failed = self._parse(op, FailedAnswer, answer)
            raise AgentFailedError(f"{self.host}: agent {op}: {clean(failed.error)}", host=self.host,
                                   op=op, code=failed.code)
        if not (isinstance(answer, dict) and answer.get("ok") is True and answer.keys() == {"ok", "result"}):
            raise self._error(op, "answer is not {ok: true, result: ...} nor {ok: false, error, code}")
        return answer["result"]

    def _error(self, op: str, detail: str) -> AgentError:
        return AgentError(f"{self.host}: agent {op}: {detail}", host=self.host)

    def _parse(self, op: str, model: type[W], value: object) -> W:
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            # clean(): the locations name the answer's keys, which are untrusted text too.
            raise self._error(op, f"malformed answer: {clean(render_errors(exc))}") from exc

    def _expect(self, op: str, condition: bool, detail: str) -> None:
        if not condition:
            raise self._error(op, f"inconsistent answer: {clean(detail)}")

