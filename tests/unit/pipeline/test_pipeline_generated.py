"""The diagnose stage with strategy generators: generated strategies are ranked with the playbooks'
ones, recorded in the diagnosis evidence, excluded by name like any other, and an attempt record says
what a generated strategy does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings
from orchestrator.detect.detector import Detector
from orchestrator.model import Component, Issue, IssueKind, Severity
from orchestrator.pipeline import attempts
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.values import Workbench
from orchestrator.sandbox.protocol import ImportReport
from orchestrator.transport.fake import FakeTransport
from tests.unit.pipeline.fakes import FakeSandbox, empty_capture, run_context

SVC = Component("svc", units=("svc.service",))
ISSUE = Issue("svc", IssueKind.UNIT_INACTIVE, Severity.CRITICAL, "svc.service", "svc.service is masked",
              "unit:svc.service")


def guest(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    """The sandbox: svc.service is masked there (as on the target), and cannot be unmasked (so an
    attempt ends at its first step, without waiting for the unit)."""
    if argv[:2] == ("systemctl", "show"):
        return 0, b"LoadState=masked\nActiveState=inactive\nUnitFileState=masked\n", b""
    if argv[:2] == ("systemctl", "unmask"):
        return 1, b"", b"Failed to unmask unit: Access denied\n"
    return 0, b"", b""


@pytest.fixture
def ctx(tmp_path: Path, make_settings: Callable[..., Settings]) -> RunContext:
    books = tmp_path / "books"
    books.mkdir()
    return run_context(make_settings(watch=WatchConfig((SVC,), mounts=()), playbooks_dir=books))


def _workbench(ctx: RunContext, tmp_path: Path) -> Workbench:
    sandbox = FakeSandbox()
    sandbox._transport = FakeTransport(guest)
    probes = Detector(ctx.app.settings.watch, sandbox.transport, sandbox.agent)
    return Workbench(sandbox, probes, empty_capture(tmp_path), (SVC,), ImportReport(None, None))


def test_generated_strategies_are_ranked_and_recorded(ctx: RunContext, tmp_path: Path) -> None:
    diagnosed = attempts.diagnose(ctx, _workbench(ctx, tmp_path), ISSUE, frozenset())
    names = [r.name for r in diagnosed.ranked]
    # No playbook here applies: the generated strategies alone, the specific one before the restart.
    assert names == ["gen-unmask-svc.service", "gen-restart-svc.service"]
    recorded = json.loads((ctx.session.dir / "diagnosis-svc.json").read_text())["generated"]
    unmask = next(g for g in recorded if g["strategy"] == "gen-unmask-svc.service")
    assert unmask["playbook"] == "generated:systemd" and unmask["cause"] == "unit_masked"
    assert unmask["steps"][:2] == ["unmask svc.service", "daemon-reload"]
    assert "masked" in unmask["description"]


def test_generated_strategies_are_excluded_by_name(ctx: RunContext, tmp_path: Path) -> None:
    excluded = frozenset({"gen-unmask-svc.service"})
    diagnosed = attempts.diagnose(ctx, _workbench(ctx, tmp_path), ISSUE, excluded)
    assert "gen-unmask-svc.service" not in [r.name for r in diagnosed.ranked]


def test_an_attempt_record_says_what_a_generated_strategy_does(ctx: RunContext, tmp_path: Path) -> None:
    work = _workbench(ctx, tmp_path)
    diagnosed = attempts.diagnose(ctx, work, ISSUE, frozenset())
    only = next(r for r in diagnosed.ranked if r.name == "gen-unmask-svc.service")
    attempts.run_attempts(ctx, work, ISSUE, attempts.Diagnosed(diagnosed.diagnosis, (only,)))
    (record,) = json.loads((ctx.session.dir / "attempts-svc.json").read_text())
    assert (record["playbook"], record["outcome"]) == ("generated:systemd", "failed")
    assert record["planned"][0] == "unmask svc.service" and "Unmask svc.service" in record["description"]


def test_the_package_takes_exact_paths_from_the_sandbox_but_nothing_below_them() -> None:
    from orchestrator.agent.api import FileEntry, Manifest
    from orchestrator.pipeline.package import authoritative_after

    def folder(path: str, mode: int) -> FileEntry:
        return FileEntry(path, "dir", mode, 0, 0, "root", "root", 0, 1.0)

    db = Component("db", config_paths=("/etc/db",), data_paths=("/var/lib/db",),
                   writable_paths=("/var/lib/db",))
    before = Manifest((folder("/var/lib/db", 0o700), folder("/var/lib/db/data", 0o700)), ("/var/lib/run",))
    after = Manifest((folder("/var/lib/db", 0o750), folder("/var/lib/db/data", 0o755),
                      folder("/var/lib/run", 0o755)), ())
    merged, ignored = authoritative_after(before, after, [db], exact=("/var/lib/db", "/var/lib/run"))
    by_path = merged.by_path()
    assert by_path["/var/lib/db"].mode == 0o750 and by_path["/var/lib/run"].mode == 0o755
    assert by_path["/var/lib/db/data"].mode == 0o700          # the sandbox's data activity stays out
    assert ignored == ["/var/lib/db/data"] and merged.missing == ()


def test_the_data_roots_own_entries_are_exact_so_a_recreated_data_directory_is_packaged(
    tmp_path: Path,
) -> None:
    from orchestrator.agent.api import Manifest
    from orchestrator.capture.snapshot import Capture
    from orchestrator.pipeline.package import exact_paths

    app = Component("app", units=("app.service",), config_paths=("/etc/app",),
                    data_paths=("/var/lib/app",), writable_paths=("/var/lib/app", "/var/log/app"))
    capture = Capture(tmp_path / "files.tar", ("/etc/app", "/var/lib/app"), Manifest((), ("/var/lib/app",)),
                      (), meta_paths=("/var/cache/app",))
    # /var/log/app is not captured, so it cannot be exact (the package only diffs captured paths).
    assert exact_paths(capture, [app]) == ("/var/cache/app", "/var/lib/app")
