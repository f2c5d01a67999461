"""``{placeholder}`` templates in playbook argv tokens and paths, and the values that may fill them.

A template is parsed once at load time into literal parts and placeholder names. Rendering is a single
pass: a value is inserted verbatim into *its* token and never re-scanned, so a value containing
``{other}``, spaces, ``;`` or newlines stays inside the one argv element it was put in (argv is never
handed to a shell). ``{{`` and ``}}`` stand for literal braces.

Values come from the issue (``component``, ``subject``, ``unit``) and from ``extract`` rules reading
guest output, so all of them are untrusted and checked by :func:`check_value` before use.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.errors import StepNotApplicableError
from orchestrator.model import Component, Issue

#: Names every template may use; ``extract`` variables of a playbook add to these.
BUILTINS = frozenset({"component", "subject", "unit"})

VAR_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
COMPONENT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
#: Same unit types as fix packages accept (fixpkg/ops.py), so a unit we act on can also be replayed.
UNIT_RE = re.compile(r"^[A-Za-z0-9@._-]{1,200}\.(service|socket|timer|target|path|mount)$")
MAX_VALUE = 4096

_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Var:
    """A placeholder inside a template."""

    name: str


@dataclass(frozen=True)
class Template:
    """One argv token or path, parsed into literal strings and :class:`Var` parts."""

    raw: str
    parts: tuple[str | Var, ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts if isinstance(p, Var))

    @property
    def is_literal(self) -> bool:
        return not self.names

    def render(self, values: Mapping[str, str]) -> str:
        """Fill the placeholders from ``values``.

        Raises:
            StepNotApplicableError: a placeholder has no value here (no unit, nothing extracted).
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.name in values:
                out.append(values[part.name])
            else:
                raise StepNotApplicableError(
                    f"{{{part.name}}} has no value here (needed by {self.raw!r})"
                )
        return "".join(out)


def parse_template(raw: str) -> Template:
    """Parse ``raw``; the caller decides which names are allowed (see :attr:`Template.names`).

    Raises:
        ValueError: NUL, an unbalanced brace, or a malformed placeholder name (pydantic turns it into a
            message at the key path).
    """
    if "\0" in raw:
        raise ValueError("NUL character not allowed")
    parts: list[str | Var] = []
    literal: list[str] = []
    pos = 0
    for match in _TOKEN_RE.finditer(raw):
        literal.append(raw[pos:match.start()])
        pos = match.end()
        text = match.group(0)
        if text in ("{{", "}}"):
            literal.append(text[0])
        elif text in ("{", "}"):
            raise ValueError(f"unbalanced {text!r} (write {text * 2} for a literal brace)")
        else:
            name = match.group(1)
            if not VAR_NAME_RE.match(name):
                raise ValueError(f"{{{name}}} is not a valid placeholder name")
            if "".join(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(Var(name))
    literal.append(raw[pos:])
    if "".join(literal):
        parts.append("".join(literal))
    return Template(raw, tuple(parts))


def check_value(name: str, value: str) -> str | None:
    """Why ``value`` may not fill ``{name}``, or None when it may.

    Every value: no NUL (it would cut the argument), bounded, and no leading ``-`` (a whole-token value
    must never turn into an option). ``subject`` must be an absolute path or a unit name, ``unit`` a
    unit name, ``component`` a component name.
    """
    problems = [
        ("\0" in value, "contains NUL"),
        (not value or len(value) > MAX_VALUE, f"empty or longer than {MAX_VALUE} characters"),
        (value.startswith("-"), "starts with '-'"),
        (name == "component" and not COMPONENT_RE.match(value), "not a component name"),
        (name == "unit" and not UNIT_RE.match(value), "not a unit name"),
        (name == "subject" and not (posixpath.isabs(value) or UNIT_RE.match(value)),
         "neither an absolute path nor a unit name"),
    ]
    return next((why for failed, why in problems if failed), None)


def unit_of(issue: Issue, component: Component) -> str | None:
    """The unit ``{unit}`` means: the issue's subject when it is one of the component's units, else the
    component's first unit (None when it has none)."""
    if issue.subject in component.units:
        return issue.subject
    return component.units[0] if component.units else None


def builtin_values(issue: Issue, component: Component) -> dict[str, str]:
    """The built-in placeholder values that pass :func:`check_value`; invalid ones are left out, so a
    template using them cannot render (its diagnostic or step does not apply)."""
    candidates = {"component": component.name, "subject": issue.subject, "unit": unit_of(issue, component)}
    return {k: v for k, v in candidates.items() if v is not None and check_value(k, v) is None}


def merge_values(builtins: Mapping[str, str], variables: Mapping[str, str]) -> dict[str, str]:
    """Built-ins plus extracted variables; variables never shadow a built-in and must pass
    :func:`check_value` (they come from guest output)."""
    merged = dict(builtins)
    for name, value in variables.items():
        if name not in BUILTINS and VAR_NAME_RE.match(name) and check_value(name, value) is None:
            merged[name] = value
    return merged
