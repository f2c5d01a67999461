"""The public fault catalog (``faults/catalog.yaml``): faults injected into a *patient* VM and repaired
end to end by the nightly suite, with a representative subset in ``make test``.

The catalog is data: each entry says how to break the patient (a bash script run as root in the guest),
what detection must report (component and issue kinds) and how to tell, independently of vmrepair, that
the patient is healthy (argv checks over SSH). This module only loads it strictly and runs those two
parts; the tests and ``scripts/catalog_table.py`` do the rest.

The scripts are this repository's own constant text, passed as one argv element to ``bash -c`` (never
spliced into a shell string with anything from the guest), and only ever run on a patient VM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.config.loading import load_model
from orchestrator.errors import ConfigError
from orchestrator.model import IssueKind
from orchestrator.resources import shipped_dir
from orchestrator.transport.base import Transport

CATALOG_FILE: Final = "catalog.yaml"
#: The catalog is hand-written; anything near this is not.
MAX_CATALOG_BYTES: Final = 256 * 1024
#: Bounds the injection script (a restart that hangs under TCG must not block a suite).
INJECT_TIMEOUT_S: Final = 300.0
CHECK_TIMEOUT_S: Final = 60.0

Family = Literal["revert", "config", "systemd", "state", "package", "data", "boot", "restart"]
FAMILIES: Final[tuple[str, ...]] = ("revert", "config", "systemd", "state", "package", "data", "boot",
                                    "restart")

#: Prepended to every ``inject`` script. ``break_unit U`` restarts U and waits (60 s at most) until it
#: is neither active nor activating: a unit that restarts on failure is left in its settled state.
PRELUDE: Final = r"""
break_unit() {
    systemctl restart -- "$1" >/dev/null 2>&1 || true
    for _ in $(seq 60); do
        case "$(systemctl is-active -- "$1" 2>/dev/null)" in
            active|activating|reloading) sleep 1 ;;
            *) return 0 ;;
        esac
    done
    echo "break_unit: $1 is still up after 60 s" >&2
    return 1
}
"""

_ID_RE = r"^[a-z0-9][a-z0-9-]{1,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectFile(_Strict):
    component: str = Field(min_length=1, max_length=64)
    kinds: list[IssueKind] = Field(min_length=1)


class FaultFile(_Strict):
    id: str = Field(pattern=_ID_RE)
    service: str = Field(min_length=1, max_length=64)
    template: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$")
    family: Family
    fault_class: int = Field(ge=1, le=99)
    description: str = Field(min_length=1, max_length=300)
    baseline: bool = True
    inject: str = Field(min_length=1, max_length=8192)
    expect: ExpectFile
    healthy: list[list[str]] = Field(min_length=1)
    subset: bool = False

    @field_validator("healthy")
    @classmethod
    def _argv(cls, value: list[list[str]]) -> list[list[str]]:
        for argv in value:
            if not argv or any(not arg or "\x00" in arg for arg in argv):
                raise ValueError("every check is a non-empty argv of non-empty strings")
        return value


class CatalogFile(_Strict):
    faults: list[FaultFile] = Field(min_length=1)

    @field_validator("faults")
    @classmethod
    def _unique(cls, value: list[FaultFile]) -> list[FaultFile]:
        seen: set[str] = set()
        for fault in value:
            if fault.id in seen:
                raise ValueError(f"fault id {fault.id!r} appears twice")
            seen.add(fault.id)
        return value


@dataclass(frozen=True)
class Fault:
    id: str
    service: str
    template: str
    family: str
    fault_class: int
    description: str
    baseline: bool
    script: str
    component: str
    kinds: frozenset[IssueKind]
    healthy: tuple[tuple[str, ...], ...]
    subset: bool


def default_catalog_path() -> Path:
    """Raises: ConfigError (see :func:`orchestrator.resources.shipped_dir`)."""
    return shipped_dir("faults") / CATALOG_FILE


def load_catalog(path: Path | None = None) -> tuple[Fault, ...]:
    """The faults of ``path`` (default: the shipped catalog), in file order.

    Raises:
        ConfigError: unreadable, malformed, larger than the cap, unknown keys, bad values or duplicate ids.
    """
    document = load_model(path or default_catalog_path(), CatalogFile, max_bytes=MAX_CATALOG_BYTES)
    return tuple(
        Fault(f.id, f.service, f.template, f.family, f.fault_class, f.description, f.baseline, f.inject,
              f.expect.component, frozenset(f.expect.kinds), tuple(tuple(a) for a in f.healthy), f.subset)
        for f in document.faults
    )


def find(faults: Sequence[Fault], fault_id: str) -> Fault:
    """Raises: ConfigError naming the known ids when ``fault_id`` is not one."""
    for fault in faults:
        if fault.id == fault_id:
            return fault
    raise ConfigError(f"unknown fault {fault_id!r}", remedy=f"choose from {', '.join(f.id for f in faults)}")


def inject(transport: Transport, fault: Fault) -> None:
    """Break the patient behind ``transport`` as ``fault`` says.

    Raises:
        CommandFailedError: the script failed (its stderr is in the message).
        TransportError: the patient cannot be reached.
    """
    transport.check(["bash", "-euo", "pipefail", "-c", PRELUDE + fault.script], timeout=INJECT_TIMEOUT_S)


def failing_checks(transport: Transport, fault: Fault) -> list[str]:
    """The ``healthy`` checks that fail on the patient now, each as ``argv -> exit N: output``.

    Raises:
        TransportError: the patient cannot be reached.
    """
    failed: list[str] = []
    for argv in fault.healthy:
        result = transport.run(list(argv), timeout=CHECK_TIMEOUT_S)
        if result.exit_status != 0:
            output = (result.stderr_text or result.stdout_text).strip()[-300:]
            failed.append(f"{' '.join(argv)} -> exit {result.exit_status}: {output}")
    return failed
