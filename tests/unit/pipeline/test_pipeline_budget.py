"""The attempt budget: after a clean rollback on the target the next strategy is tried, each strategy at
most once per issue and target, and a spent budget leaves the host up with a support reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.app import App
from orchestrator.config.settings import load_settings
from orchestrator.model import Issue, IssueKind, SessionStatus, Severity
from orchestrator.pipeline import escalate
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.run import RunOptions
from orchestrator.session.store import new_session
from orchestrator.state.transactions import OPERATOR_ROLLBACK, TransactionStore
from orchestrator.targets.spec import parse_target

ISSUE = Issue("boot", IssueKind.BOOT_CONFIG, Severity.CRITICAL, "/etc/fstab", "next boot fails",
              "fstab:/etc/fstab")


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\naudit: {{path: {tmp_path / 'audit.jsonl'}}}\n")
    app = App(load_settings({"VMREPAIR_CONFIG": str(config)}))
    session = new_session(app.settings.sessions_dir, "vm:patient")
    return RunContext(app, parse_target("vm:patient"), session, None, None, None,  # type: ignore[arg-type]
                      RunOptions(attempt_budget=3))


class Attempts:
    """Stands in for reproduce → repair → apply: each call 'applies' the next strategy."""

    def __init__(self, ctx: RunContext, results: list[str]) -> None:
        self.ctx, self.results, self.excluded = ctx, results, []

    def __call__(self, ctx: RunContext, issue: Issue, related: Any, components: Any,
                 exclude: frozenset[str]) -> dict[str, Any]:
        self.excluded.append(sorted(exclude))
        strategy = f"s{len(self.excluded)}"
        outcome = self.results.pop(0)
        store = TransactionStore(ctx.app.state)
        txn = store.create(package_id="p", package_dir="/p", target=str(ctx.spec), component="boot",
                           backup_dir="/b", ops_total=1, issue_id=issue.fingerprint, strategy=strategy,
                           attempt=ctx.attempt, session_id=ctx.session.id)
        if outcome == "rolled_back":
            store.step(txn.id, "rolled_back", state="rolled_back")
            return {"component": "boot", "status": "not_repaired", "summary": "rolled back",
                    "strategy": strategy, "txn": txn.id, "retry": True}
        store.step(txn.id, "committed", state="committed")
        return {"component": "boot", "status": "repaired", "summary": "ok", "strategy": strategy,
                "txn": txn.id}


def test_rollback_then_next_strategy_succeeds(ctx: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = Attempts(ctx, ["rolled_back", "committed"])
    monkeypatch.setattr(escalate, "_repair_in_vm", attempts)
    detail = escalate._with_budget(ctx, ISSUE, (), [])
    assert detail["status"] == "repaired" and detail["strategy"] == "s2"
    assert attempts.excluded == [[], ["s1"]]
    assert [a["strategy"] for a in detail["attempts"]] == ["s1", "s2"]


def test_spent_budget_leaves_the_host_degraded_with_a_support_reference(
    ctx: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = Attempts(ctx, ["rolled_back"] * 3)
    monkeypatch.setattr(escalate, "_repair_in_vm", attempts)
    detail = escalate._with_budget(ctx, ISSUE, (), [])
    assert detail["status"] == SessionStatus.NOT_REPAIRED and detail["degraded"] is True
    assert attempts.excluded == [[], ["s1"], ["s1", "s2"]]     # never the same strategy twice
    assert detail["support_ref"].startswith("VMR-")
    assert "attempt budget (3) spent: s1, s2, s3 rolled back" in detail["summary"]
    assert any("quote support reference" in step for step in detail["manual_steps"])
    audit = (Path(ctx.app.settings.audit.path)).read_text()
    assert "budget_exhausted" in audit


def test_failures_from_an_earlier_run_count_against_the_budget(
    ctx: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    Attempts(ctx, ["rolled_back", "rolled_back"])(ctx, ISSUE, (), [], frozenset())
    attempts = Attempts(ctx, ["committed"])
    monkeypatch.setattr(escalate, "_repair_in_vm", attempts)
    detail = escalate._with_budget(ctx, ISSUE, (), [])
    assert attempts.excluded == [["s1"]] and detail["status"] == "repaired"


def test_an_operator_rollback_does_not_count_as_a_failed_strategy(
    ctx: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TransactionStore(ctx.app.state)
    txn = store.create(package_id="p", package_dir="/p", target=str(ctx.spec), component="boot",
                       backup_dir="/b", ops_total=1, issue_id=ISSUE.fingerprint, strategy="s1")
    store.step(txn.id, "committed", state="committed")
    store.step(txn.id, OPERATOR_ROLLBACK, state="rolling_back")
    store.step(txn.id, "operator_rolled_back", state="rolled_back")
    attempts = Attempts(ctx, ["committed"])
    monkeypatch.setattr(escalate, "_repair_in_vm", attempts)
    escalate._with_budget(ctx, ISSUE, (), [])
    assert attempts.excluded == [[]]
