"""Give the VM's dpkg the target's state for the components' packages: a package the target has left
unpacked, half-configured, half-installed or awaiting triggers (an interrupted upgrade, a failed
postinst) is in that state in the VM too, so the ``dpkg:`` probe fails there for the same reason and
``dpkg --configure`` is tried where it can do no harm. Without it the VM keeps the template's
"install ok installed" and the fault is never reproduced.

dpkg has no command that sets a package's state, so the ``Status:`` line of the package's stanza in the
VM's ``/var/lib/dpkg/status`` is rewritten, through the agent (crash-safe write, with the sha256 just
read as precondition). Only a package the VM has installed at the target's exact version and
architecture is touched (a host layer put it there); anything else is left alone and named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from orchestrator.agent.api import AgentApi
from orchestrator.capture.snapshot import Capture
from orchestrator.errors import AgentError
from orchestrator.model import Component
from orchestrator.session.store import Session

STATUS_FILE = "/var/lib/dpkg/status"
#: The status database of a Debian system is a few MB; far beyond that is not one to rewrite.
MAX_STATUS_BYTES = 64 * 1024 * 1024
#: dpkg's status abbreviation (second letter) -> the word its Status field carries.
STATE_WORDS = {"U": "unpacked", "F": "half-configured", "H": "half-installed", "W": "triggers-awaited",
               "t": "triggers-pending"}


def mirror_states(agent: AgentApi, capture: Capture, components: Sequence[Component],
                  session: Session) -> list[str]:
    """Set the components' packages to the target's unfinished states; returns what was done.

    Raises:
        TransportError: the VM stopped answering.
    """
    facts = capture.facts
    if facts is None:
        return []
    wanted = {p for c in components for p in c.packages}
    todo = {(p.name, p.arch): p for p in facts.packages
            if p.name in wanted and len(p.status) >= 2 and p.status[1] in STATE_WORDS}
    if not todo:
        return []
    try:
        data = agent.read_file(STATUS_FILE, max_bytes=MAX_STATUS_BYTES)
    except AgentError as exc:
        session.event("sandbox", "package_states_not_mirrored", error=exc.message)
        return []
    text = data.decode("utf-8", "surrogateescape")
    stanzas = text.split("\n\n")
    done: list[str] = []
    for index, stanza in enumerate(stanzas):
        fields = _fields(stanza)
        package = todo.get((fields.get("Package", ""), fields.get("Architecture", "")))
        if package is None or fields.get("Version") != package.version:
            continue
        word = STATE_WORDS[package.status[1]]
        lines = [f"Status: install ok {word}" if line.startswith("Status: ") else line
                 for line in stanza.split("\n")]
        stanzas[index] = "\n".join(lines)
        done.append(f"{package.name}:{package.arch} {package.version}: {word}, as on the target")
    left = [f"{name}:{arch}" for name, arch in todo if not any(d.startswith(f"{name}:{arch} ") for d in done)]
    if done:
        agent.write_file(STATUS_FILE, "\n\n".join(stanzas).encode("utf-8", "surrogateescape"), mode=0o644,
                         uid=0, gid=0, expect_sha256=hashlib.sha256(data).hexdigest())
    session.event("sandbox", "package_states_mirrored", changed=done,
                  not_in_vm_at_the_targets_version=left)
    return done


def _fields(stanza: str) -> dict[str, str]:
    """The single-line fields of one stanza (continuation lines start with a space and are skipped)."""
    found: dict[str, str] = {}
    for line in stanza.split("\n"):
        name, sep, value = line.partition(": ")
        if sep and not line.startswith((" ", "\t")):
            found.setdefault(name, value.strip())
    return found
