"""The signed fleet bundle: its format, canonical bytes, signing and opening.

A bundle file is an *envelope* ``{"key_id": ..., "payload": <base64>, "signature": <base64>}``. The
payload is the canonical JSON (sorted keys, no spaces, UTF-8) of :class:`BundlePayload`; the Ed25519
signature covers exactly those payload bytes, so a verifier never re-serializes before checking::

    {"format": 1, "key_id": "0123456789abcdef", "version": 1767225600,
     "created_at": "...Z", "expires_at": "...Z", "vmrepair_version": "0.1.0",
     "os_release": "debian 12 (bookworm)", "window": {"from": "...Z", "to": "...Z"},
     "strategies": [{"signature": {"fine": hex, "medium": hex, "coarse": hex, "medium_parts": [...]},
                     "strategy": "nginx-restore-baseline", "playbook": "nginx",
                     "stages": {"vm": [3, 4], "target": [1, 1], "reboot": [0, 0]},
                     "steps": [...]  # only for a generated strategy no shipped playbook defines
                    }]}

No host names: counts are keyed by fault signature and strategy, never by target. Pydantic is used
here only, at the edge (``extra="forbid"``); the size cap is checked before any parsing.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.errors import FleetError

FORMAT = 1
#: Checked on the raw bytes before JSON or base64 is parsed: a bundle is counts, not content.
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
MAX_STRATEGIES = 20_000
STAGES = ("vm", "target", "reboot")

HexId = Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")]
KeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
#: Strategy and playbook names as playbooks spell them (``generated:<family>`` for generated ones).
StrategyName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
PlaybookName = Annotated[str, Field(pattern=r"^(generated:)?[a-z0-9][a-z0-9_.-]{0,63}$")]
Timestamp = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")]
ShortText = Annotated[str, Field(max_length=200)]
Count = Annotated[int, Field(ge=0, le=10**9)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Window(_Strict):
    from_: Timestamp = Field(alias="from")
    to: Timestamp


class SignatureIds(_Strict):
    fine: HexId
    medium: HexId
    coarse: HexId
    #: The medium signature in words (component, issue kind, ...), for people reading an import.
    medium_parts: tuple[ShortText, ...] = Field(default=(), max_length=32)


class StageCounts(_Strict):
    vm: tuple[Count, Count] = (0, 0)
    target: tuple[Count, Count] = (0, 0)
    reboot: tuple[Count, Count] = (0, 0)

    @field_validator("vm", "target", "reboot")
    @classmethod
    def _at_most_tries(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] > value[1]:
            raise ValueError(f"{value[0]} successes out of {value[1]} tries")
        return value


class BundleStrategy(_Strict):
    signature: SignatureIds
    strategy: StrategyName
    playbook: PlaybookName
    stages: StageCounts
    #: Playbook-form steps of a generated strategy; None (omitted) for one a shipped playbook defines.
    steps: tuple[dict[str, Any], ...] | None = Field(default=None, max_length=200)


class BundlePayload(_Strict):
    format: int
    key_id: KeyId
    version: int = Field(ge=1, le=2**62)
    created_at: Timestamp
    expires_at: Timestamp
    vmrepair_version: ShortText
    os_release: ShortText
    window: Window
    strategies: tuple[BundleStrategy, ...] = Field(max_length=MAX_STRATEGIES)


class Envelope(_Strict):
    key_id: KeyId
    payload: str
    signature: str


def canonical(payload: BundlePayload) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8, absent steps left out."""
    data = payload.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(payload_bytes: bytes, signature: bytes, kid: str) -> bytes:
    """The envelope file's bytes (itself canonical, so one bundle has one form)."""
    envelope = {"key_id": kid, "payload": base64.b64encode(payload_bytes).decode(),
                "signature": base64.b64encode(signature).decode()}
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def open_envelope(data: bytes) -> tuple[Envelope, bytes, bytes]:
    """(envelope, payload bytes, signature) of a bundle file, nothing verified yet.

    Raises:
        FleetError: too large, or not an envelope.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise FleetError(f"bundle refused: too large ({len(data)} bytes, at most {MAX_BUNDLE_BYTES})",
                         remedy="a bundle holds counts only; ask its exporter for a shorter --since")
    try:
        envelope = Envelope.model_validate_json(data)
        payload = base64.b64decode(envelope.payload, validate=True)
        signature = base64.b64decode(envelope.signature, validate=True)
    except (ValidationError, binascii.Error, ValueError) as exc:
        raise FleetError(f"bundle refused: malformed envelope ({_first_error(exc)})",
                         remedy="the file is damaged or not a vmrepair fleet bundle; fetch it again") from exc
    return envelope, payload, signature


def parse_payload(payload: bytes) -> BundlePayload:
    """The payload's model, once its signature has been verified.

    Raises:
        FleetError: not JSON, a format this vmrepair does not know, or fields that do not validate.
    """
    try:
        raw = json.loads(payload)
    except ValueError as exc:
        raise FleetError(f"bundle refused: payload is not JSON ({exc})",
                         remedy="the exporter wrote a broken bundle; export it again") from exc
    found = raw.get("format") if isinstance(raw, dict) else None
    if found != FORMAT:
        raise FleetError(f"bundle refused: unknown format {found!r} (this vmrepair reads format {FORMAT})",
                         remedy="upgrade vmrepair on this host, or export with the same vmrepair version")
    try:
        return BundlePayload.model_validate(raw)
    except ValidationError as exc:
        raise FleetError(f"bundle refused: invalid payload ({_first_error(exc)})",
                         remedy="the exporter wrote a bundle this vmrepair cannot read; compare versions"
                         ) from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        return f"{where}: {first['msg']}"
    return str(exc)[:200]
