"""The diagnosis section shows the fault's signature, why each strategy ranked where it did, and what the
record says for this fault at each stage (issue 15)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.fleet.posterior import explain
from orchestrator.fleet.signature import FaultSignature
from orchestrator.model import SessionStatus
from orchestrator.playbooks import model as m
from orchestrator.repair.rank import RankedStrategy
from orchestrator.report.markdown import render_report
from orchestrator.report.ranking import ranking_block
from orchestrator.session.store import new_session
from orchestrator.state.outcomes import StrategyRecord
from tests.unit.report.mdcheck import CELL_PIPE, fenced_blocks

FAULT = FaultSignature("nginx", "config_invalid", "config_invalid", "output: in /etc/<...>/<file>:<n>",
                       "debian-12")


def _ranked(name: str, effectiveness: float, record: StrategyRecord | None, *,
            lossy: bool = False) -> dict[str, object]:
    strategy = m.Strategy(name, "d", ("x",), effectiveness, False, (), "nginx-config", lossy=lossy)
    why = explain(None if record is None else {name: record}, name, effectiveness)
    return RankedStrategy(strategy, effectiveness * 0.9 * why.mean, "config_invalid", 0.9, why.mean,
                          why=why).as_dict()


def _diagnosis() -> dict[str, object]:
    return {"cause": "config_invalid", "confidence": 0.9, "signature": FAULT.as_dict(),
            "ranking": [_ranked("nginx-restore|offender", 0.9, StrategyRecord({"fine": (3, 4)})),
                        _ranked("nginx-pristine", 0.5, None),
                        _ranked("nginx-truncate", 0.9, StrategyRecord({"medium": (5, 5)}), lossy=True)],
            "concordance": [{"strategy": "nginx-restore|offender", "vm": [3, 4], "target": [2, 3],
                             "reboot": [1, 1]},
                            {"strategy": "nginx-pristine", "vm": [0, 0], "target": [0, 0], "reboot": [0, 0]}]}


def test_why_each_strategy_ranked_where_it_did() -> None:
    text = ranking_block(_diagnosis())
    assert ("- **Fault signature:** `nginx / config_invalid / config_invalid` on debian-12 "
            f"(fine `{FAULT.fine}`, medium `{FAULT.medium}`)") in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| # | Strategy | Score | Effectiveness | Match | Posterior | Why |"
    # (2.8 + 3) / (4 + 4) = 0.725; score 0.9 * 0.9 * 0.725
    assert rows[1] == ("| 1 | `nginx-restore\\|offender` | 0.587 | 0.90 | 0.90 | 0.72 | "
                       "fine 3/4 ok, prior Beta(2.8, 1.2), mean 0.72 |")
    assert rows[2].startswith("| 2 | `nginx-pristine` |")
    assert rows[2].endswith("| no outcomes, prior Beta(2, 2), mean 0.50 |")
    assert "medium 5/5 ok" in rows[3] and "loses data: after every strategy that keeps it" in rows[3]
    # Concordance: only strategies with a record say something; a never-tried stage is a dash.
    assert "| `nginx-restore\\|offender` | 3/4 | 2/3 | 1/1 |" in text
    assert "| `nginx-pristine` | — | — | — |" in text
    for row in rows:
        assert len(CELL_PIPE.findall(row)) in {8, 5}   # 7 or 4 cells: no pipe of a name splits one


def test_old_sessions_and_empty_records_show_nothing() -> None:
    assert ranking_block({"cause": "x"}) == ""
    empty = {"concordance": [{"strategy": "a", "vm": [0, 0], "target": [0, 0], "reboot": [0, 0]}]}
    assert ranking_block(empty) == ""


def test_the_report_renders_it_in_the_diagnosis_section_not_as_raw_details(tmp_path: Path) -> None:
    session = new_session(tmp_path / "sessions", "local")
    session.write_json("diagnosis-nginx", _diagnosis())
    session.set_meta(components=[{"component": "nginx", "status": "repaired", "summary": "ok"}])
    session.finish(SessionStatus.REPAIRED, "ok")
    text = render_report(session.dir)
    outside, _ = fenced_blocks(text)
    assert "Strategies in the order they were to be tried, and why:" in outside
    assert "What the record says for this fault (successes/tries):" in outside
    assert "prior_alpha" not in text   # not dumped again under "Other details"
