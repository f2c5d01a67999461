"""The ``notify:`` section from config.yaml to a working hub: defaults, routes, validation messages, and
the deprecated ``reboot.notifiers`` still reaching their receivers."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.config.loading import load_model
from orchestrator.config.notify import NotifySettings, WebhookChannelSettings
from orchestrator.config.reboot import RebootSettings
from orchestrator.config.settings import ConfigFile, Settings
from orchestrator.errors import ConfigError
from orchestrator.notify.build import RebootBridge, build_notifications
from orchestrator.notify.event import Event, EventKind
from orchestrator.reboot.notify import RebootEvent
from tests.unit.notify.conftest import Hook, Recorder

#: Appends its stdin (one event) as a line to the file named by argv[1].
CAPTURE = """import sys
with open(sys.argv[1], "ab") as out:
    out.write(sys.stdin.buffer.read() + b"\\n")
"""


def config(tmp_path: Path, text: str) -> ConfigFile:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_model(path, ConfigFile)


def test_default_sends_every_event_to_the_log_with_a_troubleshooting_summary() -> None:
    settings = NotifySettings()
    assert settings.troubleshooting == "summary"
    audit = MemoryAuditSink()
    notes = build_notifications(settings, RebootSettings(), audit)
    for kind in EventKind:
        assert notes.channels_for(kind) == ["log"]
    notes.emit(Event(EventKind.PENDING_REBOOT, "local", "reboot pending", component="app"))
    assert [r["event"] for r in audit.records] == ["pending_reboot"]


def test_routes_from_the_file(tmp_path: Path, hook: Hook) -> None:
    cfg = config(tmp_path, f"""
notify:
  troubleshooting: immediate
  channels:
    log: {{kind: log}}
    ops: {{kind: webhook, url: "{hook.url}", timeout_s: 2, retries: 0}}
  routes:
    "*": [log]
    not_repaired: [log, ops]
    repaired: []
""")
    audit = MemoryAuditSink()
    notes = build_notifications(cfg.notify, cfg.reboot, audit)
    assert notes.channels_for(EventKind.NOT_REPAIRED) == ["log", "ops"]
    assert notes.channels_for(EventKind.REPAIRED) == []
    assert notes.channels_for(EventKind.QUARANTINED) == ["log"]
    notes.emit(Event(EventKind.NOT_REPAIRED, "vm:web", "nginx not repaired", component="nginx"))
    notes.emit(Event(EventKind.REPAIRED, "vm:web", "nginx repaired", component="nginx"))
    assert notes.flush()
    assert [json.loads(r["body"])["kind"] for r in hook.received] == ["not_repaired"]
    assert [r["event"] for r in audit.records] == ["not_repaired"]


@pytest.mark.parametrize(("text", "message"), [
    ("notify:\n  routes:\n    repaird: [log]\n",
     "notify: Value error, routes: unknown event 'repaird' (use \"*\" or an event such as not_repaired; "),
    ("notify:\n  routes:\n    repaired: [pager]\n",
     "notify: Value error, routes.repaired: no channel named 'pager' (channels: log)"),
    ("notify:\n  troubleshooting: sometimes\n", "notify.troubleshooting: "),
    ("notify:\n  channels:\n    ops: {kind: webhook, url: 'ftp://x'}\n", "notify.channels.ops.webhook.url: "),
    ("notify:\n  channels:\n    ops: {kind: webhook, url: 'https://x', retries: 99}\n",
     "notify.channels.ops.webhook.retries: "),
    ("notify:\n  channels:\n    ops: {kind: command, argv: []}\n", "notify.channels.ops.command.argv: "),
    ("notify:\n  channels:\n    ops: {kind: sms}\n", "notify.channels.ops: "),
])
def test_invalid_notify_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, text)
    assert message in caught.value.message


def test_legacy_reboot_notifiers_still_get_reboot_events(tmp_path: Path, hook: Hook,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    out, script = tmp_path / "events.jsonl", tmp_path / "capture.py"
    script.write_text(CAPTURE)
    cfg = config(tmp_path, f"""
reboot:
  notifiers:
    - {{kind: log}}
    - {{kind: webhook, url: "{hook.url}", timeout_s: 2}}
    - {{kind: command, argv: ["{sys.executable}", "{script}", "{out}"]}}
""")
    audit = MemoryAuditSink()
    with caplog.at_level(logging.WARNING):
        notes = build_notifications(cfg.notify, cfg.reboot, audit)
    assert "`reboot.notifiers` is deprecated" in caplog.text
    # One log line per event: the legacy {kind: log} is the notify section's log channel.
    assert notes.channels_for(EventKind.REBOOT_FAILED) == ["log", "reboot.1", "reboot.2"]
    assert notes.channels_for(EventKind.REPAIRED) == ["log"]
    RebootBridge(notes).notify(RebootEvent("reboot_failed", "vm:web", "vm:web did not come back",
                                           txn_id="tx-1", support_ref="VMR-1A2B3C4D",
                                           manual_steps=["reach the console"]))
    notes.emit(Event(EventKind.REPAIRED, "vm:web", "nginx repaired"))
    assert notes.flush()
    [received] = [json.loads(r["body"]) for r in hook.received]
    assert (received["kind"], received["component"], received["summary"]) == (
        "reboot_failed", "reboot", "vm:web did not come back")
    assert received["details"] == {"txn_id": "tx-1", "support_ref": "VMR-1A2B3C4D",
                                   "manual_steps": ["reach the console"]}
    [line] = out.read_text().splitlines()
    assert json.loads(line)["kind"] == "reboot_failed"
    assert [r["event"] for r in audit.records] == ["reboot_failed", "repaired"]


def test_default_reboot_section_adds_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        notes = build_notifications(NotifySettings(), RebootSettings(policy="window"), MemoryAuditSink())
    assert "deprecated" not in caplog.text
    assert notes.channels_for(EventKind.REBOOT_SCHEDULED) == ["log"]


def test_reboot_bridge_maps_every_reboot_kind(recorder: Recorder) -> None:
    bridge = RebootBridge(recorder)
    for kind in ("reboot_scheduled", "reboot_imminent", "reboot_succeeded", "reboot_failed", "rollback",
                 "budget_exhausted"):
        bridge.notify(RebootEvent(kind, "local", f"{kind} happened",  # type: ignore[arg-type]
                                  reboot_at="2026-12-07T03:30:00+01:00" if kind == "reboot_scheduled"
                                  else None))
    assert recorder.kinds() == ["reboot_scheduled", "reboot_imminent", "reboot_succeeded", "reboot_failed",
                                "rollback", "budget_exhausted"]
    assert recorder.events[0].details == {"reboot_at": "2026-12-07T03:30:00+01:00"}


def test_the_app_builds_one_hub_and_flushes_it_at_close(make_settings: Callable[..., Settings],
                                                        hook: Hook) -> None:
    notify = NotifySettings(channels={"ops": WebhookChannelSettings(kind="webhook", url=hook.url)},
                            routes={"*": ["ops"]})
    app = App(make_settings(notify=notify))
    assert app.notifier is app.notifier
    for _ in range(3):
        app.notifier.emit(Event(EventKind.REPAIRED, "local", "app repaired", component="app"))
    app.close()   # waits (within flush_timeout_s) for the background deliveries
    assert len(hook.received) == 3
