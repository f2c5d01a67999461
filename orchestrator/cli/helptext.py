"""Examples and exit codes of every command, shown as the epilog of its ``--help`` (and in the man page).

The text lives here, in one table keyed by the command path (``"vm exec"``), instead of in each command
module: a new command needs one entry, and ``tests/unit/cli/test_helptext.py`` fails while a registered
command has none. :func:`apply_help` is called once by ``build_parser`` after every module registered.

Exit codes come in two kinds. A command's *own* codes (``detect`` exits 1 when it finds issues) are in
its entry. The codes of errors are the same for every command, because ``main()`` maps the error
tree's ``exit_code`` for all of them: they are :data:`ERROR_EXIT_CODES`, listed once by
``vmrepair --help``; every command's epilog points there instead of repeating them.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

#: Exit codes of the error tree (``orchestrator/errors.py``) and of ``main()`` itself. A unit test
#: checks that every ``exit_code`` of the tree is here, so a new error family cannot go undocumented.
ERROR_EXIT_CODES: tuple[tuple[int, str], ...] = (
    (1, "generic failure (an error of no family below)"),
    (2, "bad input or config (also a usage error)"),
    (3, "template image"),
    (4, "hypervisor (libvirt, QEMU, VM)"),
    (5, "transport (SSH, commands, the target's agent)"),
    (6, "state dir (permissions, disk full, corrupt store, lock held)"),
    (7, "fix package invalid or tampered with"),
    (8, "applying a fix to the target"),
    (9, "a repair run cannot proceed"),
    (13, "reboot"),
    (14, "audit log"),
    (15, "quarantine"),
    (16, "daemon"),
    (17, "fleet bundle or signing key refused"),
    (130, "interrupted (Ctrl-C)"),
)

#: The shared tail of every command's exit status list.
_ERRORS_LINE = "other codes: an error of the family `vmrepair --help` lists (2 bad input, ...)"

#: Codes of `run` (and `demo`, which ends with a run): ``orchestrator.model.RUN_EXIT_CODES``.
_RUN_EXITS = (("0", "healthy, or repaired and verified"), ("10", "not repaired"),
              ("11", "the issue could not be reproduced in the VM"), ("12", "the run ended in an error"),
              ("20", "repaired; a reboot is pending to finish it"),
              ("21", "never exited: recorded for a run that was killed, when the next start closes it"))
#: Codes of `log verify` / `log repair`: ``orchestrator.jsonl.report.EXIT_CODES``.
_LOG_EXITS = (("0", "every line is good"), ("20", "torn tail (an interrupted last write)"),
              ("21", "corrupt lines in the middle"), ("22", "the audit hash chain is broken"),
              ("23", "the file cannot be read"))
DONE = (("0", "done"),)


@dataclass(frozen=True)
class CommandHelp:
    """What a command's ``--help`` adds below its options."""

    examples: tuple[str, ...]
    #: (code, meaning) of the command's own exit codes; the error codes are added by :func:`epilog`.
    exits: tuple[tuple[str, str], ...] = DONE


HELP: dict[str, CommandHelp] = {
    "doctor": CommandHelp(
        ("vmrepair doctor", "vmrepair doctor --target local", "vmrepair doctor --target local --remediate"),
        (("0", "every vital check passed"), ("1", "a vital check (or vital component) is broken"))),
    "image build": CommandHelp(("vmrepair image build", "vmrepair image build --suite trixie",
                                "vmrepair image build --force")),
    "image list": CommandHelp(("vmrepair image list", "vmrepair image list --json")),
    "image warm": CommandHelp(("vmrepair image warm",)),
    "image layers": CommandHelp(("vmrepair image layers", "vmrepair image layers --prune --unused-days 30")),
    "vm up": CommandHelp(("vmrepair vm up scratch", "vmrepair vm up scratch --boot-timeout 300")),
    "vm exec": CommandHelp(
        ("vmrepair vm exec scratch -- systemctl --failed",
         "vmrepair vm exec --timeout 60 scratch -- apt-get -y update"),
        (("N", "the remote command's own exit status"), ("2", "no command given after --"),
         ("255", "the command could not be run (as ssh(1) does)"))),
    "vm snapshot": CommandHelp(("vmrepair vm snapshot scratch clean",)),
    "vm revert": CommandHelp(("vmrepair vm revert scratch clean",)),
    "vm snapshots": CommandHelp(("vmrepair vm snapshots scratch",)),
    "vm destroy": CommandHelp(("vmrepair vm destroy scratch",)),
    "vm list": CommandHelp(("vmrepair vm list", "vmrepair vm list --json")),
    "vm reap": CommandHelp(("vmrepair vm reap",)),
    "detect": CommandHelp(
        ("vmrepair detect --target local", "vmrepair detect --target ssh://root@web1 --json"),
        (("0", "no issues"), ("1", "issues found"))),
    "facts": CommandHelp(("vmrepair facts --target local", "vmrepair facts --target vm:scratch --json")),
    "baseline": CommandHelp(
        ("vmrepair baseline --target local", "vmrepair baseline --target local --force"),
        (("0", "baseline recorded"), ("1", "refused: the target has critical issues (see --force)"))),
    "run": CommandHelp(
        ("vmrepair run --target local --dry-run", "vmrepair run --target local --yes",
         "vmrepair run --target ssh://root@web1 --yes --reboot-policy window"),
        _RUN_EXITS),
    "demo": CommandHelp(("vmrepair demo", "vmrepair demo fstab --keep"), _RUN_EXITS),
    "config check": CommandHelp(("vmrepair config check",
                                 "vmrepair config check /etc/vmrepair/config.d/10-site.yaml"),
                                (("0", "the configuration (and every drop-in) is valid"),
                                 ("2", "invalid: each error names its file and key"))),
    "config show": CommandHelp(("vmrepair config show", "vmrepair config show --json")),
    "prune": CommandHelp(("vmrepair prune --dry-run", "vmrepair prune"),
                         (("0", "pruned (or, with --dry-run, listed) what retention allows"),
                          ("1", "an item could not be removed (listed with its error)"))),
    "sessions": CommandHelp(("vmrepair sessions", "vmrepair sessions --json")),
    "report": CommandHelp(("vmrepair report 20260102T030405Z-1a2b3c",),
                          (("0", "report shown"), ("1", "no session has that id"),
                           ("2", "not a session id"))),
    "fixes list": CommandHelp(("vmrepair fixes list", "vmrepair fixes list --target local --state applied")),
    "fixes show": CommandHelp(("vmrepair fixes show tx-0123456789ab",)),
    "fixes rollback": CommandHelp(("vmrepair fixes rollback tx-0123456789ab",)),
    "fixes recover": CommandHelp(("vmrepair fixes recover",),
                                 (("0", "nothing left to recover"),
                                  ("1", "a transaction could not be recovered"))),
    "fixes forget": CommandHelp(("vmrepair fixes forget tx-0123456789ab --reason 'VM destroyed'",),
                                (("0", "closed as forgotten; recovery no longer retries it"),
                                 ("2", "no reason given, or not a transaction id"),
                                 ("8", "closed already, or its VM still exists"))),
    "fleet stats": CommandHelp(("vmrepair fleet stats", "vmrepair fleet stats --json")),
    "reboot status": CommandHelp(("vmrepair reboot status", "vmrepair reboot status --target local")),
    "reboot now": CommandHelp(("vmrepair reboot now --target local",),
                              (("0", "rebooted and every fix verified"),
                               ("1", "a fix did not verify after the reboot"))),
    "reboot schedule": CommandHelp(("vmrepair reboot schedule --target local 03:30",
                                    "vmrepair reboot schedule --target local 2026-03-30T03:30+02:00")),
    "reboot cancel": CommandHelp(("vmrepair reboot cancel --target local",)),
    "daemon": CommandHelp(("systemctl start vmrepair", "vmrepair daemon --foreground --debug"),
                          (("-", "does not return: it becomes the daemon"),)),
    "status": CommandHelp(("vmrepair status", "vmrepair status --json"),
                          (("0", "the daemon is ready"), ("1", "the daemon answers but is not ready"))),
    "log verify": CommandHelp(("vmrepair log verify", "vmrepair log verify /var/log/app/events.jsonl"),
                              _LOG_EXITS),
    "log repair": CommandHelp(("vmrepair log repair", "vmrepair log repair --audit /tmp/copy.jsonl"),
                              tuple((code, f"after the repair: {meaning}") for code, meaning in _LOG_EXITS)),
    "quarantine list": CommandHelp(("vmrepair quarantine list", "vmrepair quarantine list --all --json")),
    "quarantine release": CommandHelp(("vmrepair quarantine release nginx",),
                                      (("0", "released and verified"),
                                       ("1", "released, but it did not verify"))),
    "playbook list": CommandHelp(("vmrepair playbook list",)),
    "playbook lint": CommandHelp(("vmrepair playbook lint /etc/vmrepair/playbooks.d/mine.yaml",),
                                 (("0", "the playbook would load"),
                                  ("2", "it would not (the message says why)"))),
    "watch list": CommandHelp(("vmrepair watch list", "vmrepair watch list --target ssh://root@web1")),
    "watch gate install": CommandHelp(("vmrepair watch gate install nginx.service",)),
    "watch gate remove": CommandHelp(("vmrepair watch gate remove nginx.service",)),
    "gate": CommandHelp(("vmrepair gate nginx.service",),
                        (("0", "allow the start (checks pass, or the gate failed under on_error: allow)"),
                         ("1", "refuse: a pre-start check of the unit's component failed"),
                         ("2", "refuse: the gate itself failed and gate.on_error is refuse"))),
    "completion": CommandHelp(
        ("vmrepair completion bash > /etc/bash_completion.d/vmrepair",
         "vmrepair completion zsh > /usr/local/share/zsh/site-functions/_vmrepair",
         "vmrepair completion --install /usr/local"),
        (("0", "written"), ("6", "a file could not be written"))),
    "manpage": CommandHelp(("vmrepair manpage | man -l -",
                            "vmrepair manpage > /usr/local/share/man/man1/vmrepair.1")),
}

#: `vmrepair fleet key|export|import` (orchestrator/cli/fleet_bundle.py, registered by cli/fleet.py).
_FLEET_REFUSED = ("17", "refused: the message names the reason (unknown key, signature, expired, ...)")
FLEET_BUNDLE_HELP: dict[str, CommandHelp] = {
    "fleet key create": CommandHelp(("vmrepair fleet key create",),
                                    (("0", "created"), ("17", "a key exists already"))),
    "fleet key show": CommandHelp(("vmrepair fleet key show > /tmp/this-host.pub",
                                   "vmrepair fleet key show --trusted")),
    "fleet key trust": CommandHelp(("vmrepair fleet key trust /tmp/web1.pub --name web1-fleet",
                                    "vmrepair fleet key trust --pubkey AAAA... --name web1-fleet"),
                                   (("0", "trusted"), ("17", "not a key, not a plain name, or revoked"))),
    "fleet key revoke": CommandHelp(("vmrepair fleet key revoke 0123456789abcdef",)),
    "fleet export": CommandHelp(("vmrepair fleet export --out /srv/fleet/web1.bundle",
                                 "vmrepair fleet export --out /tmp/b.json --since 30 --expires-days 7"),
                                (("0", "written (strategies left out are listed)"),
                                 ("17", "no signing key, or the bundle would name a host"))),
    "fleet import": CommandHelp(("vmrepair fleet import /srv/fleet/web1.bundle",),
                                (("0", "imported: its counts replace that key's earlier ones"),
                                 _FLEET_REFUSED)),
}
HELP.update(FLEET_BUNDLE_HELP)

#: Examples of the top-level ``vmrepair --help``.
MAIN_EXAMPLES = ("vmrepair doctor", "vmrepair image build", "vmrepair detect --target local",
                 "vmrepair run --target local --dry-run", "vmrepair sessions",
                 "vmrepair COMMAND --help   (examples and exit codes of a command)")


def epilog(entry: CommandHelp) -> str:
    lines = ["examples:", *(f"  {example}" for example in entry.examples), "", "exit status:"]
    width = max(len(code) for code, _ in entry.exits)
    lines += [f"  {code:<{width}}  {meaning}" for code, meaning in entry.exits]
    lines.append(f"  {_ERRORS_LINE}")
    return "\n".join(lines)


def main_epilog() -> str:
    lines = ["examples:", *(f"  {example}" for example in MAIN_EXAMPLES), "",
             "exit status (every command; `vmrepair COMMAND --help` adds its own):", "  0    success"]
    lines += [f"  {code:<3}  {meaning}" for code, meaning in ERROR_EXIT_CODES]
    return "\n".join(lines)


def command_parsers(parser: argparse.ArgumentParser,
                    prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """Every (sub)command below ``parser`` as (path, parser, its one-line help), depth first."""
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, child in action.choices.items():
            path = f"{prefix} {name}".strip()
            yield path, child, helps.get(name, "")
            yield from command_parsers(child, path)


def is_leaf(parser: argparse.ArgumentParser) -> bool:
    """A parser that runs a command (a group such as ``vm`` only chooses one)."""
    return not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def apply_help(parser: argparse.ArgumentParser) -> None:
    """Give the top parser and every command its epilog, and a description from its one-line help.

    The formatter becomes ``RawDescriptionHelpFormatter`` so the example and exit code columns keep
    their line breaks; the description is wrapped here for the same reason (that formatter wraps
    neither). Commands without an entry keep argparse's default (the unit test reports them).
    """
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = main_epilog()
    for path, child, summary in command_parsers(parser):
        child.formatter_class = argparse.RawDescriptionHelpFormatter
        if child.description is None and summary:
            child.description = textwrap.fill(summary[0].upper() + summary[1:] + ".", width=78)
        entry = HELP.get(path)
        if entry is not None:
            child.epilog = epilog(entry)
