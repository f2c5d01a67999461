"""Helpers shared by the integration tests."""

from __future__ import annotations

import secrets
import subprocess


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def domain_exists(name: str) -> bool:
    """Ask libvirt through virsh, independently of the code under test."""
    out = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return f"vmrepair-{name}" in out
