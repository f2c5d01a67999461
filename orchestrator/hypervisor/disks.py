"""qcow2 overlays (linked clones) on a read-only template base, created with qemu-img."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import HypervisorError, TransportError
from orchestrator.transport.base import Transport


def create_overlay(runner: Transport, base: Path, overlay: Path) -> None:
    """Create ``overlay`` backed by ``base``; the base is never written (7.5 ms vs ~0.5 s full copy).

    Raises:
        HypervisorError: qemu-img failed (disk full, missing base).
    """
    try:
        result = runner.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
            timeout=60,
        )
    except TransportError as exc:
        raise HypervisorError(f"cannot run qemu-img: {exc}", remedy="run `make setup`") from exc
    if not result.succeeded:
        raise HypervisorError(
            f"cannot create overlay {overlay} on {base}: {result.stderr_text.strip()}",
            remedy="check free space in the state directory",
        )
    overlay.chmod(0o600)
