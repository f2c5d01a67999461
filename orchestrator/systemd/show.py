"""The one parser of ``systemctl show`` output, into typed :class:`UnitInfo` values.

``systemctl show --property=A,B -- U1 U2`` prints one block of ``KEY=VALUE`` lines per unit, in the
order asked, separated by blank lines. The text comes from the target and is untrusted: only the
properties asked for are kept, the first occurrence of a key wins, values are cleaned and capped,
and the named state fields hold a value only if it looks like something systemd would print.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.transport.output import cap_output

#: Longest property value kept; systemd's states are short, anything longer is noise or hostile.
#: Callers reading long values (ExecStart, dependency lists) pass a larger ``max_value``.
MAX_VALUE = 256
#: At most this much of the answer is read, and at most this many blocks (units) are returned.
MAX_SHOW_CHARS = 256 * 1024
MAX_UNITS = 512
#: A state word: ``active``, ``not-found``, ``enabled-runtime`` ...
_STATE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
#: A unit name: systemd allows ASCII letters, digits, ``:-_.\`` and ``@`` (systemd.unit(5)).
_UNIT_ID_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]{1,256}$")


@dataclass(frozen=True)
class UnitInfo:
    """What ``systemctl show`` said about one unit.

    The named fields are ``""`` when the property was not asked for, not answered, or not a value
    systemd would print. ``properties`` holds every asked property that was answered (the named
    ones included), cleaned and capped: it is what callers keep as evidence.
    """

    id: str = ""
    load_state: str = ""
    active_state: str = ""
    sub_state: str = ""
    unit_file_state: str = ""
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def is_loaded(self) -> bool:
        """systemd found a unit file (``LoadState`` is not ``not-found``, and was answered)."""
        return self.load_state not in ("", "not-found")

    @classmethod
    def from_properties(cls, properties: dict[str, str]) -> UnitInfo:
        """Build from already cleaned ``KEY=VALUE`` pairs, validating the named fields."""
        def state(key: str) -> str:
            value = properties.get(key, "")
            return value if _STATE_RE.match(value) else ""

        unit_id = properties.get("Id", "")
        return cls(
            id=unit_id if _UNIT_ID_RE.match(unit_id) else "",
            load_state=state("LoadState"),
            active_state=state("ActiveState"),
            sub_state=state("SubState"),
            unit_file_state=state("UnitFileState"),
            properties=dict(properties),
        )


def parse_show(text: str, properties: Sequence[str], *, max_value: int = MAX_VALUE) -> tuple[UnitInfo, ...]:
    """One :class:`UnitInfo` per block of ``text``, in order; keys not in ``properties`` are dropped.

    A block with no usable line still yields an (empty) UnitInfo, so callers can zip the result with
    the units they asked for. Never raises: malformed lines are skipped.
    """
    wanted = frozenset(properties)
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text[:MAX_SHOW_CHARS].splitlines():
        if not line.strip():
            current = None  # a blank line ends a unit's block; several in a row end it once
            continue
        if current is None:
            if len(blocks) >= MAX_UNITS:
                break
            current = {}
            blocks.append(current)
        key, sep, value = line.partition("=")
        if sep and key in wanted and key not in current:
            current[key] = cap_output(value.strip(), max_value)
    return tuple(UnitInfo.from_properties(block) for block in blocks)


def parse_show_one(text: str, properties: Sequence[str], *, max_value: int = MAX_VALUE) -> UnitInfo:
    """The first unit of :func:`parse_show` (an empty UnitInfo for an empty answer)."""
    units = parse_show(text, properties, max_value=max_value)
    return units[0] if units else UnitInfo()
