"""Benchmark the repair pipeline: MTTR (detect → verified on target) and time per stage, this checkout
side by side with an earlier commit, in one run.

A script, not a test. For each code version it boots one patient, and for each scenario reverts the
patient to its healthy snapshot, injects the fault and runs the full pipeline against it with --yes.
Scenarios: ``bare`` (no baseline: strategies that need one are skipped, as on a host vmrepair never
saw healthy) and ``demo`` (a baseline recorded first, as `make demo` does). The earlier version runs
from a `git worktree` of ``--before`` in a child process with that tree first on ``sys.path``; the
versions run one after the other, never at once, so they do not compete for the two cores.

Strategy ranking reads the outcomes of earlier runs (:mod:`orchestrator.state.outcomes`), so a
machine that has repaired the fault before tries the winner first. ``--history none`` (the default)
cuts that off in both versions: every run ranks as a machine's first repair does, whatever ran here
before (and the earlier version's runs cannot warm the later one's).

Run as root after `make setup`:
`.venv/bin/python bench/mttr.py [FAULT ...] [--stable-period S] [--before REF] [--scenarios bare,demo]
[--history none|kept] [--repeat N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAGES = ("connect", "detect", "triage", "in-place", "capture", "sandbox", "reproduce", "diagnose",
          "attempts", "package", "apply")
#: Targets of issue 9: the config fault with a 10 s stability period, and `make demo` at its defaults.
TARGETS_S = {"bare": 30.0, "demo": 40.0}


def stage_times(session_dir: Path) -> dict[str, float]:
    timeline = json.loads((session_dir / "timeline.json").read_text())
    out: dict[str, float] = {}
    for entry in timeline:
        name = "attempts" if entry["name"].startswith("attempt-") else entry["name"]
        out[name] = out.get(name, 0.0) + float(entry["duration_s"])
    return out


def detect_to_verified(session_dir: Path) -> float:
    """MTTR: start of detection to the end of the stage that verified the fix on the target (apply,
    or the reboot when the fix needs one; in-place for a restart)."""
    timeline = {e["name"]: e for e in json.loads((session_dir / "timeline.json").read_text())}
    start = dt.datetime.fromisoformat(timeline["detect"]["started_at"])
    last = timeline.get("reboot") or timeline.get("apply") or timeline["in-place"]
    end = dt.datetime.fromisoformat(last["started_at"]) + dt.timedelta(seconds=last["duration_s"])
    return (end - start).total_seconds()


def _vm_attempts(session_dir: Path) -> int:
    """Strategies run in the troubleshooting VM (a failed one costs a validation and a revert)."""
    return sum(1 for entry in json.loads((session_dir / "timeline.json").read_text())
               if entry["name"].startswith("attempt-") and float(entry["duration_s"]) > 0.05)


def _store_module() -> Any:
    """The module that keeps answers between processes in the version running (None: none does)."""
    import importlib
    for name in ("orchestrator.detect.answer_store", "orchestrator.detect.verify_store"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _sandbox_answers(state_dir: Path) -> int | None:
    """Answers (dpkg --verify; .deb headers where kept) the troubleshooting VMs start with (None: a
    version without the store). The first repair on a machine (or after a template rebuild) starts
    without them."""
    kept = _store_module()
    if kept is None:
        return None
    SANDBOX_SCOPE, store_path = kept.SANDBOX_SCOPE, kept.store_path
    try:
        return len(json.loads(store_path(state_dir, SANDBOX_SCOPE).read_bytes()).get("entries", {}))
    except (OSError, ValueError, AttributeError):
        return 0


def _forget_target_answers(state_dir: Path, slug: str) -> None:
    """Each scenario's patient starts as `make demo`'s fresh patient does: no kept answers of its own
    (the demo scenario reuses the bare one's patient, and must not start warm from its run)."""
    kept = _store_module()
    if kept is not None:   # else a version that keeps nothing between processes
        kept.store_path(state_dir, kept.target_scope(slug)).unlink(missing_ok=True)


def forget_history() -> None:
    """Rank as a machine's first repair does: no outcome of an earlier run steers this one. Outcomes
    are still recorded; only their reading is cut off, in this process."""
    from orchestrator.state.outcomes import OutcomeStore
    OutcomeStore.load = lambda self: {}                      # type: ignore[method-assign]
    OutcomeStore.load_for = lambda self, signature: {}       # type: ignore[method-assign]


def worker(faults: list[str], scenarios: list[str], stable_period: float,
           history: str = "none") -> list[dict[str, Any]]:
    """Run every (scenario, fault) with whichever `orchestrator` is first on sys.path."""
    if history == "none":
        forget_history()
    from orchestrator.agent.client import RemoteAgent
    from orchestrator.app import App
    from orchestrator.baseline.record import record_baseline
    from orchestrator.demo.faults import inject
    from orchestrator.discover.resolve import resolve_for
    from orchestrator.pipeline.run import RunOptions, run_repair
    from orchestrator.targets.spec import parse_target

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    app = App.from_env()
    kept = _sandbox_answers(app.settings.state_dir)
    name = f"bench-patient-{secrets.token_hex(2)}"
    app.vms.up(name)
    rows = []
    try:
        with app.vms.transport(name) as ssh:
            ssh.check(["systemctl", "is-system-running", "--wait"], timeout=180)
        app.vms.snapshot(name, "healthy")
        for scenario in scenarios:
            for fault in faults:
                app.vms.revert(name, "healthy")
                _forget_target_answers(app.settings.state_dir, parse_target(f"vm:{name}").slug)
                with app.vms.transport(name) as ssh:
                    if scenario == "demo":
                        # A fresh slug per run: a baseline from another patient of the same name
                        # would not be this patient's.
                        # As `make demo` and `vmrepair baseline` do: every component of the patient,
                        # discovered ones and the defaults of known daemons (nginx's /etc/nginx) included.
                        slug, agent = parse_target(f"vm:{name}").slug, RemoteAgent(ssh)
                        watch = resolve_for(app.settings, app.state, slug, ssh, agent).watch
                        record_baseline(app.settings, slug, ssh, agent, watch)
                    inject(ssh, fault)
                began = time.monotonic()
                outcome = run_repair(app, f"vm:{name}", RunOptions(
                    assume_yes=True, stable_period_s=stable_period, reboot_policy="automatic",
                    reboot_notice_s=0))
                whole = time.monotonic() - began
                session_dir = outcome.session.dir
                rows.append({"scenario": scenario, "fault": fault, "status": str(outcome.status),
                             "sandbox_answers": kept, "attempts": _vm_attempts(session_dir),
                             "mttr": detect_to_verified(session_dir), "run": whole,
                             "stages": stage_times(session_dir), "session": str(session_dir)})
                print(f"  {scenario}/{fault}: {outcome.status}, MTTR {rows[-1]['mttr']:.1f} s "
                      f"({session_dir})", file=sys.stderr, flush=True)
            if scenario == "demo":
                app.vms.revert(name, "healthy")
    finally:
        app.vms.destroy(name)
        app.close()
    return rows


def run_version(tree: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, str(HERE / "mttr.py"), "--worker", out.name,
                        "--stable-period", str(args.stable_period), "--scenarios", args.scenarios,
                        "--history", args.history,
                        *args.faults], cwd=tree, env=env, check=True)
        return list(json.loads(Path(out.name).read_text()))


def print_table(before: list[dict[str, Any]] | None, after: list[dict[str, Any]], args: argparse.Namespace,
                ref: str | None) -> None:
    print(f"\nper-stage seconds (TCG, 2 cores, stable period {args.stable_period:g} s in the VM, "
          f"outcome history: {args.history})")
    print(f"{'scenario/fault':<22}{'version':<9}{'status':<15}"
          + "".join(f"{s[:9]:>10}" for s in STAGES) + f"{'tries':>6}{'MTTR':>8}{'run':>8}")
    old = {(r["scenario"], r["fault"]): r for r in before or []}
    for row in after:
        key = (row["scenario"], row["fault"])
        for label, r in ((f"{ref}", old.get(key)), ("now", row)):
            if r is None:
                continue
            cells = "".join(f"{r['stages'].get(s, 0.0):>10.1f}" for s in STAGES)
            print(f"{key[0] + '/' + key[1]:<22}{label[:8]:<9}{r['status']:<15}{cells}"
                  f"{r.get('attempts', 0):>6}{r['mttr']:>8.1f}{r['run']:>8.1f}")
    print("MTTR = detect start -> fix verified on the target; run = whole `vmrepair run` incl. teardown; "
          "tries = strategies run in the VM")
    for label, rows in ((f"{ref}", before or []), ("now", after)):
        if rows and rows[0].get("sandbox_answers") is not None:
            print(f"{label}: the troubleshooting VMs started with {rows[0]['sandbox_answers']} kept "
                  "answers (0: as on a machine's first repair); each scenario's patient with none")
    print(f"\n{'scenario/fault':<22}{'MTTR before':>12}{'MTTR now':>10}{'speed-up':>10}{'target':>8}")
    for row in after:
        key = (row["scenario"], row["fault"])
        prior = old.get(key)
        target = TARGETS_S.get(row["scenario"]) if row["fault"] == "nginx-config" else None
        was = f"{prior['mttr']:.1f}" if prior else "-"
        ratio = f"x{prior['mttr'] / row['mttr']:.2f}" if prior else "-"
        goal = f"{target:.0f}" if target else "-"
        print(f"{key[0] + '/' + key[1]:<22}{was:>12}{row['mttr']:>10.1f}{ratio:>10}{goal:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faults", nargs="*", default=["nginx-config"])
    parser.add_argument("--stable-period", type=float, default=10.0)
    parser.add_argument("--scenarios", default="bare,demo")
    parser.add_argument("--before", metavar="REF", help="also run this commit, side by side")
    parser.add_argument("--cold-sandbox", action="store_true",
                        help="forget the troubleshooting VMs' kept answers first (a machine's "
                             "first repair)")
    parser.add_argument("--history", choices=("none", "kept"), default="none",
                        help="none (default): rank strategies as on a machine's first repair, so "
                             "both versions start alike; kept: with this machine's recorded outcomes")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="N interleaved rounds of both versions, then the median MTTR of each "
                             "(a noisy machine spreads single runs by several seconds)")
    parser.add_argument("--worker", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if args.worker:
        rows = worker(args.faults, scenarios, args.stable_period, args.history)
        Path(args.worker).write_text(json.dumps(rows))
        return
    if args.cold_sandbox:
        # Both versions' stores: --before runs an older tree that kept its answers in verify-cache/.
        from orchestrator.config.settings import load_settings
        from orchestrator.detect.answer_store import SANDBOX_SCOPE, store_path
        state_dir = load_settings().state_dir
        store_path(state_dir, SANDBOX_SCOPE).unlink(missing_ok=True)
        (state_dir / "verify-cache" / store_path(state_dir, SANDBOX_SCOPE).name).unlink(missing_ok=True)
    rounds: list[tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]] = []
    with contextlib.ExitStack() as stack:
        tree = stack.enter_context(_worktree(args.before)) if args.before else None
        for round_no in range(1, args.repeat + 1):
            # Interleaved (before, now, before, now ...): a machine that slows down over the run
            # slows both versions alike.
            before = None
            if tree is not None:
                print(f"round {round_no}: running {args.before} ...", file=sys.stderr, flush=True)
                before = run_version(tree, args)
            print(f"round {round_no}: running this checkout ...", file=sys.stderr, flush=True)
            rounds.append((before, run_version(ROOT, args)))
    for round_no, (before, after) in enumerate(rounds, start=1):
        if len(rounds) > 1:
            print(f"\n=== round {round_no} of {len(rounds)}")
        print_table(before, after, args, args.before)
    if len(rounds) > 1:
        print_medians(rounds, args.before)


@contextlib.contextmanager
def _worktree(ref: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vmrepair-bench-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), ref],
                       check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def print_medians(rounds: list[tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]],
                  ref: str | None) -> None:
    """Per scenario, the median MTTR of each version over the rounds, with every round's figure."""
    print(f"\nmedian over {len(rounds)} interleaved rounds")
    print(f"{'scenario/fault':<22}{'MTTR before':>12}{'MTTR now':>10}{'speed-up':>10}{'target':>8}  rounds")
    for row in rounds[0][1]:
        key = (row["scenario"], row["fault"])

        def runs(index: int, key: tuple[str, str] = key) -> list[float]:
            return [r["mttr"] for pair in rounds for r in (pair[index] or [])
                    if (r["scenario"], r["fault"]) == key]

        now, was = runs(1), runs(0)
        target = TARGETS_S.get(row["scenario"]) if row["fault"] == "nginx-config" else None
        before = f"{statistics.median(was):.1f}" if was else "-"
        ratio = f"x{statistics.median(was) / statistics.median(now):.2f}" if was else "-"
        listed = f"{ref}: {', '.join(f'{m:.1f}' for m in was)}; " if was else ""
        print(f"{key[0] + '/' + key[1]:<22}{before:>12}{statistics.median(now):>10.1f}{ratio:>10}"
              f"{(f'{target:.0f}' if target else '-'):>8}  {listed}now: {', '.join(f'{m:.1f}' for m in now)}")

if __name__ == "__main__":
    main()
