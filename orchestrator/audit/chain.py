"""Following the hash chain of an audit log, and acknowledging where it broke.

A *break* is a well-formed record whose ``seq`` is not the previous record's plus one, or whose
``prev`` is not the sha256 of the previous well-formed record's line. Lines that are not well-formed
records do not take part in the chain (the verifier reports them as corrupt lines): when the log
writer finds garbage at the end of the file it chains onto the last good record (see
:mod:`orchestrator.audit.log`), so quarantining that garbage later never breaks the chain.

A break is never "fixed" by re-hashing history: that would make tampering invisible. Instead
``vmrepair log repair`` appends a ``chain_break`` record (component ``audit``) whose
``details.breaks`` names every break by ``seq`` and ``line_sha256`` (the hash of the record found at
the break), plus line, offset and the expected values for people. A break is *acknowledged* when a
later ``chain_break`` record names it exactly; the verifier lists acknowledged breaks and passes. Any
other break, including new damage before an old ``chain_break`` record, still fails verification.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.audit.record import AUDIT_COMPONENT, CHAIN_BREAK_EVENT, GENESIS_HASH, AuditRecord

#: Breaks remembered while waiting for an acknowledgement; a log broken in more places than this is
#: not damage a repair should paper over (``overflow`` counts the rest, which can never pass).
MAX_PENDING = 10_000


@dataclass(frozen=True)
class ChainBreak:
    line: int
    offset: int
    seq: int
    expected_seq: int
    prev: str
    expected_prev: str
    line_sha256: str

    @property
    def key(self) -> tuple[int, str]:
        return self.seq, self.line_sha256

    def describe(self) -> str:
        why = []
        if self.seq != self.expected_seq:
            why.append(f"seq {self.seq} where {self.expected_seq} was expected")
        if self.prev != self.expected_prev:
            why.append("prev is not the hash of the record before (it was changed, or records between "
                       "were removed)")
        return f"line {self.line} (byte {self.offset}): {'; '.join(why)}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChainChecker:
    """Feed it the well-formed records of one file in order; it collects the breaks."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.last_hash = GENESIS_HASH
        self.acknowledged: list[ChainBreak] = []
        #: Breaks beyond MAX_PENDING: counted, never acknowledged.
        self.overflow = 0
        # Keyed like the acknowledgements; a list because a duplicated line breaks twice the same way.
        self._pending: dict[tuple[int, str], list[ChainBreak]] = {}
        self._pending_count = 0

    def feed(self, record: AuditRecord, *, line: int, offset: int) -> ChainBreak | None:
        """Check ``record`` against its predecessor; the break it makes, if any."""
        found = None
        if record.seq != self.last_seq + 1 or record.prev != self.last_hash:
            found = ChainBreak(line, offset, record.seq, self.last_seq + 1, record.prev, self.last_hash,
                               record.hash)
            if self._pending_count < MAX_PENDING:
                self._pending.setdefault(found.key, []).append(found)
                self._pending_count += 1
            else:
                self.overflow += 1
        # Resynchronise on the record, so one break is reported once and not for every later record.
        self.last_seq, self.last_hash = record.seq, record.hash
        if record.event == CHAIN_BREAK_EVENT and record.component == AUDIT_COMPONENT:
            self._acknowledge(record.details.get("breaks"))
        return found

    @property
    def unacknowledged(self) -> list[ChainBreak]:
        """Breaks no later chain_break record names, in file order (at most MAX_PENDING)."""
        return sorted((b for group in self._pending.values() for b in group), key=lambda b: b.line)

    @property
    def unacknowledged_count(self) -> int:
        return self._pending_count + self.overflow

    def _acknowledge(self, entries: object) -> None:
        if not isinstance(entries, list):
            return  # the writer's own chain_break records name damaged bytes, not breaks
        for entry in entries:
            seq, digest = (entry.get("seq"), entry.get("line_sha256")) if isinstance(entry, dict) else (0, 0)
            if not isinstance(seq, int) or not isinstance(digest, str):
                continue
            group = self._pending.pop((seq, digest), None)
            if group:
                self.acknowledged.extend(group)
                self._pending_count -= len(group)
