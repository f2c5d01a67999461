"""The step kinds live one per module and everything else is built from their registry: the playbook
schema's union, the shipped JSON schema, the conversion, the placeholder checks and the dispatch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.fixpkg.replay import REPLAYABLE
from orchestrator.playbooks.loader import SCHEMA_FILE, export_schema
from orchestrator.playbooks.step_schema import STEP_FILES, STEP_KINDS
from orchestrator.steps.registry import Step, StepKind, kinds, register

ROOT = Path(__file__).resolve().parents[3]
ORCHESTRATOR = ROOT / "orchestrator"
KINDS_DIR = ORCHESTRATOR / "steps" / "kinds"
#: What the playbooks accepted before the registry; the shipped playbooks and error messages rely on it.
EXPECTED = ("run", "unit", "restore_baseline", "make_dir", "set_meta", "restore_conffile",
            "reinstall_package", "dpkg_configure", "quarantine", "quarantine_unknown_dropins",
            "jsonl_repair", "reduce_logs", "wait_active", "fstab_entry")


def test_every_kind_is_registered_in_display_order() -> None:
    assert tuple(kinds()) == EXPECTED
    assert STEP_KINDS == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_each_kind_is_whole(name: str) -> None:
    kind = kinds()[name]
    assert kind.step.kind == name and issubclass(kind.step, Step)
    assert kind.spec.__module__ == kind.step.__module__ == kind.run.__module__, "one home per kind"
    assert kind.spec.__module__.startswith("orchestrator.steps.kinds.")
    assert set(kind.template_fields) <= set(kind.spec.model_fields)
    # The fix package trusts only these operations from the repair layer.
    assert kind.replays <= set(REPLAYABLE)


@pytest.mark.parametrize("name", EXPECTED)
def test_every_kind_is_in_the_schema_union_and_the_shipped_json_schema(name: str) -> None:
    wrapper = STEP_FILES[name].__name__
    assert set(STEP_FILES[name].model_fields) == {name}
    for schema in (export_schema(), json.loads((ROOT / "playbooks" / SCHEMA_FILE).read_text())):
        steps = schema["$defs"]["StrategyFile"]["properties"]["steps"]["items"]["oneOf"]
        assert {"$ref": f"#/$defs/{wrapper}"} in steps
        assert list(schema["$defs"][wrapper]["properties"]) == [name]


def test_a_kind_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register(kinds()["run"])


def test_a_kind_must_match_its_step_class() -> None:
    kind = kinds()["run"]
    with pytest.raises(ValueError, match=r"RunStep\.kind is 'run'"):
        register(StepKind(**{**kind.__dict__, "name": "run2"}))


def _sources(root: Path) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(root.rglob("*.py"))]


def test_no_match_per_kind_remains() -> None:
    # Dispatch goes through the registry: no `match` on step classes anywhere in the package.
    classes = {kind.step.__name__ for kind in kinds().values()}
    offenders = []
    for path, tree in _sources(ORCHESTRATOR):
        for node in ast.walk(tree):
            if isinstance(node, ast.MatchClass) and isinstance(node.cls, ast.Name | ast.Attribute):
                named = node.cls.id if isinstance(node.cls, ast.Name) else node.cls.attr
                if named in classes:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} case {named}()")
    assert offenders == []


def test_the_loader_and_the_driver_name_no_kind() -> None:
    # Only the kinds' own modules (and re-exports kept for older importers) may import a kind module.
    compat = {ORCHESTRATOR / "playbooks" / "model.py", *(ORCHESTRATOR / "repair" / "steps").glob("*.py")}
    offenders = []
    for folder in ("playbooks", "repair", "steps"):
        for path, tree in _sources(ORCHESTRATOR / folder):
            if path in compat or path.is_relative_to(KINDS_DIR):
                continue
            for node in ast.walk(tree):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                if module and module.startswith("orchestrator.steps.kinds"):
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module}")
    assert offenders == []


NEW_KIND = '''
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from orchestrator.playbooks.fields import Strict, Token
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.registry import Step, StepKind, register


class EchoSpec(Strict):
    text: Token


@dataclass(frozen=True)
class EchoStep(Step):
    text: Template
    kind: ClassVar[str] = "echo"


register(StepKind(
    name="echo", order=15, spec=EchoSpec, step=EchoStep,
    convert=lambda spec: EchoStep(parse_template(spec.text)),
    describe=lambda step: f"echo {step.text.raw}",
    templates=lambda step: (step.text,),
    run=lambda step, ctx, io: io.run(["echo", step.text.render(ctx.values())]).stdout_text.strip(),
    template_fields=("text",),
))
'''

PLAYBOOK = '''
name: echo-test
description: a playbook with the new kind
applies_to: {components: ["*"], kinds: [unit_failed]}
strategies:
  - name: echo-it
    description: d
    for_causes: ["*"]
    effectiveness: 0.5
    steps:
      - echo: {text: '{component}'}
  - name: echo-bad
    description: d
    for_causes: ["*"]
    effectiveness: 0.5
    steps:
      - echo: {text: '{nothing}'}
'''

PROBE = '''
import sys
from pathlib import Path
import orchestrator.steps.kinds as package
package.__path__.append(sys.argv[1])
from orchestrator.errors import PlaybookError
from orchestrator.playbooks.loader import export_schema, load_playbook
from orchestrator.playbooks.step_schema import STEP_KINDS
from orchestrator.steps.registry import describe, templates
print(",".join(STEP_KINDS[:3]))
print("EchoStepFile" in export_schema()["$defs"])
try:
    load_playbook(Path(sys.argv[2]))
except PlaybookError as exc:
    print(exc.message.splitlines()[0].split(": ", 1)[1])
Path(sys.argv[2]).write_text(Path(sys.argv[2]).read_text().split("  - name: echo-bad")[0])
step = load_playbook(Path(sys.argv[2])).strategies[0].steps[0]
print(type(step).__name__, describe(step), [t.raw for t in templates(step)])
'''


def test_adding_a_kind_is_one_module(tmp_path: Path) -> None:
    # A kind module dropped into the kinds package (here: a folder added to its path, in a fresh
    # interpreter) reaches the schema, the placeholder checks, the conversion and the dispatch.
    (tmp_path / "kinds").mkdir()
    (tmp_path / "kinds" / "echo.py").write_text(NEW_KIND)
    playbook = tmp_path / "echo.yaml"
    playbook.write_text(PLAYBOOK)
    probe = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE), str(tmp_path / "kinds"),
                            str(playbook)], capture_output=True, text=True, check=False, cwd=ROOT)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines() == [
        "run,echo,unit",
        "True",
        "strategies[1].steps[0].echo.text: unknown placeholder {nothing} (known: component, subject, unit)",
        "EchoStep echo {component} ['{component}']",
    ]
