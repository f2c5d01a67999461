"""Benchmark the start of a `vmrepair` command: parsing its argv and loading the configuration, the
part every command pays before doing anything (a unit's ``ExecStartPre=vmrepair gate UNIT`` pays it
at every start of that unit; the daemon's tests pay it for every `vmrepair status` in a TCG guest).

A script, not a test: it prints medians side by side with ratios in one run. No root, no VM:
`.venv/bin/python bench/cli_start.py [--runs N]`. Each sample is a fresh interpreter that builds
the parser, parses the argv and imports ``orchestrator.app`` (what ``main`` does before the
command's handler runs):

- ``whole``: the parser of every command, as `vmrepair` built it before 2026-12-07 (every module of
  ``orchestrator.cli``, and through them the pipeline, boot diagnostics, fleet crypto);
- ``own``: the parser of the command's own module (``COMMAND_MODULES``), as `vmrepair` builds it now.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = (["status", "--json"], ["gate", "nginx.service"], ["run", "--target", "local"],
            ["fleet", "stats"], ["detect", "--target", "local"])


def _sample(argv: list[str], *, whole: bool) -> float:
    code = ("from orchestrator.cli.main import build_parser, command_of\n"
            f"argv = {argv!r}\n"
            f"build_parser({'None' if whole else 'command_of(argv)'}).parse_args(argv)\n"
            "import orchestrator.app\n")
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="samples per command and mode (median)")
    args = parser.parse_args()
    print(f"{'command':<28}{'whole (s)':>10}{'own (s)':>10}{'x faster':>10}   (median of {args.runs})")
    for argv in COMMANDS:
        whole, own = [], []
        for _ in range(args.runs):   # interleaved: drift of the machine hits both alike
            whole.append(_sample(argv, whole=True))
            own.append(_sample(argv, whole=False))
        w, o = statistics.median(whole), statistics.median(own)
        print(f"{' '.join(argv[:2]):<28}{w:>10.3f}{o:>10.3f}{w / o:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
