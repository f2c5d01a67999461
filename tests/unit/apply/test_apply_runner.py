"""apply_package: applied, aborted with zero changes, or restored byte-for-byte."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.apply import apply_package
from orchestrator.fixpkg import FixPackage
from orchestrator.session.store import new_session
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore
from orchestrator.systemd.counter import read_back_argv
from tests.unit.apply.conftest import NEW_CONF, NEW_FILE, apply_journalled, journal_for, txn_state
from tests.unit.apply.fakes import FakeAgent, sha, systemd_transport
from tests.unit.fixpkg.scenario import CONF, KEY, LOG, OLD, UNIT_FILE

MakePackage = Callable[..., FixPackage]
READ_BACK_APP = tuple(read_back_argv("app.service"))


class Validator:
    def __init__(self, answer: bool = True, error: BaseException | None = None) -> None:
        self.answer, self.error, self.calls = answer, error, 0

    def __call__(self) -> bool:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer


def test_happy_path_applies_everything_in_order(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    transport = systemd_transport()
    session = new_session(tmp_path / "sessions", "ssh://target")
    result = apply_journalled(pkg, target, transport, backup_dir=tmp_path / "backup", session=session,
                           validate=Validator())
    assert (result.status, result.errors, result.ops_done) == ("applied", (), len(pkg.operations))
    assert target.files[CONF].data == NEW_CONF
    assert (target.files[NEW_FILE].uid, target.files[NEW_FILE].mode) == (101, 0o640)
    assert OLD not in target.files
    assert target.files[KEY].mode == 0o600 and target.files[KEY].data == b"secret\n"
    assert transport.argvs == [
        ("systemctl", "is-active", "--", "app.service"),   # backup: how the unit was
        ("systemctl", "daemon-reload"),
        ("systemctl", "reset-failed", "--", "app.service"),
        ("systemctl", "restart", "--", "app.service"),
        READ_BACK_APP,   # the restart count starts here (orchestrator.systemd.counter)
    ]
    txn = txn_state(tmp_path / "backup", result.txn_id)
    assert (txn.state, txn.ops_done, txn.ops_total) == ("committed", len(pkg.operations), len(pkg.operations))
    events = [json.loads(line) for line in (session.dir / "evidence.jsonl").read_text().splitlines()]
    applied = [e["event"] for e in events if e["stage"] == "apply"]
    assert applied[:2] == ["started", "backup_verified"] and applied[-2:] == ["operations_done", "finished"]
    assert events[-1]["status"] == "applied" and set(events[-1]["durations"]) >= {"preflight", "backup"}
    assert set(result.as_dict()) == {"status", "package_id", "backup_dir", "ops_done", "errors",
                                     "durations", "notes", "txn_id"}


def test_target_changed_since_capture_aborts_with_zero_changes(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    target.files[CONF].data = b"edited by an admin meanwhile\n"
    before = target.state()
    transport, validate = systemd_transport(), Validator()
    result = apply_journalled(pkg, target, transport, backup_dir=tmp_path / "backup", validate=validate)
    assert result.status == "aborted" and result.is_target_untouched
    assert result.errors[0].startswith(f"target changed since capture: {CONF} (expected sha256 ")
    assert target.mutations == [] and target.state() == before
    assert transport.calls == [] and validate.calls == 0


def test_file_that_appeared_since_capture_aborts(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    content = b"someone else's\n"
    target.write_file(NEW_FILE, content, mode=0o644, uid=0, gid=0)
    target.mutations.clear()
    result = apply_journalled(pkg, target, systemd_transport(), backup_dir=tmp_path / "b",
                           validate=Validator())
    assert result.status == "aborted"
    assert result.errors == (
        f"target changed since capture: {NEW_FILE} (expected absent, sha256 {sha(content)[:12]})",
    )
    assert target.mutations == []


def test_backup_failure_aborts_with_zero_changes(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    journal = journal_for(pkg, tmp_path / "backups" / "one")
    (tmp_path / "backups" / "one").write_text("a regular file where the backup directory should be")
    before = target.state()
    validate = Validator()
    result = apply_package(pkg, target, systemd_transport(), backup_dir=tmp_path / "backups" / "one",
                           journal=journal, validate=validate)
    assert result.status == "aborted"
    assert result.errors[0].startswith(f"cannot create directory {tmp_path / 'backups' / 'one'}")
    assert txn_state(tmp_path / "backups" / "one", result.txn_id).state == "aborted"
    assert target.mutations == [] and target.state() == before and validate.calls == 0


def test_existing_backup_is_never_overwritten(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "backup.json").write_text("{}")
    result = apply_journalled(make_package(), target, systemd_transport(), backup_dir=tmp_path / "backup",
                           validate=Validator())
    assert result.status == "aborted"
    assert "already holds a backup" in result.errors[0]
    assert target.mutations == []


def test_validation_failure_restores_everything_byte_for_byte(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    before = target.state()
    transport = systemd_transport()
    result = apply_journalled(pkg, target, transport, backup_dir=tmp_path / "backup",
                           validate=Validator(answer=False))
    assert result.status == "rolled_back"
    assert result.errors == ("validation failed on the target after applying the package",)
    assert target.state() == before   # content, mode, uid and gid of every file; NEW_FILE gone
    assert transport.argvs[-4:] == [   # the unit runs the restored config again
        ("systemctl", "daemon-reload"),
        ("systemctl", "reset-failed", "--", "app.service"),
        ("systemctl", "restart", "--", "app.service"),
        READ_BACK_APP,
    ]
    assert txn_state(tmp_path / "backup", result.txn_id).state == "rolled_back"
    assert "rollback" in result.durations


def test_failure_on_the_second_write_restores_and_leaves_units_alone(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    before = target.state()
    target.fail_write_on = {2}
    transport = systemd_transport()
    result = apply_journalled(pkg, target, transport, backup_dir=tmp_path / "backup", validate=Validator())
    assert result.status == "rolled_back" and result.ops_done == 1
    assert result.errors == (
        f"operation 1 (write_file {NEW_FILE}) failed: injected failure writing {NEW_FILE}",
    )
    assert target.state() == before
    # No systemctl operation had begun: the service is not restarted for nothing.
    assert transport.argvs == [("systemctl", "is-active", "--", "app.service")]


def test_failing_unit_action_restores_and_restarts_on_the_old_config(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    before = target.state()
    transport = systemd_transport()
    answer = transport.handler

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        # The new config makes the service fail to start; the restored one works.
        if argv[1] == "restart" and target.files[CONF].data == NEW_CONF:
            return 1, b"", b"Job for app.service failed.\n"
        return answer(argv, stdin)  # type: ignore[return-value]

    transport.handler = handler
    result = apply_journalled(pkg, target, transport, backup_dir=tmp_path / "b", validate=Validator())
    assert result.status == "rolled_back"
    assert result.errors[0].startswith("operation 6 (unit app.service) failed: target: command")
    assert target.state() == before


def test_unit_actions_run_in_package_order_after_one_daemon_reload(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    replay = [
        {"op": "unit", "unit": "app-worker.service", "action": "stop"},
        {"op": "daemon_reload"},
        {"op": "unit", "unit": "app.service", "action": "restart"},
        {"op": "unit", "unit": "app-worker.service", "action": "start"},
    ]
    transport = systemd_transport()
    result = apply_journalled(make_package(replay), target, transport, backup_dir=tmp_path / "b",
                           validate=Validator())
    assert result.status == "applied"
    assert [argv for argv in transport.argvs if argv[1] != "is-active"] == [
        ("systemctl", "daemon-reload"),
        ("systemctl", "reset-failed", "--", "app-worker.service"),
        ("systemctl", "stop", "--", "app-worker.service"),
        ("systemctl", "reset-failed", "--", "app.service"),
        ("systemctl", "restart", "--", "app.service"),
        READ_BACK_APP,
        ("systemctl", "reset-failed", "--", "app-worker.service"),
        ("systemctl", "start", "--", "app-worker.service"),
        tuple(read_back_argv("app-worker.service")),
    ]


def test_rollback_failure_is_reported_loudly_with_the_backup(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    writes_in_package = sum(op.name in ("write_file", "set_meta") for op in pkg.operations)
    target.fail_all_writes_after = writes_in_package   # every restore write fails
    result = apply_journalled(pkg, target, systemd_transport(), backup_dir=tmp_path / "backup",
                           validate=Validator(answer=False))
    assert result.status == "rollback_failed"
    assert result.errors[0] == "validation failed on the target after applying the package"
    assert f"restore {CONF}: injected failure writing {CONF}" in result.errors
    assert f"{CONF} still differs from the backup after restore" in result.errors
    assert any("MANUAL RECOVERY NEEDED" in note and str(tmp_path / "backup") in note
               for note in result.notes)
    txn = txn_state(tmp_path / "backup", result.txn_id)
    assert txn.state == "rollback_failed" and txn.error


def test_validation_raising_is_a_failure_too(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    before = target.state()
    result = apply_journalled(make_package(), target, systemd_transport(), backup_dir=tmp_path / "b",
                           validate=Validator(error=RuntimeError("probe crashed")))
    assert result.status == "rolled_back"
    assert result.errors == ("validation raised: RuntimeError: probe crashed",)
    assert target.state() == before


def test_interrupt_restores_then_propagates(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    before = target.state()
    with pytest.raises(KeyboardInterrupt):
        apply_journalled(make_package(), target, systemd_transport(), backup_dir=tmp_path / "b",
                      validate=Validator(error=KeyboardInterrupt()))
    assert target.state() == before


def test_failed_unit_may_fail_again_after_rollback(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    """A unit that was failing before the fix is back on its old config; failing again is its old state."""
    failing_restart = ("systemctl", "restart", "--", "app.service")
    transport = systemd_transport({"app.service": "failed"})
    base = transport.handler
    calls = {"restarts": 0}

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv == failing_restart:
            calls["restarts"] += 1
            if calls["restarts"] > 1:   # the restart during rollback, on the broken old config
                return 1, b"", b"failed\n"
        return base(argv, stdin)  # type: ignore[return-value]

    transport.handler = handler
    result = apply_journalled(make_package(), target, transport, backup_dir=tmp_path / "b",
                           validate=Validator(answer=False))
    assert result.status == "rolled_back"
    assert calls["restarts"] == 2


def test_rotation_is_applied_and_noted(target: FakeAgent, make_package: MakePackage, tmp_path: Path) -> None:
    replay = [{"op": "rotate_log", "path": LOG, "method": "compress"}]
    result = apply_journalled(make_package(replay, files=False), target, systemd_transport(),
                           backup_dir=tmp_path / "b", validate=Validator())
    assert result.status == "applied"
    assert target.files[LOG].data == b"" and f"{LOG}.1.gz" in target.files
    assert result.notes == (f"rotated {LOG}: freed 5000 bytes, archive {LOG}.1.gz"
                            " (a rollback does not undo a rotation)",)
    backup = json.loads((tmp_path / "b" / "backup.json").read_bytes())
    assert backup["entries"] == [{"path": LOG, "existed": True, "kind": "rotated_log",
                                  "sha256": sha(b"line\n" * 1000), "size": 5000, "mode": 0o640,
                                  "uid": 101, "gid": 101, "link": None}]
    assert not any((tmp_path / "b" / "files").iterdir())   # metadata only: the archive keeps the data


def test_unit_file_change_alone_still_reloads(target: FakeAgent, make_package: MakePackage,
                                              tmp_path: Path) -> None:
    pkg = make_package([])
    assert UNIT_FILE in pkg.paths
    transport = systemd_transport()
    assert apply_journalled(pkg, target, transport, backup_dir=tmp_path / "b",
                         validate=Validator()).status == "applied"
    assert transport.argvs == [("systemctl", "daemon-reload")]


def test_each_step_is_journalled_before_the_change(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    seen: list[tuple[str, int, int]] = []
    write = target.write_file

    def spying_write(path: str, data: bytes, **kwargs: Any) -> Any:
        assert (backup / "backup.json").exists()
        txns = TransactionStore(open_state(tmp_path / "state.db")).find()
        steps = TransactionStore(open_state(tmp_path / "state.db")).steps(txns[0].id)
        seen.append((txns[0].state, steps[-1]["step"], steps[-1]["detail"].get("index", -1)))
        return write(path, data, **kwargs)

    target.write_file = spying_write  # type: ignore[method-assign]
    assert apply_journalled(make_package(), target, systemd_transport(), backup_dir=backup,
                         validate=Validator()).status == "applied"
    # The step naming each write is durable before the write happens.
    assert seen[:2] == [("applying", "op_started", 0), ("applying", "op_started", 1)]


def test_failing_daemon_reload_is_named_and_rolled_back(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    before = target.state()
    calls = {"reloads": 0}
    transport = systemd_transport()
    base = transport.handler

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv == ("systemctl", "daemon-reload"):
            calls["reloads"] += 1
            if calls["reloads"] == 1:
                return 1, b"", b"Failed to reload daemon\n"
        return base(argv, stdin)  # type: ignore[return-value]

    transport.handler = handler
    pkg = make_package()
    result = apply_journalled(pkg, target, transport, backup_dir=tmp_path / "b", validate=Validator())
    index = [op.name for op in pkg.operations].index("daemon_reload")
    assert result.status == "rolled_back"
    assert result.errors[0].startswith(f"operation {index} (daemon_reload) failed: target: command")
    assert target.state() == before


def test_package_changed_since_validation_is_refused_by_the_target(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    validated = make_package()
    # The same fix with its validation verdict edited: what an edit of the package on disk between
    # validation and apply looks like once the package is read back (every digest rewritten to match).
    fields = {name: getattr(validated, name) for name in validated.__dataclass_fields__}
    tampered = FixPackage(**{**fields, "validation": {**validated.validation, "passed": "yes, trust me"}})
    before = target.state()
    transport, validate = systemd_transport(), Validator()
    result = apply_journalled(tampered, target, transport, backup_dir=tmp_path / "backup", validate=validate,
                              validated_sha256=validated.package_sha256)
    assert result.status == "aborted" and result.is_target_untouched
    (error,) = result.errors
    assert f"fix package {validated.id!r} changed since it was validated" in error
    assert f"sha256 {tampered.package_sha256}, expected {validated.package_sha256}" in error
    assert target.mutations == [] and target.state() == before
    assert transport.argvs == [("systemctl", "is-active", "--", "app.service")]   # the backup's read only
    assert validate.calls == 0
    assert txn_state(tmp_path / "backup", result.txn_id).state == "aborted"


def test_validated_package_is_checked_by_the_target_and_its_digest_journalled(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    result = apply_journalled(pkg, target, systemd_transport(), backup_dir=tmp_path / "backup",
                              validate=Validator(), validated_sha256=pkg.package_sha256)
    assert result.status == "applied"
    assert [c for c in target.calls if c[0] == "verify_package"]
    steps = TransactionStore(open_state(tmp_path / "state.db")).steps(result.txn_id)
    (backed_up,) = [s for s in steps if s["step"] == "backup_verified"]
    assert backed_up["detail"]["package_sha256"] == pkg.package_sha256
