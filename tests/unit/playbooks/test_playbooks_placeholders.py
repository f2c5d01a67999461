"""Placeholders cannot inject: a value stays inside the one argv element it fills, and invalid values
never fill anything."""

from __future__ import annotations

import pytest

from orchestrator.errors import StepNotApplicableError
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.playbooks.placeholders import (
    Var,
    builtin_values,
    check_value,
    merge_values,
    parse_template,
    unit_of,
)
from orchestrator.transport.fake import FakeTransport

NGINX = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",))


def _issue(subject: str, component: str = "nginx") -> Issue:
    return Issue(component, IssueKind.LOG_CORRUPT, Severity.CRITICAL, subject, "s", "p")


def _render_argv(tokens: list[str], values: dict[str, str]) -> tuple[str, ...]:
    transport = FakeTransport()
    transport.run([parse_template(t).render(values) for t in tokens])
    return transport.argvs[0]


def test_parse_splits_literals_and_placeholders() -> None:
    template = parse_template("--unit={unit}.x{{y}}")
    assert template.parts == ("--unit=", Var("unit"), ".x{y}")
    assert template.names == {"unit"}
    assert parse_template("{subject}").parts == (Var("subject"),)
    assert parse_template("plain").is_literal


@pytest.mark.parametrize(("raw", "message"), [
    ("{unit", "unbalanced '{'"),
    ("a}b", "unbalanced '}'"),
    ("{Bad-Name}", "not a valid placeholder name"),
    ("{}", "not a valid placeholder name"),
    ("a\0b", "NUL"),
])
def test_parse_rejects_malformed_templates(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_template(raw)


@pytest.mark.parametrize("subject", [
    "/var/lib/my app/log.jsonl",
    "/var/lib/x; rm -rf / #",
    "/var/lib/x\nsecond line",
    "/tmp/$(reboot)`id`|cat",
    "/a/{unit}/b",
])
def test_hostile_subject_stays_one_argv_element(subject: str) -> None:
    values = builtin_values(_issue(subject), NGINX)
    argv = _render_argv(["tail", "-n", "5", "{subject}"], values)
    assert argv == ("tail", "-n", "5", subject)


def test_value_inside_a_token_stays_in_that_token_and_is_not_expanded_again() -> None:
    argv = _render_argv(["x", "--path={subject}"], {"subject": "/a b/{unit}", "unit": "evil"})
    assert argv == ("x", "--path=/a b/{unit}")


@pytest.mark.parametrize(("name", "value"), [
    ("subject", "relative/path"),
    ("subject", "-rf"),
    ("subject", "/etc/\0passwd"),
    ("subject", ""),
    ("unit", "nginx"),
    ("unit", "-nginx.service"),
    ("unit", "a/b.service"),
    ("component", "Nginx!"),
    ("offender", "--config=/x"),
])
def test_invalid_values_are_rejected(name: str, value: str) -> None:
    assert check_value(name, value) is not None


@pytest.mark.parametrize(("name", "value"), [
    ("subject", "/var/lib/sampleapp/interactions.jsonl"),
    ("subject", "nginx.service"),
    ("subject", "/"),
    ("unit", "getty@tty1.service"),
    ("component", "sampleapp"),
])
def test_valid_values_pass(name: str, value: str) -> None:
    assert check_value(name, value) is None


def test_invalid_subject_cannot_fill_a_template() -> None:
    values = builtin_values(_issue("nginx -t"), NGINX)   # a config test's subject is not a path
    assert "subject" not in values
    with pytest.raises(StepNotApplicableError, match=r"\{subject\} has no value"):
        parse_template("{subject}").render(values)


def test_unit_is_the_subject_when_it_is_one_of_the_components_units() -> None:
    multi = Component("app", units=("a.service", "b.service"))
    assert unit_of(_issue("b.service", "app"), multi) == "b.service"
    assert unit_of(_issue("/var/x", "app"), multi) == "a.service"
    assert unit_of(_issue("/var/x", "host"), Component("host")) is None
    assert "unit" not in builtin_values(_issue("/", "host"), Component("host"))


def test_variables_never_shadow_builtins_and_invalid_ones_are_dropped() -> None:
    merged = merge_values({"unit": "nginx.service"},
                          {"unit": "evil.service", "offender": "/etc/nginx/x", "bad": "-x", "Nope": "/y"})
    assert merged == {"unit": "nginx.service", "offender": "/etc/nginx/x"}
