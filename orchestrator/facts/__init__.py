"""Target facts: what a host is made of (OS, architecture, apt sources, packages, unit-file states,
unpackaged files its services run), read through its transport. The troubleshooting VM is built to
mirror them; the capture records them."""

from orchestrator.facts.model import AptSource, OsRelease, Package, TargetFacts, UnitFile, Unpackaged
from orchestrator.facts.read import application_roots, read_facts, read_unpackaged

__all__ = [
    "AptSource", "OsRelease", "Package", "TargetFacts", "UnitFile", "Unpackaged", "application_roots",
    "read_facts", "read_unpackaged",
]
