"""contrib/: the Prometheus alert rules and the Grafana dashboard use only metrics vmrepair exports,
and the rules file has Prometheus' rule-group structure (``promtool check rules`` is not at hand
in unit tests; this checks what it would refuse first: the shape and the keys)."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.daemon.metrics import daemon_registry
from orchestrator.daemon.state import DaemonState
from orchestrator.metrics.collector import PersistedCollector
from tests.unit.daemon.helpers import make_issue
from tests.unit.metrics.populated import populate

RULES = PROJECT_ROOT / "contrib" / "prometheus" / "vmrepair-rules.yml"
DASHBOARD = PROJECT_ROOT / "contrib" / "grafana" / "vmrepair-dashboard.json"
METRIC_RE = re.compile(r"\b(?:vmrepair|process)_[a-z0-9_]+\b")
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION_RE = re.compile(r"^[0-9]+[smhdwy]$")
ALERT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the daemon serves over a state dir with one of everything."""
    state = DaemonState(target="local", policy="ask", clock=lambda: 1767225600.0)
    state.set_ready("ok")
    state.record_detection([make_issue()], duration_s=1, probes=1, unavailable=[], new_state="recorded")
    state.job_finished("detect", True, 1767225600.0, 1.0)
    persisted = PersistedCollector(populate(tmp_path_factory.mktemp("contrib") / "state"))
    text = generate_latest(daemon_registry(state, persisted, rss=lambda: 1)).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _rules() -> list[dict[str, object]]:
    data = yaml.safe_load(RULES.read_text())
    assert isinstance(data, dict)
    assert set(data) == {"groups"}
    rules = []
    for group in data["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        assert isinstance(group["name"], str)
        assert group["rules"], f"group {group['name']} has no rules"
        rules.extend(group["rules"])
    return rules


def test_the_rules_file_has_the_rule_group_structure() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in rules:
        assert set(rule) <= RULE_KEYS, rule
        assert ALERT_NAME_RE.match(str(rule["alert"])), rule["alert"]
        assert isinstance(rule["expr"], str)
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert rule["expr"].count("{") == rule["expr"].count("}")
        assert DURATION_RE.match(str(rule.get("for", "0s")))
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict)
        assert isinstance(annotations, dict)
        assert labels["severity"] in {"info", "warning", "critical"}
        assert {"summary", "description"} <= set(annotations)
    assert {"VmrepairRepairFailed", "VmrepairIssueOpenTooLong", "VmrepairComponentQuarantined",
            "VmrepairDetectionStale", "VmrepairVmReadinessFailing"} <= set(names)


def test_every_metric_in_the_rules_is_exported(exported: set[str]) -> None:
    used = {m for rule in _rules() for m in METRIC_RE.findall(str(rule["expr"]))}
    assert used
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def test_every_metric_on_the_dashboard_is_exported(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {m for expr in exprs for m in METRIC_RE.findall(expr)}
    assert len(dashboard["panels"]) >= 10
    assert used <= exported, f"not exported: {sorted(used - exported)}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
