"""``dpkg --verify`` answers of one host, reused while the packages' files are unchanged.

``--verify`` hashes every file of the packages it is given: under TCG the template's eight package
sets cost about 6 s of guest CPU per probe round (systemd alone 1.8 s), and a repair runs four full
rounds and a dozen stability rounds, most of them over files nothing touched. The agent's
``dpkg_fingerprint`` (one lstat per packaged file, milliseconds) says whether any of those files, their
``.list``/``.md5sums`` records or dpkg's status file changed: content cannot change without changing a
file's ctime, which nobody can set back. So an answer is reused only while the fingerprint taken just
before a later verify equals the one taken just before the answer's own verify, and is kept only when
no file changed within the last two seconds (a later change in the same clock tick could share its
ctime: "racy", as git calls its index entries). A reverted VM snapshot restores files and their
ctimes together, so the rule holds across reverts too.

Any doubt verifies: an agent that cannot fingerprint, a fingerprint that fails, a verify that failed or
whose output was cut.

With a :class:`~orchestrator.detect.answer_store.AnswerStore`, answers also outlive the Detector (the
next process of the same scope starts warm), under the same rule.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from orchestrator.detect.answer_store import AnswerStore
from orchestrator.errors import VmRepairError
from orchestrator.transport.base import CommandResult


@runtime_checkable
class Fingerprinting(Protocol):
    def dpkg_fingerprint(self, binaries: Sequence[str]) -> tuple[str, bool]:
        """Raises: AgentError, TransportError."""
        ...


class VerifyCache:
    """Per host (a Detector's lifetime): binaries -> (fingerprint, the verify answer it held for)."""

    def __init__(self, agent: Fingerprinting, store: AnswerStore | None = None) -> None:
        self._agent = agent
        self._store = store
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], tuple[str, CommandResult]] = {}
        self.reused = 0

    def verify(self, binaries: Sequence[str],
               run: Callable[[], CommandResult | None]) -> tuple[CommandResult | None, bool]:
        """The answer of ``run`` (``dpkg --verify -- binaries``), or the kept one when nothing it
        looked at changed; the flag says which.

        Raises: what ``run`` raises (CommandTimeoutError, TransportError)."""
        key = tuple(binaries)
        try:
            fingerprint, racy = self._agent.dpkg_fingerprint(key)
        except VmRepairError:
            return run(), False
        with self._lock:
            kept = self._answers.get(key)
        if not racy:
            held = kept[1] if kept is not None and kept[0] == fingerprint else \
                self._store.verify(key, fingerprint) if self._store is not None else None
            if held is not None:
                with self._lock:
                    self.reused += 1
                    self._answers[key] = (fingerprint, held)
                return held, True
        result = run()
        reliable = result is not None and result.exit_status in (0, 1) and not result.is_truncated
        with self._lock:
            if reliable and not racy and result is not None:
                self._answers[key] = (fingerprint, result)
            else:
                self._answers.pop(key, None)
        if reliable and not racy and result is not None and self._store is not None:
            self._store.keep_verify(key, fingerprint, result)
        return result, False
