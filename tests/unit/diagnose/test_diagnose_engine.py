"""Diagnosis over FakeTransport answers shaped like the real tools' output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.diagnose import diagnose
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.playbooks import model as m
from orchestrator.playbooks.loader import load_playbook, load_playbooks
from orchestrator.session.store import new_session
from orchestrator.transport.fake import FakeTransport

NGINX = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",),
                  unit_paths=("/etc/systemd/system/nginx.service.d",))
SAMPLEAPP = Component("sampleapp", units=("sampleapp.service",),
                      config_paths=("/etc/default/sampleapp", "/opt/sampleapp"),
                      unit_paths=("/etc/systemd/system/sampleapp.service",
                                  "/etc/systemd/system/sampleapp.service.d"),
                      jsonl_logs=("/var/lib/sampleapp/interactions.jsonl",))

NGINX_T_DIRECTIVE = (b"nginx: [emerg] unknown directive \"foo\" in /etc/nginx/sites-enabled/default:12\n"
                     b"nginx: configuration file /etc/nginx/nginx.conf test failed\n")
NGINX_T_EOF = (b"nginx: [emerg] unexpected end of file, expecting \"}\" in /etc/nginx/sites-enabled/shop:5\n"
               b"nginx: configuration file /etc/nginx/nginx.conf test failed\n")
NGINX_T_DANGLING = (b"nginx: [emerg] open() \"/etc/nginx/sites-enabled/gone\" failed (2: No such file or "
                    b"directory) in /etc/nginx/nginx.conf:60\n"
                    b"nginx: configuration file /etc/nginx/nginx.conf test failed\n")
NGINX_T_OK = (b"nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
              b"nginx: configuration file /etc/nginx/nginx.conf test is successful\n")
STATUS_FAILED = (b"x sampleapp.service - sampleapp interaction service\n"
                 b"     Loaded: loaded (/etc/systemd/system/sampleapp.service; enabled)\n"
                 b"    Drop-In: /etc/systemd/system/sampleapp.service.d\n"
                 b"             `-50-tuning.conf\n"
                 b"     Active: failed (Result: exit-code) since Thu 2026-11-20 10:00:00 UTC\n"
                 b"    Process: 812 ExecStart=/usr/bin/python3 -m sampleapp_v2 "
                 b"(code=exited, status=1/FAILURE)\n")
CAT_WITH_DROPIN = (b"# /etc/systemd/system/sampleapp.service\n[Service]\n"
                   b"ExecStart=/usr/bin/python3 -m sampleapp\n\n"
                   b"# /etc/systemd/system/sampleapp.service.d/50-tuning.conf\n[Service]\nExecStart=\n"
                   b"ExecStart=/usr/bin/python3 -m sampleapp_v2 --serve\n")
CHECK_CORRUPT = (b"sampleapp: check failed: /var/lib/sampleapp/interactions.jsonl line 8 is not valid JSON "
                 b"(Expecting ',' delimiter: line 1 column 80); repair or quarantine it\n")

SAMPLEAPP_FAILED = Issue("sampleapp", IssueKind.UNIT_FAILED, Severity.CRITICAL, "sampleapp.service", "down",
                         "probe")

Answers = dict[tuple[str, ...], tuple[int, bytes, bytes]]


@pytest.fixture(scope="module")
def playbooks() -> list[m.Playbook]:
    return load_playbooks(PROJECT_ROOT / "playbooks")


def _issue(component: str, kind: IssueKind, subject: str) -> Issue:
    return Issue(component, kind, Severity.CRITICAL, subject, "broken", "probe")


def _transport(answers: Answers) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        for prefix in sorted(answers, key=len, reverse=True):
            if argv[:len(prefix)] == prefix:
                return answers[prefix]
        return 0, b"", b""
    return FakeTransport(handler)


@pytest.mark.parametrize(("stderr", "offender"), [
    (NGINX_T_DIRECTIVE, "/etc/nginx/sites-enabled/default"),
    (NGINX_T_EOF, "/etc/nginx/sites-enabled/shop"),
    (NGINX_T_DANGLING, "/etc/nginx/sites-enabled/gone"),
])
def test_nginx_test_failure_names_the_offending_file(playbooks: list[m.Playbook], stderr: bytes,
                                                     offender: str) -> None:
    transport = _transport({("nginx", "-t"): (1, b"", stderr)})
    diagnosis = diagnose(playbooks, _issue("nginx", IssueKind.CONFIG_INVALID, "nginx -t"), NGINX, transport)
    assert (diagnosis.cause, diagnosis.confidence) == ("config_invalid", 0.95)
    assert diagnosis.playbook == "nginx-config"
    assert diagnosis.variables["offender"] == offender
    assert stderr.decode() in diagnosis.evidence["nginx-test"]
    # `{unit}` filled from the component for a config-test issue (its subject is "nginx -t").
    assert ("journalctl", "-u", "nginx.service", "-n", "50", "--no-pager") in transport.argvs


def test_unit_failed_nginx_with_bad_config_prefers_the_config_playbook(playbooks: list[m.Playbook]) -> None:
    transport = _transport({("nginx", "-t"): (1, b"", NGINX_T_DIRECTIVE),
                            ("systemctl", "status"): (3, b"     Active: failed (Result: exit-code)\n", b"")})
    diagnosis = diagnose(playbooks, _issue("nginx", IssueKind.UNIT_FAILED, "nginx.service"), NGINX, transport)
    assert (diagnosis.playbook, diagnosis.cause) == ("nginx-config", "config_invalid")
    finding = diagnosis.finding_for("unit-dropin")
    assert finding is not None and finding.cause == "unit_down"


def test_corrupt_log_wins_over_the_unit_playbook(playbooks: list[m.Playbook]) -> None:
    transport = _transport({
        ("env", "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=/opt/sampleapp", "python3"): (3, b"", CHECK_CORRUPT),
        ("systemctl", "status"): (3, b"     Active: failed (Result: exit-code)\n"
                                     b" (code=exited, status=3/NOTIMPLEMENTED)", b""),
    })
    diagnosis = diagnose(playbooks, SAMPLEAPP_FAILED, SAMPLEAPP, transport)
    assert (diagnosis.cause, diagnosis.playbook) == ("log_corrupt", "jsonl-log")
    assert diagnosis.variables["log"] == "/var/lib/sampleapp/interactions.jsonl"


def test_dropin_is_found_and_extracted(playbooks: list[m.Playbook]) -> None:
    transport = _transport({("systemctl", "status"): (3, STATUS_FAILED, b""),
                            ("systemctl", "cat"): (0, CAT_WITH_DROPIN, b"")})
    diagnosis = diagnose(playbooks, SAMPLEAPP_FAILED, SAMPLEAPP, transport)
    assert (diagnosis.cause, diagnosis.confidence) == ("dropin_present", 0.75)
    assert diagnosis.playbook == "unit-dropin"
    assert diagnosis.variables["dropin"] == "/etc/systemd/system/sampleapp.service.d/50-tuning.conf"


def test_systemd_analyze_blame_outranks_a_mere_dropin(playbooks: list[m.Playbook]) -> None:
    verify = (b"/etc/systemd/system/sampleapp.service.d/50-tuning.conf:3: Unknown key name 'Bogus' in "
              b"section 'Service', ignoring.\n")
    transport = _transport({("systemctl", "cat"): (0, CAT_WITH_DROPIN, b""),
                            ("systemd-analyze", "verify"): (0, b"", verify)})
    diagnosis = diagnose(playbooks, SAMPLEAPP_FAILED, SAMPLEAPP, transport)
    assert (diagnosis.cause, diagnosis.confidence) == ("bad_dropin", 0.9)


def test_no_matching_rule_is_unknown(playbooks: list[m.Playbook]) -> None:
    # nginx -t fails without saying anything a rule knows.
    diagnosis = diagnose(playbooks, _issue("nginx", IssueKind.CONFIG_INVALID, "nginx -t"), NGINX,
                         _transport({("nginx", "-t"): (1, b"", b"Segmentation fault\n")}))
    assert (diagnosis.cause, diagnosis.confidence, diagnosis.playbook) == ("unknown", 0.0, None)
    assert diagnosis.is_unknown and diagnosis.variables == {}


def test_valid_config_is_a_weak_finding(playbooks: list[m.Playbook]) -> None:
    transport = _transport({("nginx", "-t"): (0, b"", NGINX_T_OK)})
    http_down = _issue("nginx", IssueKind.HTTP_DOWN, "http://127.0.0.1/")
    diagnosis = diagnose(playbooks, http_down, NGINX, transport)
    assert (diagnosis.cause, diagnosis.confidence) == ("config_valid", 0.15)


def test_no_applicable_playbook_runs_nothing(playbooks: list[m.Playbook]) -> None:
    transport = _transport({})
    diagnosis = diagnose(playbooks, _issue("cron", IssueKind.CONFIG_INVALID, "crontab"),
                         Component("cron"), transport)
    assert diagnosis.cause == "unknown" and not transport.calls and not diagnosis.findings


def test_diagnostic_without_a_valid_placeholder_value_is_not_run(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ndescription: d\napplies_to: {components: ['*'], kinds: [disk_full]}\n"
                    "diagnostics:\n  - {name: st, run: [systemctl, status, '{unit}']}\n"
                    "  - {name: df, run: [df, '{subject}']}\n"
                    "rules:\n  - {when: {diagnostic: st, not_matches: running}, cause: odd,"
                    " confidence: 0.5}\n"
                    "strategies:\n  - {name: s, description: d, for_causes: ['*'], effectiveness: 0.5,"
                    " steps: [{reduce_logs: {min_bytes: 1, method: compress}}]}\n")
    transport = _transport({})
    diagnosis = diagnose([load_playbook(path)], _issue("host", IssueKind.DISK_FULL, "relative"),
                         Component("host"), transport)
    assert not transport.calls
    assert [r.note for r in diagnosis.runs] == [
        "not run: {unit} has no value here (needed by '{unit}')",
        "not run: {subject} has no value here (needed by '{subject}')"]
    # not_matches over a diagnostic that never ran must not become a diagnosis.
    assert diagnosis.cause == "unknown"


def test_timeout_is_recorded_and_matches_nothing(playbooks: list[m.Playbook]) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("nginx", "-t"):
            raise CommandTimeoutError("hung", argv=list(argv))
        return 0, b"", b""
    diagnosis = diagnose(playbooks, _issue("nginx", IssueKind.HTTP_DOWN, "http://127.0.0.1/"), NGINX,
                         FakeTransport(handler))
    run = next(r for r in diagnosis.runs if r.name == "nginx-test")
    assert run.exit_status is None and run.note == "did not finish within 30 s"
    assert diagnosis.cause == "unknown"


def test_output_is_control_character_safe_and_capped(playbooks: list[m.Playbook]) -> None:
    hostile = b"\x1b[31mred\x1b[0m\x07 " + NGINX_T_DIRECTIVE + b"x" * 200_000
    diagnosis = diagnose(playbooks, _issue("nginx", IssueKind.CONFIG_INVALID, "nginx -t"), NGINX,
                         _transport({("nginx", "-t"): (1, b"", hostile)}))
    evidence = diagnosis.evidence["nginx-test"]
    assert "\x1b" not in evidence and "\\x1b[31mred" in evidence
    assert len(evidence) < 17_000 and "more characters not kept" in evidence
    assert diagnosis.variables["offender"] == "/etc/nginx/sites-enabled/default"


def test_shared_commands_run_once_and_evidence_is_keyed_by_name(playbooks: list[m.Playbook]) -> None:
    transport = _transport({})
    diagnosis = diagnose(playbooks, _issue("sampleapp", IssueKind.UNIT_FAILED, "sampleapp.service"),
                         SAMPLEAPP, transport)
    journal = ("journalctl", "-u", "sampleapp.service", "-n", "50", "--no-pager")
    assert transport.argvs.count(journal) == 1
    assert {"journal", "status", "cat", "verify", "log-check"} <= set(diagnosis.evidence)


def test_session_records_every_diagnostic_and_finding(playbooks: list[m.Playbook], tmp_path: Path) -> None:
    session = new_session(tmp_path / "sessions", "target")
    diagnosis = diagnose(playbooks, _issue("nginx", IssueKind.CONFIG_INVALID, "nginx -t"), NGINX,
                         _transport({("nginx", "-t"): (1, b"", NGINX_T_DIRECTIVE)}), session=session)
    events = [json.loads(line) for line in (session.dir / "evidence.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["diagnostic", "diagnostic", "finding"]
    assert events[2]["cause"] == "config_invalid"
    assert json.dumps(diagnosis.as_dict())   # serialisable for diagnosis-<component>.json

