"""The names a repair run gives its timeline stages and its per-component evidence files, declared once.

The pipeline writes ``<evidence>-<component>.json`` into the session directory and times its stages under
:class:`Stage` names; the report and ``bench/`` read the same names from here, so a renamed stage cannot
silently drop a section of the report.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Timeline stages of ``vmrepair run``, in the order the driver runs them."""

    CONNECT = "connect"
    DETECT = "detect"
    TRIAGE = "triage"
    IN_PLACE = "in-place"
    CAPTURE = "capture"
    SANDBOX = "sandbox"
    REPRODUCE = "reproduce"
    DIAGNOSE = "diagnose"
    #: One timeline entry per strategy tried: ``attempt-1``, ``attempt-2`` ...
    ATTEMPT = "attempt"
    PACKAGE = "package"
    BOOT_FALLBACK = "boot-fallback"
    APPLY = "apply"
    REBOOT = "reboot"
    REPAIR = "repair"
    CLEANUP = "cleanup"

    def numbered(self, position: int) -> str:
        return f"{self.value}-{position}"


class Evidence(StrEnum):
    """Per-component evidence files: ``<name>-<component>.json``."""

    TRIAGE = "triage"
    IN_PLACE = "in-place"
    REPRODUCE = "reproduce"
    DIAGNOSIS = "diagnosis"
    ATTEMPTS = "attempts"
    VALIDATION = "validation"
    FIX_PACKAGE = "fix-package"
    APPLY = "apply"
    TARGET_VALIDATION = "target-validation"
    REBOOT = "reboot"

    def file(self, component: str) -> str:
        """The name to pass to ``Session.write_json`` (without ``.json``)."""
        return f"{self.value}-{component}"

