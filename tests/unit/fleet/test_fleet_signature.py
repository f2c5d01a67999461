"""Fault signatures: the same fault on two hosts gets the same ids; nothing that names a host survives."""

from __future__ import annotations

import hashlib
import json

import pytest

from orchestrator.diagnose.result import Diagnosis
from orchestrator.facts.model import OsRelease
from orchestrator.fleet.signature import (
    COARSE,
    FINE,
    MEDIUM,
    FaultSignature,
    component_kind,
    evidence_pattern,
    fault_signature,
    normalise_evidence,
    os_release_label,
)
from orchestrator.model import Component, Issue, IssueKind, Severity


def _nginx(name: str) -> Component:
    return Component(name=name, units=("nginx.service",), packages=("nginx", "nginx-common"))


def _config_issue(site: str, line: int, host: str, address: str) -> Issue:
    output = (f'nginx: [emerg] unknown directive "lisen" in /etc/nginx/sites-enabled/{site}:{line}\n'
              f"nginx: [warn] upstream {host} ({address}:8080) resolved late\n"
              "nginx: configuration file /etc/nginx/nginx.conf test failed\n")
    return Issue("nginx", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx -t",
                 f"nginx: config test `nginx -t` exited {line % 2 + 1}",
                 "config:nginx", {"argv": "nginx -t", "exit_status": str(line % 2 + 1), "output": output})


def _diagnosis(cause: str = "config_invalid") -> Diagnosis:
    return Diagnosis(cause, 0.95, "nginx-config", {"nginx -t": "whatever the VM said"}, {})


def test_two_hosts_with_different_paths_and_numbers_share_the_signature_of_one_fault() -> None:
    web1 = fault_signature(_config_issue("site1", 3, "app1.shop.example.com", "10.0.0.7"), _nginx("nginx"),
                           _diagnosis(), "debian-12", hostnames=["web1"])
    db7 = fault_signature(_config_issue("customer-portal", 117, "backend.corp.example", "192.168.40.12"),
                          _nginx("web-frontend"), _diagnosis(), "debian-12", hostnames=["db7"])
    assert web1 == db7
    assert (web1.fine, web1.medium, web1.coarse) == (db7.fine, db7.medium, db7.coarse)
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in (web1.fine, web1.medium, web1.coarse))
    assert web1.label == "nginx / config_invalid / config_invalid"


def test_nothing_that_names_a_host_survives() -> None:
    signature = fault_signature(_config_issue("site1", 3, "app1.shop.example.com", "10.0.0.7"),
                                _nginx("nginx-on-web1"), _diagnosis(), "debian-12", hostnames=["web1"])
    text = json.dumps(signature.as_dict())
    for secret in ("site1", "app1", "shop", "example", "10.0.0.7", "web1", "sites-enabled", "8080"):
        assert secret not in text, secret
    assert signature.evidence_pattern == (
        '(subject): nginx -t; argv: nginx -t; exit_status: <n>; output: nginx: [emerg] unknown directive '
        '"lisen" in /etc/<...>/<file>:<n> | nginx: [warn] upstream <host> (<ip>) resolved late | nginx: '
        "configuration file /etc/<...>/<file>.conf test failed")


def test_levels_drop_parts_from_fine_to_coarse() -> None:
    issue, component = _config_issue("site1", 3, "h.example.com", "10.0.0.7"), _nginx("nginx")
    base = fault_signature(issue, component, _diagnosis(), "debian-12")
    other_os = fault_signature(issue, component, _diagnosis(), "debian-13")
    other_cause = fault_signature(issue, component, _diagnosis("config_valid"), "debian-12")
    other_fault = fault_signature(
        Issue("nginx", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx -t", "x", "config:nginx",
              {"output": 'unknown directive "server_nam"'}), component, _diagnosis(), "debian-12")
    # Another OS release or another evidence pattern: another fine signature, the same medium one.
    assert other_os.fine != base.fine and other_os.medium == base.medium
    assert other_fault.fine != base.fine and other_fault.medium == base.medium
    # Another cause: nothing in common.
    assert other_cause.coarse != base.coarse
    # The coarse level ignores the component: a unit_failed of nginx and one of apache with one cause
    # share it (and nothing finer).
    apache = FaultSignature("apache2", "unit_failed", "dropin_present", "", "")
    nginx = FaultSignature("nginx", "unit_failed", "dropin_present", "x", "debian-12")
    assert apache.coarse == nginx.coarse and apache.medium != nginx.medium
    assert base.parts(MEDIUM) == {"component_kind": "nginx", "issue_kind": "config_invalid",
                                  "cause": "config_invalid"}
    assert set(base.parts(FINE)) == {"component_kind", "issue_kind", "cause", "evidence_pattern",
                                     "os_release"}
    assert base.parts(COARSE) == {"issue_kind": "config_invalid", "cause": "config_invalid"}


def test_ids_are_stable_across_releases_of_this_code() -> None:
    """The ids are the fleet's keys: a change to how they are computed splits every record in two."""
    signature = FaultSignature("nginx", "config_invalid", "config_invalid", "p", "debian-12")
    canonical = b'{"cause":"config_invalid","issue_kind":"config_invalid","level":"coarse"}'
    assert signature.coarse == hashlib.sha256(canonical).hexdigest()[:16] == "c972f43c8fbf2ac5"
    assert signature.id(COARSE) == signature.coarse


@pytest.mark.parametrize(("component", "kind"), [
    (Component("web", units=("nginx.service",), packages=("nginx", "nginx-common")), "nginx"),
    (Component("worker", units=("app-worker@blue.service",)), "app-worker@<i>.service"),
    (Component("sampleapp", units=("sampleapp.service",)), "sampleapp.service"),
    (Component("host"), "host"),
])
def test_component_kind_is_a_package_or_unit_never_the_name_given_to_it(component: Component,
                                                                          kind: str) -> None:
    assert component_kind(component) == kind


@pytest.mark.parametrize(("text", "pattern"), [
    ("in /etc/nginx/sites-enabled/site1:3", "in /etc/<...>/<file>:<n>"),
    ("/etc/nginx/nginx.conf", "/etc/<...>/<file>.conf"),
    ("/srv/shop/app.py", "/srv/<...>/<file>.py"),
    ("/etc/fstab", "/etc/<file>"),
    ("/customer/x", "/<dir>/<file>"),
    ("mounted on /", "mounted on /"),
    ("GET http://web1:8080/health?id=3 failed", "GET <url> failed"),
    ("login root@web1", "login <user@host>"),
    ("getty@tty1.service failed", "getty@<i>.service failed"),
    ("from 10.0.0.7:443 and fe80::1", "from <ip> and <ip>"),
    ("resolve db.example.com; read nginx.conf; start app.service", "resolve <host>; read nginx.conf; "
                                                                    "start app.service"),
    ("id 3fa2c9e1d0, 0x1f, 550e8400-e29b-41d4-a716-446655440000", "id <hex>, <hex>, <hex>"),
    ("at 2026-05-01T12:30:45Z pid 1234", "at <n>-<n>-<n>T<n>:<n>:<n>Z pid <n>"),
    ("  spaced \t out\n ", "spaced out"),
    ("a :: b", "a :: b"),
])
def test_normalisation(text: str, pattern: str) -> None:
    assert normalise_evidence(text) == pattern


def test_known_host_names_go_wherever_they_stand_as_a_word() -> None:
    assert normalise_evidence("WEB1 is down, web1. web10 stays", hostnames=["web1"]) == \
        "<host> is down, <host>. web<n> stays"


def test_listings_of_different_lengths_give_one_pattern_and_everything_is_capped() -> None:
    three = {"big_files": "\n".join(f"{n * 1000} /var/log/app/part{n}.log" for n in range(3))}
    five = {"big_files": "\n".join(f"{n * 7} /var/log/other/x{n}.log" for n in range(5))}
    assert evidence_pattern(three) == evidence_pattern(five) == "big_files: <n> /var/<...>/<file>.log"
    huge = {"output": "\n".join(f"line {'x' * n}" for n in range(2000))}
    assert len(evidence_pattern(huge)) <= 512


def test_os_release_label() -> None:
    assert os_release_label(OsRelease("debian", "12", "bookworm")) == "debian-12"
    assert os_release_label(OsRelease("debian")) == "debian"
    assert os_release_label(None) == ""
