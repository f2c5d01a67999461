"""Benchmark the repair pipeline: time per stage and MTTR (detect → verified on target) per fault.

A script, not a test. Boots one patient, and for each fault reverts it to its healthy snapshot,
injects the fault and runs the full pipeline against it with --yes. Run as root after `make setup`:
`.venv/bin/python bench/mttr.py [FAULT ...] [--stable-period S]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import secrets
import time
from pathlib import Path

from orchestrator.app import App
from orchestrator.demo.faults import FAULTS, inject
from orchestrator.pipeline.run import RunOptions, run_repair

STAGES = ("connect", "detect", "triage", "in-place", "capture", "sandbox", "reproduce", "diagnose",
          "attempts", "package", "apply")
TARGET_CONFIG_MTTR_S = 60.0


def stage_times(session_dir: Path) -> dict[str, float]:
    timeline = json.loads((session_dir / "timeline.json").read_text())
    out: dict[str, float] = {}
    for entry in timeline:
        name = "attempts" if entry["name"].startswith("attempt-") else entry["name"]
        out[name] = out.get(name, 0.0) + float(entry["duration_s"])
    return out


def detect_to_verified(session_dir: Path) -> float:
    """MTTR as the issue defines it: start of detection to the end of the apply stage, which ends
    with the fix validated on the target (teardown of the VM and the report come after)."""
    timeline = {e["name"]: e for e in json.loads((session_dir / "timeline.json").read_text())}
    start = dt.datetime.fromisoformat(timeline["detect"]["started_at"])
    last = timeline.get("apply") or timeline["in-place"]
    end = dt.datetime.fromisoformat(last["started_at"]) + dt.timedelta(seconds=last["duration_s"])
    return (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("faults", nargs="*", default=list(FAULTS))
    parser.add_argument("--stable-period", type=float, default=10.0)
    args = parser.parse_args()
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    app = App.from_env()
    name = f"bench-patient-{secrets.token_hex(2)}"
    app.vms.up(name)
    rows = []
    try:
        with app.vms.transport(name) as ssh:
            ssh.check(["systemctl", "is-system-running", "--wait"], timeout=180)
        app.vms.snapshot(name, "healthy")
        for fault in args.faults:
            app.vms.revert(name, "healthy")
            with app.vms.transport(name) as ssh:
                inject(ssh, fault)
            began = time.monotonic()
            outcome = run_repair(app, f"vm:{name}", RunOptions(assume_yes=True,
                                                               stable_period_s=args.stable_period))
            whole = time.monotonic() - began
            mttr = detect_to_verified(outcome.session.dir)
            rows.append((fault, str(outcome.status), stage_times(outcome.session.dir), mttr, whole))
            print(f"{fault}: {outcome.status}, MTTR {mttr:.1f} s, whole run {whole:.1f} s "
                  f"({outcome.session.dir})", flush=True)
    finally:
        app.vms.destroy(name)
        app.close()
    print(f"\nper-stage seconds (TCG, 2 cores, stable period {args.stable_period:.0f} s in the VM)")
    header = (f"{'fault':<14}{'status':<10}" + "".join(f"{s[:9]:>10}" for s in STAGES)
              + f"{'MTTR':>8}{'run':>8}")
    print(header)
    for fault, status, times, mttr, whole in rows:
        cells = "".join(f"{times.get(s, 0.0):>10.1f}" for s in STAGES)
        print(f"{fault:<14}{status:<10}{cells}{mttr:>8.1f}{whole:>8.1f}")
    print("MTTR = detect start -> fix verified on the target; run = whole `vmrepair run` incl. teardown")
    for fault, _status, _times, mttr, _whole in rows:
        if fault == "nginx-config":
            print(f"\nconfig fault MTTR {mttr:.1f} s vs target {TARGET_CONFIG_MTTR_S:.0f} s: "
                  f"x{TARGET_CONFIG_MTTR_S / mttr:.2f} of budget headroom")


if __name__ == "__main__":
    main()
