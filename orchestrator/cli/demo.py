"""`vmrepair demo [FAULT]`: boot a patient, baseline it, break it, repair it end to end, clean up."""

from __future__ import annotations

import argparse
import secrets
import time

from orchestrator.app import App
from orchestrator.cli.args import seconds
from orchestrator.cli.output import info
from orchestrator.cli.run import MAX_STABLE_PERIOD_S, print_outcome
from orchestrator.demo.faults import FAULTS, inject
from orchestrator.pipeline.run import RunOptions, run_repair
from orchestrator.systemd import is_system_running_argv
from orchestrator.targets.spec import parse_target


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="repair a deliberately broken patient VM end to end")
    demo.add_argument("fault", nargs="?", default="nginx-config", choices=sorted(FAULTS))
    demo.add_argument("--variant", help="which variant of the fault to inject")
    demo.add_argument("--no-baseline", action="store_true",
                      help="do not record a baseline before breaking the patient")
    demo.add_argument("--keep", action="store_true", help="keep the patient VM afterwards")
    demo.add_argument("--stable-period", type=seconds(0, MAX_STABLE_PERIOD_S), default=10.0,
                      metavar="SECONDS")
    demo.set_defaults(handler=cmd_demo, takes_lock=True)


def cmd_demo(app: App, args: argparse.Namespace) -> int:
    from orchestrator.agent.client import RemoteAgent
    from orchestrator.baseline.record import record_baseline
    from orchestrator.discover.resolve import resolve_for

    name = f"patient-{secrets.token_hex(2)}"
    info(f"[demo] booting patient VM {name} from the template (the 'production host')...")
    up = app.vms.up(name)
    info(f"[demo] {name} up in {up.boot_seconds:.1f} s")
    try:
        with app.vms.transport(name) as ssh:
            ssh.run(is_system_running_argv(wait=True), timeout=180)
            if not args.no_baseline:
                info("[demo] recording a baseline of the healthy patient")
                slug, agent = parse_target(f"vm:{name}").slug, RemoteAgent(ssh)
                watch = resolve_for(app.settings, app.state, slug, ssh, agent).watch
                record_baseline(app.settings, slug, ssh, agent, watch)
            info(f"[demo] breaking it: {args.fault} ({FAULTS[args.fault].description})")
            variant = inject(ssh, args.fault, args.variant)
            info(f"[demo] injected variant {variant!r}")
        began = time.monotonic()
        # The demo's patient is its own disposable VM with a snapshot as boot fallback: a fix that needs
        # a reboot (fstab) is rebooted and verified at once instead of waiting for an operator.
        info(f"[demo] vmrepair run --target vm:{name} --yes --reboot-policy automatic --reboot-notice 0")
        outcome = run_repair(app, f"vm:{name}", RunOptions(
            assume_yes=True, stable_period_s=args.stable_period, reboot_policy="automatic",
            reboot_notice_s=0))
        print_outcome(outcome, as_json=args.json)
        info(f"[demo] MTTR (detect → verified on target): {time.monotonic() - began:.1f} s")
        return outcome.exit_code
    finally:
        if not args.keep:
            app.vms.destroy(name)
            info(f"[demo] patient {name} destroyed")
