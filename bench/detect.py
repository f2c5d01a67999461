"""Benchmark detection: what discovery and the generic probes (issue 11) cost per detection round.

A script, not a test: it prints medians side by side with ratios in one run. Run as root after
`make setup`: `.venv/bin/python bench/detect.py [--rounds N]`. The target is a patient booted from the
default template, with a baseline recorded (so the baseline-relative probes run too).

Compared, on the same patient and connection:

- ``configured``: the probes of the configured components only (the shipped overrides nginx,
  sampleapp and boot, no discovery): about what detection covered before issue 11;
- ``resolved``: discovery (from its cache, as every round after the first) plus every probe of every
  discovered component and the host-wide probes;
- ``discovery``: a discovery that misses the cache (what the first round, or a round after a unit
  file or package changed, adds).

``--families`` adds one row per probe family (``dpkg``, ``unit``, ``config`` ...): that family's probes
alone, run as one batch the way validation runs them, so the rows say where a round's seconds go.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import time

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.baseline.record import record_baseline
from orchestrator.detect import Detector
from orchestrator.discover.resolve import resolve_for
from orchestrator.state.db import StateDb
from orchestrator.targets.spec import parse_target


def _forget(db: StateDb, slug: str) -> None:
    with db.write() as tx:
        tx.execute("DELETE FROM discovery WHERE target = ?", (slug,))


def _families(names: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in names:
        found.setdefault(name.partition(":")[0], []).append(name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--families", action="store_true", help="also time each probe family alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    app = App.from_env()
    name = f"bench-detect-{int(time.time()) % 100000}"
    slug = parse_target(f"vm:{name}").slug
    app.vms.up(name)
    try:
        with app.vms.transport(name) as ssh:
            ssh.check(["systemctl", "is-system-running", "--wait"], timeout=300)
            agent = RemoteAgent(ssh)
            resolution = resolve_for(app.settings, app.state, slug, ssh, agent)
            record_baseline(app.settings, slug, ssh, agent, resolution.watch)
            resolved = resolve_for(app.settings, app.state, slug, ssh, agent).watch
            configured = dataclasses.replace(app.settings.watch, resolved=True)
            samples: dict[str, list[float]] = {"configured": [], "resolved": [], "discovery": []}
            probes = {"configured": len(Detector(configured, ssh, agent).probe_names),
                      "resolved": len(Detector(resolved, ssh, agent).probe_names)}
            issues: dict[str, int] = {}
            for _ in range(args.rounds):
                for label in ("configured", "resolved"):
                    began = time.monotonic()
                    watch = configured if label == "configured" else \
                        resolve_for(app.settings, app.state, slug, ssh, agent).watch
                    report = Detector(watch, ssh, agent).run()
                    samples[label].append(time.monotonic() - began)
                    issues[label] = len(report.issues)
                if args.families:
                    detector = Detector(resolved, ssh, agent)
                    for family, names in _families(detector.probe_names).items():
                        began = time.monotonic()
                        detector.run_named(names)
                        samples.setdefault(f"  {family}:", []).append(time.monotonic() - began)
                        probes[f"  {family}:"] = len(names)
                _forget(app.state, slug)
                began = time.monotonic()
                resolve_for(app.settings, app.state, slug, ssh, agent)
                samples["discovery"].append(time.monotonic() - began)
            agent.cleanup()
    finally:
        app.vms.destroy(name)
        app.close()
    base = statistics.median(samples["configured"])
    print(f"detection on a template patient, {args.rounds} rounds, median seconds (TCG, 2 cores)")
    print(f"{'':12}{'probes':>8}{'median':>9}{'min':>8}{'max':>8}{'x configured':>14}{'issues':>8}")
    for label in ("configured", "resolved", "discovery", *sorted(k for k in samples if k.startswith(" "))):
        values = samples[label]
        median = statistics.median(values)
        count = str(probes.get(label, "-"))
        print(f"{label:12}{count:>8}{median:9.2f}{min(values):8.2f}{max(values):8.2f}"
              f"{median / base:14.2f}{issues.get(label, '-')!s:>8}")
    print(f"components: {len(resolved.components)} resolved, {len(app.settings.watch.components)} configured")


if __name__ == "__main__":
    main()
