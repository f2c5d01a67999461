"""Trace one repair: every guest command, agent call, libvirt call and session event of one `vmrepair
run` against a freshly broken patient, with monotonic offsets, durations and thread names.

A script, not a test: it is how the gaps that bench/mttr.py reports as stage totals are found. It
boots a patient, injects FAULT (default nginx-config, no baseline: the ``bare`` scenario of
bench/mttr.py) and prints one line per traced call, sorted by start, plus the session's stages.

Run as root after `make setup`: `.venv/bin/python bench/trace.py [FAULT] [--baseline] [--min-ms N]`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: The start of the traced run (a list so that main() can set it without `global`).
START = [time.monotonic()]
EVENTS: list[tuple[float, float, str, str]] = []   # (start, duration, thread, what)
_LOCK = threading.Lock()


def _note(start: float, what: str) -> None:
    with _LOCK:
        EVENTS.append((start - START[0], time.monotonic() - start, threading.current_thread().name, what))


def _wrap(owner: Any, name: str, label: Callable[..., str]) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def traced(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            _note(start, label(*args, **kwargs)[:160])

    setattr(owner, name, traced)


def instrument() -> None:
    from orchestrator.agent.client import RemoteAgent
    from orchestrator.hypervisor.connection import DomainHandle, LibvirtConnection
    from orchestrator.session.store import Session
    from orchestrator.transport.ssh import ParamikoTransport
    from orchestrator.validate.validator import Validator

    _wrap(ParamikoTransport, "run", lambda self, argv, *a, **k: f"ssh :{self.port} " + " ".join(argv))
    _wrap(ParamikoTransport, "put_file", lambda self, local, remote, **k: f"put {remote}")
    _wrap(RemoteAgent, "_call", lambda self, op, args, **k: f"agent {op} {sorted(args)}")
    _wrap(RemoteAgent, "prefetch", lambda self, requests: f"agent prefetch x{len(requests)}")
    _wrap(Validator, "validate", lambda self, issue, component, _b: f"validate {component.name}")
    for name in ("start", "force_stop", "undefine", "snapshot_create", "snapshot_revert", "snapshot_delete"):
        _wrap(DomainHandle, name, lambda self, *a, _n=name, **k: f"libvirt {_n} {a[:1]}")
    for name in ("define", "restore_state"):
        _wrap(LibvirtConnection, name, lambda self, *a, _n=name, **k: f"libvirt {_n}")
    _wrap(Session, "event", lambda self, stage, event, **d: f"event {stage}/{event}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fault", nargs="?", default="nginx-config")
    parser.add_argument("--baseline", action="store_true", help="record a baseline first (demo)")
    parser.add_argument("--stable-period", type=float, default=10.0)
    parser.add_argument("--min-ms", type=float, default=50.0, help="hide calls shorter than this")
    parser.add_argument("--history", choices=("none", "kept"), default="none",
                        help="outcome history the ranking reads (see bench/mttr.py)")
    args = parser.parse_args()

    from orchestrator.agent.client import RemoteAgent
    from orchestrator.app import App
    from orchestrator.baseline.record import record_baseline
    from orchestrator.demo.faults import inject
    from orchestrator.detect.answer_store import store_path, target_scope
    from orchestrator.discover.resolve import resolve_for
    from orchestrator.pipeline.run import RunOptions, run_repair
    from orchestrator.targets.spec import parse_target

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    app = App.from_env()
    name = f"trace-patient-{secrets.token_hex(2)}"
    app.vms.up(name)
    try:
        with app.vms.transport(name) as ssh:
            ssh.check(["systemctl", "is-system-running", "--wait"], timeout=180)
            slug = parse_target(f"vm:{name}").slug
            store_path(app.settings.state_dir, target_scope(slug)).unlink(missing_ok=True)
            if args.baseline:
                agent = RemoteAgent(ssh)
                record_baseline(app.settings, slug, ssh, agent,
                                resolve_for(app.settings, app.state, slug, ssh, agent).watch)
            inject(ssh, args.fault)
        instrument()
        if args.history == "none":
            from mttr import forget_history
            forget_history()
        START[0] = time.monotonic()
        outcome = run_repair(app, f"vm:{name}", RunOptions(
            assume_yes=True, stable_period_s=args.stable_period, reboot_policy="automatic",
            reboot_notice_s=0))
    finally:
        app.vms.destroy(name)
        app.close()
    for start, took, thread, what in sorted(EVENTS):
        if took * 1000 >= args.min_ms or what.startswith("event"):
            print(f"{start:7.2f} {took:6.2f} {thread[:14]:<14} {what}")
    print(f"\n{outcome.status}: {outcome.session.dir}")
    for line in (outcome.session.dir / "timeline.json").read_text().splitlines()[:1]:
        print(line[:2000])


if __name__ == "__main__":
    main()
