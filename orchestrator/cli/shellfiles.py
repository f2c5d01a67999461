"""Shell completion scripts and the man page, generated from the argparse parser.

Both are derived from the parser that runs the commands, so a new command or option is completed and
documented without anyone editing a second copy. ``shtab`` writes the bash and zsh scripts (it reads
argparse's own structures, nested subcommands and ``choices`` included); ``argparse-manpage`` writes
the roff, to which we add the EXAMPLES and EXIT STATUS sections from :mod:`orchestrator.cli.helptext`
(it shows only the top-level epilog, never a subcommand's).

:func:`write_shell_files` puts all three where a packager or the installer expects them under a prefix
(``/usr/local``, or a staging root), each written crash-safe.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Final

from orchestrator import __version__
from orchestrator.cli.helptext import DONE, ERROR_EXIT_CODES, HELP, MAIN_EXAMPLES, command_parsers
from orchestrator.errors import StateError
from orchestrator.fsutil import atomic_write

SHELLS: Final = ("bash", "zsh")
#: Where each file goes below an install prefix (the places bash-completion, zsh's site-functions
#: and man(1) search by default for /usr and /usr/local).
INSTALL_PATHS: Final = {
    "bash": Path("share/bash-completion/completions/vmrepair"),
    "zsh": Path("share/zsh/site-functions/_vmrepair"),
    "man": Path("share/man/man1/vmrepair.1"),
}
_REMEDY = "run as root, or give --install a prefix you can write (a staging directory for a package)"


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``shell`` (one of :data:`SHELLS`) for ``parser``.

    Positional arguments and options typed ``Path`` complete file names; the others complete their
    ``choices`` or nothing (target specs and ids have no static list).
    """
    import shtab  # a few ms of import only for this command, not for every vmrepair start

    if shell not in SHELLS:
        raise ValueError(f"unsupported shell {shell!r}")
    for action in _all_actions(parser):
        if action.type is Path and not hasattr(action, "complete"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    script: str = shtab.complete(parser, shell=shell)
    return script


def man_page(parser: argparse.ArgumentParser) -> str:
    """The man page of ``parser`` in roff: synopsis, every command and option, examples, exit status."""
    from argparse_manpage.manpage import Manpage

    # The top-level epilog (examples and exit codes) becomes the sections below, in man's own layout.
    saved, parser.epilog = parser.epilog, None
    try:
        page = Manpage(parser)
        page.source = f"vmrepair {__version__}"
        page.manual = "vmrepair manual"
        page.description = "reproduce host faults in disposable VMs and apply only verified fixes"
        page.add_section("examples", "=", _examples_roff(parser))
        page.add_section("exit status", "=", _exit_status_roff(parser))
        text: str = str(page)
    finally:
        parser.epilog = saved
    return text


def write_shell_files(parser_factory: Callable[[], argparse.ArgumentParser], prefix: Path) -> list[Path]:
    """Write the bash and zsh completion and the man page under ``prefix``; return their paths.

    ``parser_factory`` builds a fresh parser per file because generating marks its actions.

    Raises:
        StateError: a directory cannot be created or a file written (names the path).
    """
    contents = {shell: completion_script(parser_factory(), shell) for shell in SHELLS}
    contents["man"] = man_page(parser_factory())
    written = []
    for kind, relative in INSTALL_PATHS.items():
        path = prefix / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Read by every user's shell and by man: world-readable, like any file under /usr/share.
            atomic_write(path, contents[kind].encode(), mode=0o644)
        except OSError as exc:
            raise StateError(f"cannot create {path.parent}: {exc.strerror or exc}", remedy=_REMEDY) from exc
        except StateError as exc:  # its remedy speaks of the state dir, which is not involved here
            raise StateError(exc.message, remedy=_REMEDY) from exc
        written.append(path)
    return written


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    actions = list(parser._actions)  # argparse has no public list of its actions
    for _, child, _ in command_parsers(parser):
        actions.extend(child._actions)
    return actions


def _escape(text: str) -> str:
    """``text`` as roff: backslashes and hyphens escaped, no line read as a request."""
    escaped = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in escaped.split("\n"))


def _examples_roff(parser: argparse.ArgumentParser) -> str:
    lines = [_escape(example) + "\n.br" for example in MAIN_EXAMPLES]
    for path, _, _ in command_parsers(parser):
        entry = HELP.get(path)
        if entry is not None:
            lines.append(f".TP\n.B vmrepair {_escape(path)}")
            lines += [_escape(example) + "\n.br" for example in entry.examples]
    return "\n".join(lines)


def _exit_status_roff(parser: argparse.ArgumentParser) -> str:
    lines = ["Every command:", ".TP\n.B 0\nsuccess"]
    lines += [f".TP\n.B {code}\n{_escape(meaning)}" for code, meaning in ERROR_EXIT_CODES]
    lines.append(".PP\nA command's own codes (they take precedence over the ones above):")
    for path, _, _ in command_parsers(parser):
        entry = HELP.get(path)
        if entry is not None and entry.exits != DONE:
            codes = "; ".join(f"{code} {meaning}" for code, meaning in entry.exits)
            lines.append(f".TP\n.B vmrepair {_escape(path)}\n{_escape(codes)}")
    return "\n".join(lines)


__all__ = ["INSTALL_PATHS", "SHELLS", "completion_script", "man_page", "write_shell_files"]
