"""Exporting: this host's strategy outcomes, counted per fault signature, as a signed bundle.

Only what another host can use leaves: (signature ids, strategy, playbook, per-stage successes and
tries) of every strategy tried (a failure demotes it there as it does here), plus the steps of a
generated strategy the exporting host was given them for. Never a target or host name: a strategy
whose name, steps or signature words mention one is left out (and listed), and the finished payload
is checked once more before it is signed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator import __version__
from orchestrator.errors import FleetError
from orchestrator.fleet.bundle import (
    STAGES,
    BundlePayload,
    BundleStrategy,
    SignatureIds,
    StageCounts,
    Window,
    canonical,
    seal,
)
from orchestrator.fleet.keys import SigningKey
from orchestrator.fleet.trust import next_export_version
from orchestrator.playbooks.model import Playbook
from orchestrator.state.db import StateDb
from orchestrator.timestamps import format_timestamp, parse_timestamp


@dataclass(frozen=True)
class OutcomeRow:
    strategy: str
    succeeded: bool
    stage: str
    at: str
    signature_fine: str
    signature_medium: str
    signature_coarse: str


@dataclass(frozen=True)
class StrategyInfo:
    """What the bundle says about a strategy besides its counts."""

    playbook: str
    #: Playbook-form steps, only for a generated strategy that no shipped playbook defines.
    steps: tuple[dict[str, Any], ...] | None = None


#: Names of strategies derived from evidence (orchestrator.repair.generate), and the playbook a bundle
#: names for them when their steps are not carried.
GENERATED_PREFIX = "gen-"
GENERATED_PLAYBOOK = "generated"
#: Strategy name -> its info; None for a strategy this host no longer knows (left out of the bundle).
Describe = Callable[[str], StrategyInfo | None]


@dataclass(frozen=True)
class ExportResult:
    data: bytes
    payload: BundlePayload
    #: Strategies not exported, each with the reason.
    left_out: tuple[str, ...] = field(default=())


def rows_for_export(db: StateDb, since: dt.datetime | None) -> list[OutcomeRow]:
    """Outcome rows at or after ``since`` (all when None) that carry a fault signature.

    Rows recorded before signatures existed have none and cannot be keyed: they are skipped.

    Raises:
        StateError / StateCorruptError: from the store.
    """
    rows = db.query("SELECT strategy, succeeded, stage, at, signature_fine, signature_medium,"
                    " signature_coarse FROM outcomes ORDER BY id")
    found: list[OutcomeRow] = []
    for row in rows:
        # Older rows hold other timestamp forms (+00:00, fractions): compare moments, not text.
        moment = parse_timestamp(str(row["at"]))
        if since is not None and (moment is None or moment < since):
            continue
        ids = (row["signature_fine"], row["signature_medium"], row["signature_coarse"])
        if not all(ids):
            continue
        found.append(OutcomeRow(str(row["strategy"]), bool(row["succeeded"]), str(row["stage"]),
                                str(row["at"]), *(str(i) for i in ids)))
    return found


def catalog_describer(playbooks: Sequence[Playbook],
                      generated: dict[str, StrategyInfo] | None = None) -> Describe:
    """A :data:`Describe` from the playbook catalog, plus ``generated`` strategies (name -> info with
    their playbook-form steps) for those the catalog does not define."""
    known = {s.name: StrategyInfo(p.name) for p in playbooks for s in p.strategies}
    extra = generated or {}

    def describe(name: str) -> StrategyInfo | None:
        info = known.get(name) or extra.get(name)
        if info is None and name.startswith(GENERATED_PREFIX):
            # Its counts travel without steps: a host that meets the same fault derives the same
            # strategy, under the same name, from its own evidence (names are made from the subject,
            # orchestrator/repair/generate/proposal.py), and the counts then rank it there.
            info = StrategyInfo(GENERATED_PLAYBOOK)
        return info

    return describe


def host_names(db: StateDb) -> set[str]:
    """Names that must not leave in a bundle: this host's name and every target outcomes recorded."""
    names = {socket.gethostname(), socket.gethostname().split(".")[0]}
    for row in db.query("SELECT DISTINCT target FROM outcomes WHERE target != ''"):
        text = str(row[0])
        names.add(text)
        # vm:NAME, ssh://user@host:port: the host (or VM) part alone would identify it too, and so
        # would a host's first DNS label (web1 of web1.example.org).
        parts = re.split(r"[:/@\[\]]+", text)
        names.update(parts)
        names.update(part.split(".")[0] for part in parts)
    # Shorter names and these words would match what every bundle holds ("vm" is a stage); none
    # identifies a host.
    return {n for n in names if len(n) >= 3 and n.lower() not in {"local", "localhost", "ssh", "root"}}


def _mention_finder(names: Iterable[str]) -> Callable[[str], list[str]]:
    """A function giving the ``names`` a text mentions as whole words (case-insensitive): "web1" is
    found in ``/etc/web1.conf`` but not in a hex id that happens to contain those letters."""
    wanted = sorted({n.lower() for n in names})
    patterns = [(n, re.compile(rf"(?<![a-z0-9]){re.escape(n)}(?![a-z0-9])")) for n in wanted]
    return lambda text: [n for n, pattern in patterns if pattern.search(text.lower())]


def build_payload(rows: Iterable[OutcomeRow], *, key: SigningKey, version: int, now: dt.datetime,
                  since: dt.datetime | None, expires: dt.timedelta, os_release: str,
                  describe: Describe, medium_parts: Callable[[str], tuple[str, ...]] | None = None,
                  forbidden: Iterable[str] = ()) -> tuple[BundlePayload, tuple[str, ...]]:
    """The payload and the strategies left out (with why).

    Raises:
        FleetError: a host name still appears in the finished payload (nothing is signed).
    """
    counts: dict[tuple[str, str, str, str], dict[str, list[int]]] = {}
    earliest: dt.datetime | None = None
    for row in rows:
        if row.stage not in STAGES:
            continue
        group = (row.signature_fine, row.signature_medium, row.signature_coarse, row.strategy)
        stage = counts.setdefault(group, {s: [0, 0] for s in STAGES})[row.stage]
        stage[0] += int(row.succeeded)
        stage[1] += 1
        moment = parse_timestamp(row.at)
        if moment is not None and (earliest is None or moment < earliest):
            earliest = moment
    mentions = _mention_finder(forbidden)
    strategies: list[BundleStrategy] = []
    left_out: list[str] = []
    # Failures travel too: they are what demotes a strategy on the importing host (a bundle of
    # winners only would leave it trying the same losers first, which a real-VM run showed).
    for (fine, medium, coarse, name), stages in sorted(counts.items()):
        info = describe(name)
        if info is None:
            left_out.append(f"{name}: no playbook of this host defines it any more")
            continue
        item = BundleStrategy(
            signature=SignatureIds(fine=fine, medium=medium, coarse=coarse,
                                   medium_parts=medium_parts(medium) if medium_parts else ()),
            strategy=name, playbook=info.playbook,
            stages=StageCounts(**{s: (c[0], c[1]) for s, c in stages.items()}), steps=info.steps)
        if mentions(json.dumps(item.model_dump(mode="json", by_alias=True))):
            left_out.append(f"{name}: its name, steps or signature mention a host name")
            continue
        strategies.append(item)
    start = since or earliest or now
    payload = BundlePayload(
        format=1, key_id=key.key_id, version=version, created_at=format_timestamp(now),
        expires_at=format_timestamp(now + expires), vmrepair_version=__version__, os_release=os_release,
        window=Window.model_validate({"from": format_timestamp(start), "to": format_timestamp(now)}),
        strategies=tuple(strategies))
    # os_release is read from /etc/os-release, never from a target: a host named "debian" is no leak.
    leaked = mentions(canonical(payload.model_copy(update={"os_release": ""})).decode())
    if leaked:
        raise FleetError(f"export refused: the bundle would name host(s) {', '.join(leaked)}",
                         remedy="report this as a bug; nothing was written")
    return payload, tuple(left_out)


#: The readable parts of a medium-level signature, in the order a bundle lists them.
MEDIUM_PART_KEYS = ("component_kind", "issue_kind", "cause")


def recorded_medium_parts(db: StateDb) -> Callable[[str], tuple[str, ...]]:
    """Medium signature id -> its readable parts (component kind, issue kind, cause), from the parts
    the outcomes were recorded with, so an importing operator can read what a count is about. An id
    without recorded parts gives ``()``.

    Raises:
        StateError / StateCorruptError: from the store.
    """
    known: dict[str, tuple[str, ...]] = {}
    for medium, raw in db.query("SELECT signature_medium, MAX(signature_parts) FROM outcomes"
                                " WHERE signature_medium != '' GROUP BY signature_medium"):
        try:
            parts = json.loads(str(raw))
        except ValueError:
            continue   # a row edited by hand: its counts still travel, unnamed
        if isinstance(parts, dict) and all(isinstance(parts.get(k), str) for k in MEDIUM_PART_KEYS):
            known[str(medium)] = tuple(str(parts[k]) for k in MEDIUM_PART_KEYS)
    return lambda medium: known.get(medium, ())


def export_bundle(db: StateDb, key: SigningKey, *, since: dt.datetime | None, expires: dt.timedelta,
                  os_release: str, describe: Describe,
                  medium_parts: Callable[[str], tuple[str, ...]] | None = None,
                  now: dt.datetime | None = None) -> ExportResult:
    """Build, version and sign a bundle of ``db``'s outcomes (the version is recorded first, so a
    version is never used twice even when writing the file fails).

    Raises:
        FleetError: as :func:`build_payload`.
        StateError / StateCorruptError: from the store.
    """
    now = now or dt.datetime.now(dt.UTC)
    medium_parts = medium_parts or recorded_medium_parts(db)
    rows = rows_for_export(db, since)
    forbidden = host_names(db)
    version = next_export_version(db, key.key_id)
    payload, left_out = build_payload(rows, key=key, version=version, now=now, since=since,
                                      expires=expires, os_release=os_release, describe=describe,
                                      medium_parts=medium_parts, forbidden=forbidden)
    body = canonical(payload)
    return ExportResult(seal(body, key.sign(body), key.key_id), payload, left_out)
