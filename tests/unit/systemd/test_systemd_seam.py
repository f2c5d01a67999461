"""Every systemctl argv is built in orchestrator.systemd, which puts ``--`` before unit names (issue 13,
item 9): a unit named ``-x`` can never reach systemctl as an option."""

from __future__ import annotations

import re
from pathlib import Path

import orchestrator
from orchestrator.systemd import argv

PACKAGE = Path(orchestrator.__file__).parent
#: Guest-side scripts injected by the demo (fixed unit names, run inside a disposable VM).
GUEST_SCRIPTS = {PACKAGE / "demo" / "faults.py"}
_SYSTEMCTL_ARGV = re.compile(r"""[\[(]\s*["']systemctl["']""")


def test_no_systemctl_argv_is_built_outside_the_systemd_package() -> None:
    offenders = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
                 if path.parent != PACKAGE / "systemd" and path not in GUEST_SCRIPTS
                 and _SYSTEMCTL_ARGV.search(path.read_text())]
    assert offenders == []


def test_unit_names_always_follow_a_double_dash() -> None:
    for built in (argv.unit_argv("restart", "-x"), argv.is_active_argv("-x", quiet=True),
                  argv.show_argv("-x", "-y", properties=["ActiveState"])):
        assert built[built.index("--") + 1] == "-x"
