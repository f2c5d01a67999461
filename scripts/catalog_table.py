#!/usr/bin/env python3
"""Turn the fault catalog's results (JSON lines written by tests/integration/test_catalog.py) into the
README's table: fault -> outcome -> strategy -> MTTR, a per-family summary and the MTTR distribution.

    scripts/catalog_table.py [RESULTS.jsonl ...]            # print the markdown
    scripts/catalog_table.py --readme README.md [RESULTS ...]  # replace the block between the markers

The newest row of each fault wins (results of several runs may be concatenated). Faults of the catalog
with no result are listed as "not run", so a table can never look complete when it is not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.demo.catalog import Fault, load_catalog

BEGIN = "<!-- catalog:begin (scripts/catalog_table.py) -->"
END = "<!-- catalog:end -->"
DEFAULT_RESULTS = Path("build/catalog-results.jsonl")


def load_rows(paths: list[Path]) -> dict[str, dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if row["fault"] not in newest or row["at"] >= newest[row["fault"]]["at"]:
                newest[row["fault"]] = row
    return newest


def outcome(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not run"
    if row.get("false_success"):
        return "FALSE SUCCESS"
    return str(row["status"]).replace("_", " ")


def concordance(row: dict[str, Any] | None) -> str:
    if row is None or row["status"] != "repaired":
        return "-"
    if row.get("route") == "in place":
        return "in place (no VM needed)"
    checks = "checks pass" if not row["failing_after"] else "checks FAIL"
    return f"validated in VM -> verified on target, {checks}"


def table(faults: tuple[Fault, ...], rows: dict[str, dict[str, Any]]) -> str:
    out = ["| fault | service | family | outcome | strategy | MTTR | validated → verified |",
           "|---|---|---|---|---|---|---|"]
    for fault in faults:
        row = rows.get(fault.id)
        mttr = "-" if row is None else f"{row['mttr_s']:.0f} s"
        strategy = "-" if row is None or not row.get("strategy") else f"`{row['strategy']}`"
        out.append(f"| {fault.id} | {fault.service} | {fault.family} | {outcome(row)} | {strategy} | "
                   f"{mttr} | {concordance(row)} |")
    return "\n".join(out)


def summary(faults: tuple[Fault, ...], rows: dict[str, dict[str, Any]]) -> str:
    per_family: dict[str, Counter[str]] = defaultdict(Counter)
    for fault in faults:
        per_family[fault.family][outcome(rows.get(fault.id))] += 1
    columns = ["repaired", "not repaired", "not reproduced", "FALSE SUCCESS", "error", "not run"]
    out = ["| family | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for family, counts in per_family.items():
        out.append(f"| {family} | " + " | ".join(str(counts.get(c, 0)) for c in columns) + " |")
    mttrs = sorted(r["mttr_s"] for r in rows.values() if r["status"] == "repaired")
    if mttrs:
        p90 = mttrs[min(len(mttrs) - 1, round(0.9 * (len(mttrs) - 1)))]
        out.append("")
        out.append(f"MTTR of the {len(mttrs)} repaired faults: min {mttrs[0]:.0f} s, median "
                   f"{statistics.median(mttrs):.0f} s, p90 {p90:.0f} s, max {mttrs[-1]:.0f} s.")
    revisions = sorted({r["revision"] for r in rows.values()})
    dates = sorted(r["at"][:10] for r in rows.values())
    if dates:
        out.append(f"Results of {dates[0]}..{dates[-1]}, revision(s) {', '.join(revisions)}; "
                   f"{len(rows)} of {len(faults)} faults run.")
    return "\n".join(out)


def render(faults: tuple[Fault, ...], rows: dict[str, dict[str, Any]]) -> str:
    return summary(faults, rows) + "\n\n" + table(faults, rows) + "\n"


def replace_block(readme: Path, block: str) -> None:
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: markers {BEGIN!r} ... {END!r} not found")
    readme.write_text(text[: start + len(BEGIN)] + "\n" + block + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", type=Path, default=[DEFAULT_RESULTS])
    parser.add_argument("--readme", type=Path, help="rewrite the catalog block of this README")
    args = parser.parse_args(argv)
    block = render(load_catalog(), load_rows(args.results))
    if args.readme is None:
        sys.stdout.write(block)
    else:
        replace_block(args.readme, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
