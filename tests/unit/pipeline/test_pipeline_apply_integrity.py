"""The apply stage applies the package as it is on disk, and the target refuses it unless it is the one
that was validated (issue 13). The target is the real agent script, run in-process on a scratch root
behind a FakeTransport, so nothing leaves tmp_path."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.remote import vmrepair_agent
from orchestrator.app import App
from orchestrator.boot.critical import RebootAnalysis
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.detect.detector import Detector
from orchestrator.diagnose.result import Diagnosis
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg import ABSENT, FixPackage, WriteFileOp
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.pipeline import apply as apply_stage
from orchestrator.pipeline.attempts import signature_of
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.options import Resolved, RunOptions
from orchestrator.pipeline.values import Built
from orchestrator.session.store import new_session
from orchestrator.state.outcomes import STAGE_TARGET, OutcomeStore
from orchestrator.state.transactions import TransactionStore
from orchestrator.targets.spec import parse_target
from orchestrator.transport.fake import FakeTransport

APP = Component("app", config_paths=("/etc/app",), config_test=("app", "-t"))
ISSUE = Issue("app", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "/etc/app", "bad config", "config:app")
OLD, NEW = b"workers 0\n", b"workers 4\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest(value: object) -> str:
    return sha(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


class Target:
    """The agent script answering in-process; every request is kept."""

    def __init__(self, work: Path) -> None:
        self.work, self.requests = work, []

    def __call__(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:3] == ("python3", "-I", "-B") and stdin is not None:
            request = json.loads(stdin)
            self.requests.append(request["op"])
            return 0, json.dumps(vmrepair_agent.handle(request, work_dir=str(self.work))).encode(), b""
        return (1, b"", b"") if argv[0] == "sha256sum" else (0, b"", b"")


@pytest.fixture
def scene(tmp_path: Path, make_settings: Callable[..., Settings]) -> SimpleNamespace:
    root = tmp_path / "target"
    (root / "etc" / "app").mkdir(parents=True)
    conf = root / "etc" / "app" / "app.conf"
    conf.write_bytes(OLD)
    (tmp_path / "agent").mkdir()
    target = Target(tmp_path / "agent")
    settings = make_settings(watch=WatchConfig((APP,), mounts=()))
    transport = FakeTransport(target)
    agent = RemoteAgent(transport, timeout=5)
    ctx = RunContext(App(settings), parse_target("vm:patient"), new_session(settings.sessions_dir, "vm:p"),
                     transport, agent, Detector(settings.watch, transport, agent),
                     Resolved.of(RunOptions(stable_period_s=0, assume_yes=True), settings),
                     lambda session: None)  # type: ignore[arg-type,return-value]
    package = FixPackage(
        id="pkg-1", created_at="2026-12-05T00:00:00+00:00",
        operations=(WriteFileOp(str(conf), sha(NEW), len(NEW), 0o644, 0, 0, sha(OLD)),
                    WriteFileOp(str(root / "etc" / "app" / "new.conf"), sha(NEW), len(NEW), 0o600, 0, 0,
                                ABSENT)),
        blobs={sha(NEW): NEW}, issue={}, diagnosis={}, validation={"passed": True}, reboot_required=False,
        allowed_roots=(str(root),))
    directory = settings.state_dir / "packages" / package.id
    package.save(directory)
    return SimpleNamespace(ctx=ctx, target=target, conf=conf, package=package, directory=directory,
                           built=Built(package, directory, RebootAnalysis(False, ())))


def _apply(scene: SimpleNamespace) -> Any:
    work, winner = SimpleNamespace(component=APP), SimpleNamespace(strategy="fix-workers")
    return apply_stage.apply(scene.ctx, work, ISSUE, winner, scene.built, attempt=1)  # type: ignore[arg-type]


def test_package_rewritten_on_disk_after_validation_is_refused_by_the_target(scene: SimpleNamespace) -> None:
    # While the gate waited for the operator, package.json was rewritten: new.conf setuid, and every
    # digest inside the file made to match again, so it still loads.
    path = scene.directory / "package.json"
    doc = json.loads(path.read_bytes())
    doc["operations"][1]["mode"] = 0o4755
    doc["operations_sha256"] = _digest(doc["operations"])
    doc["package_sha256"] = _digest({k: v for k, v in doc.items() if k != "package_sha256"})
    path.write_text(json.dumps(doc))
    on_disk = FixPackage.load(scene.directory)

    applied = _apply(scene)

    assert applied.status == "aborted"
    assert "verify_package" in scene.target.requests
    assert "write_file" not in scene.target.requests and "remove_file" not in scene.target.requests
    assert (f"fix package 'pkg-1' changed since it was validated (sha256 {on_disk.package_sha256}, "
            f"expected {scene.package.package_sha256})") in applied.txn.error
    assert scene.conf.read_bytes() == OLD and not (scene.conf.parent / "new.conf").exists()


def test_package_that_no_longer_loads_is_refused_before_any_transaction(scene: SimpleNamespace) -> None:
    (scene.directory / "files" / sha(NEW)).write_bytes(b"workers 9\n")
    with pytest.raises(FixPackageError, match="does not match its hash: tampered or corrupt"):
        _apply(scene)
    assert TransactionStore(scene.ctx.app.state).find() == []
    assert scene.target.requests == [] and scene.conf.read_bytes() == OLD


def test_the_targets_verdict_is_recorded_for_the_faults_signature(scene: SimpleNamespace) -> None:
    """Issue 15: what the target says of the fix the VM validated counts for the same fault, and the
    verification after a reboot finds that fault again through the transaction."""
    diagnosis = Diagnosis("config_invalid", 0.9, "app-config", {}, {})
    work = SimpleNamespace(component=APP, components=(APP,), capture=SimpleNamespace(facts=None))
    winner = SimpleNamespace(strategy="fix-workers", diagnosis=diagnosis)
    issue = dataclasses.replace(ISSUE, evidence={"output": "patient: /etc/app/app.conf: bad line 3"})
    applied = apply_stage.apply(scene.ctx, work, issue, winner, scene.built, attempt=1)  # type: ignore[arg-type]
    assert applied.status == "applied"
    signature = signature_of(scene.ctx, work, issue, diagnosis)  # type: ignore[arg-type]
    outcomes = OutcomeStore(scene.ctx.app.state)
    assert outcomes.load_for(signature)["fix-workers"].stage(STAGE_TARGET) == (1, 1)
    assert outcomes.signature_of_txn(applied.txn.id) == signature
    # The target (vm:patient) is named nowhere in what the fleet keeps.
    assert "output: <host>: /etc/<...>/<file>.conf: bad line <n>" in signature.evidence_pattern


def test_a_failed_target_validation_is_kept_in_the_evidence(scene: SimpleNamespace) -> None:
    """The rollback's reason stays readable after a retry's round rewrote target-validation-app.json."""
    answer = scene.target.__call__

    def config_test_fails(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("app", "-t"):
            return 1, b"", b"app: bad line 3\n"
        return answer(argv, stdin)

    scene.ctx.transport.handler = config_test_fails
    work = SimpleNamespace(component=APP, components=(APP,), capture=SimpleNamespace(facts=None))
    diagnosis = Diagnosis("config_invalid", 0.9, "app-config", {}, {})
    winner = SimpleNamespace(strategy="fix-workers", diagnosis=diagnosis)
    applied = apply_stage.apply(scene.ctx, work, ISSUE, winner, scene.built,  # type: ignore[arg-type]
                                attempt=1)
    assert applied.status == "rolled_back"
    evidence = (scene.ctx.session.dir / "evidence.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in evidence]
    failed = [e for e in events if e["event"] == "target_validation_failed"]
    assert len(failed) == 1 and any("config:app" in f for f in failed[0]["failed"])
