"""Answers kept on disk, so that the next process starts warm: ``dpkg --verify`` and .deb member headers.

Both answers are expensive under TCG and rarely change, but a Detector lives short: every `vmrepair
run` is a new process, the daemon builds a Detector per detection cycle, and each troubleshooting VM
gets its own. So each of them hashed every watched package's files again (about 6 s of guest CPU per
round for the template's package sets), and decompressed the data.tar of every component's .deb again
(systemd's, udev's and rsyslog's about 1.3 s each; the agent answers one request at a time), although
nothing had changed.

- ``dpkg --verify`` (:class:`~orchestrator.detect.verify_cache.VerifyCache`): looked up by the package
  set *and* the fingerprint it was taken under, so it is used only where the fingerprint is equal,
  which means the same files with the same inode, size, mtime and ctime (the agent's
  ``op_dpkg_fingerprint``).
- ``deb_meta`` (:class:`~orchestrator.detect.pkgmeta.DebMetaCache`): looked up by the .deb's file name
  and the paths asked about. apt names a cached .deb by package, version and architecture, and the
  archive never ships two different files under one such name: the same rule the Detector's own cache
  follows within a run. "No such file" is never kept.

Troubleshooting VMs share one scope: they are clones of the same images, and a layer's VM simply has
other fingerprints than a template's. Each target has its own scope, so one host's first run is never
warmed by another's answers (a host's answers are untrusted, and may only fool that host itself).

It is only a cache: a file that cannot be read, parsed or written means no reuse, never an error, and
an entry that does not parse as the agent's answer would is ignored. Answers whose output was cut, or
larger than :data:`MAX_OUTPUT_BYTES`, are not kept.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.agent.api import DebMeta
from orchestrator.errors import StateError
from orchestrator.fsutil import atomic_write
from orchestrator.session.jsonfile import read_json_file
from orchestrator.transport.base import CommandResult

log = logging.getLogger(__name__)

#: Entries per scope (package sets x fingerprints, .debs x path lists); the least recently used go first.
MAX_ENTRIES = 256
#: Output kept per answer: a healthy host's verify answer is empty, a broken one's a few lines; a
#: .deb's headers for a component's paths a few kilobytes.
MAX_OUTPUT_BYTES = 64 * 1024
#: A store file larger than this is not read (it cannot have been written by this module).
MAX_FILE_BYTES = MAX_ENTRIES * (2 * MAX_OUTPUT_BYTES) * 2
#: The scope every troubleshooting VM shares.
SANDBOX_SCOPE = "sandbox"
FORMAT = 2


def target_scope(slug: str) -> str:
    return f"target:{slug}"


def for_target(state_dir: Path, slug: str) -> AnswerStore:
    """The store of one target (its slug, as sessions and the discovery cache name it)."""
    return AnswerStore(store_path(state_dir, target_scope(slug)))


def for_sandboxes(state_dir: Path) -> AnswerStore:
    """The store every troubleshooting VM shares."""
    return AnswerStore(store_path(state_dir, SANDBOX_SCOPE))


def store_path(state_dir: Path, scope: str) -> Path:
    """One file per scope; the name is a digest, so a target's slug never becomes a path."""
    digest = hashlib.sha256(scope.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return state_dir / "answer-cache" / f"{digest}.json"


def _verify_key(binaries: Sequence[str], fingerprint: str) -> str:
    return "\0".join((fingerprint, *binaries))


def _deb_key(deb: str, paths: Sequence[str]) -> str:
    """The file name and a digest of the path list (a component's paths can be thousands)."""
    listed = "\0".join(paths).encode("utf-8", "surrogateescape")
    return "\0".join(("deb", deb, hashlib.sha256(listed).hexdigest()))


class AnswerStore:
    """The kept answers of one scope, loaded once; thread-safe (probes run side by side)."""

    def __init__(self, path: Path, *, max_entries: int = MAX_ENTRIES) -> None:
        self.path = path
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] | None = None

    def verify(self, binaries: Sequence[str], fingerprint: str) -> CommandResult | None:
        """The kept ``dpkg --verify`` answer for ``binaries`` under ``fingerprint``, or None."""
        entry = self._get(_verify_key(binaries, fingerprint))
        if entry is None:
            return None
        try:
            return CommandResult(tuple(entry["argv"]), int(entry["exit_status"]),
                                 base64.b64decode(entry["stdout"], validate=True),
                                 base64.b64decode(entry["stderr"], validate=True))
        except (KeyError, TypeError, ValueError, binascii.Error):
            return None

    def keep_verify(self, binaries: Sequence[str], fingerprint: str, result: CommandResult) -> None:
        """Keep ``result`` (a complete answer); a failed write is logged and forgotten."""
        if result.is_truncated or len(result.stdout) + len(result.stderr) > MAX_OUTPUT_BYTES:
            return
        self._put(_verify_key(binaries, fingerprint), {
            "argv": list(result.argv), "exit_status": result.exit_status,
            "stdout": base64.b64encode(result.stdout).decode(),
            "stderr": base64.b64encode(result.stderr).decode()})

    def deb_meta(self, deb: str, paths: Sequence[str]) -> DebMeta | None:
        """The kept headers of ``paths`` in ``deb``, checked as the agent's answer is, or None."""
        from orchestrator.agent.wire import DebMetaWire  # pydantic, only where an entry is read

        entry = self._get(_deb_key(deb, paths))
        if entry is None:
            return None
        try:
            meta = DebMetaWire.model_validate(entry.get("answer")).to_api()
        except ValueError:   # pydantic's ValidationError: an entry this module did not write
            return None
        return meta if meta.answers_exactly(paths) else None

    def keep_deb_meta(self, deb: str, paths: Sequence[str], meta: DebMeta) -> None:
        """Keep the agent's (already checked) answer for ``paths`` in ``deb``."""
        answer = {"entries": [dataclasses.asdict(e) for e in meta.entries], "absent": list(meta.absent)}
        if len(json.dumps(answer)) > MAX_OUTPUT_BYTES:
            return
        self._put(_deb_key(deb, paths), {"answer": answer})

    def _get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._loaded().get(key)
            if entry is not None:
                entry["used"] = time.time()
            return entry

    def _put(self, key: str, entry: dict[str, Any]) -> None:
        with self._lock:
            entries = self._loaded()
            entries[key] = {**entry, "used": time.time()}
            for stale in sorted(entries, key=lambda k: float(entries[k].get("used", 0)))[:-self._max]:
                del entries[stale]
            data = json.dumps({"format": FORMAT, "entries": entries}, sort_keys=True).encode()
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                atomic_write(self.path, data)
            except (OSError, StateError) as exc:
                log.debug("cannot keep answers in %s: %s", self.path, exc)

    def _loaded(self) -> dict[str, dict[str, Any]]:
        """The file's entries, read on first use (the caller holds the lock)."""
        if self._entries is None:
            self._entries = {}
            try:
                # A link, a FIFO, a huge or deeply nested file: refused without waiting or reading it.
                doc = read_json_file(self.path, max_bytes=MAX_FILE_BYTES) if self.path.exists() else None
            except StateError as exc:
                log.debug("kept answers in %s not used: %s", self.path, exc.message)
                doc = None
            entries = doc.get("entries") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
            if isinstance(entries, dict):
                self._entries = {k: v for k, v in entries.items()
                                 if isinstance(k, str) and isinstance(v, dict)}
        return self._entries
