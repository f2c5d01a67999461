"""`vmrepair completion bash|zsh` and `vmrepair manpage`: documents of the parser itself.

Both run without the config or state dir (``main()`` hands them the parser before it builds the
``App``): an installer or a packager generates them on a machine that is not configured yet, and a
broken config must not take away the man page that would help fix it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.cli.output import emit_json, info
from orchestrator.cli.shellfiles import SHELLS, completion_script, man_page, write_shell_files
from orchestrator.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    completion = sub.add_parser("completion", help="print the bash or zsh completion script, or install "
                                "both with the man page")
    completion.add_argument("shell", nargs="?", choices=SHELLS, help="the shell whose script to print")
    completion.add_argument("--install", type=Path, metavar="PREFIX",
                            help="write the bash and zsh scripts and the man page under PREFIX "
                            "(share/bash-completion/completions, share/zsh/site-functions, "
                            "share/man/man1)")
    completion.set_defaults(parser_handler=cmd_completion)
    manpage = sub.add_parser("manpage", help="print the man page (roff) of vmrepair and all its commands")
    manpage.set_defaults(parser_handler=cmd_manpage)


def cmd_completion(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Raises: ConfigError: neither a shell nor --install given. StateError: a file cannot be written."""
    if args.install is not None:
        from orchestrator.cli.main import build_parser  # main imports this module: import when used

        paths = write_shell_files(build_parser, args.install)
        if args.json:
            emit_json({"written": [str(p) for p in paths]})
        for path in paths:
            info(f"wrote {path}")
        return 0
    if args.shell is None:
        raise ConfigError("completion needs a shell (bash or zsh) or --install PREFIX",
                          remedy="vmrepair completion bash > /etc/bash_completion.d/vmrepair")
    sys.stdout.write(completion_script(parser, args.shell))
    return 0


def cmd_manpage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    del args
    sys.stdout.write(man_page(parser))
    return 0
