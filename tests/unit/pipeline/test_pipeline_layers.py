"""The sandbox stage's host-layer decision (pipeline.reproduce.host_layer) against a fake sandbox:
no layer when the template matches, a layer when it lacks the target's packages, the template
fallback (recorded, never fatal) when the layer or the release template cannot be had."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.api import Manifest
from orchestrator.capture.snapshot import Capture
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import LayerSettings, Settings
from orchestrator.errors import BootError
from orchestrator.facts.model import OsRelease, Package, TargetFacts
from orchestrator.imaging.store import BuiltImage
from orchestrator.model import Component
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.reproduce import host_layer
from orchestrator.transport.fake import FakeTransport
from tests.unit.pipeline.fakes import FakeSandbox, run_context

WEB = Component("web", units=("apache2.service",), packages=("apache2",))
BOOKWORM = OsRelease("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")
APACHE = Package("apache2", "2.4.62-1", "amd64", "ii")
LIBC = Package("libc6", "2.36-9", "amd64", "ii")
ON_BOOKWORM = TargetFacts(BOOKWORM, "amd64", packages=(APACHE, LIBC))


def vm(packages: list[Package]) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("dpkg", "--print-architecture"):
            return 0, b"amd64\n", b""
        if argv[:2] == ("dpkg-query", "-W"):
            return 0, "".join(f"{p.name}:amd64\t{p.version}\tamd64\tii \tinstall ok installed\n"
                              for p in packages).encode(), b""
        return 0, b"", b""
    return FakeTransport(handler)


def target() -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("dpkg-query", "-W"):
            return 0, b"apache2:amd64\t\t\tlibc6\nlibc6:amd64\t\t\t\n", b""
        return 1, b"", b""
    return FakeTransport(handler)


def make_ctx(settings: Settings, make_built_image: Callable[..., BuiltImage]) -> RunContext:
    make_built_image(settings.image_store)
    return run_context(settings, target())


@pytest.fixture
def ctx(make_settings: Callable[..., Settings], make_built_image: Callable[..., BuiltImage]) -> RunContext:
    return make_ctx(make_settings(watch=WatchConfig((WEB,), mounts=())), make_built_image)


def capture(tmp_path: Path, facts: TargetFacts | None) -> Capture:
    return Capture(tmp_path / "c.tar", (), Manifest((), ()), (), facts=facts)


class LayeredSandbox(FakeSandbox):
    def __init__(self, guest: FakeTransport) -> None:
        super().__init__()
        self._transport = guest
        self.asked: list[Any] = []

    def use_layer(self, plan: Any, target: Any, facts: Any) -> Any:
        self.asked.append(plan)
        return super().use_layer(plan, target, facts)


def test_no_layer_when_the_template_has_the_targets_packages(ctx: RunContext, tmp_path: Path) -> None:
    sandbox = LayeredSandbox(vm([APACHE, LIBC]))
    used = host_layer(ctx, sandbox, capture(tmp_path, ON_BOOKWORM),
                      [WEB])
    assert sandbox.asked == [] and used.fallback == "" and used.key == ""
    assert used.describe() == "the template debian-12"


def test_a_missing_package_asks_for_a_layer_and_a_failed_layer_falls_back_to_the_template(
        ctx: RunContext, tmp_path: Path) -> None:
    sandbox = LayeredSandbox(vm([LIBC]))
    used = host_layer(ctx, sandbox, capture(tmp_path, ON_BOOKWORM),
                      [WEB])
    assert [p.name for p in sandbox.asked[0].needed] == ["apache2"]
    assert used.fallback.startswith("layer failed: no layers in the fake sandbox")
    assert "no host layer" not in used.describe() and "layer failed" in used.describe()
    events = (ctx.session.dir / "evidence.jsonl").read_text()
    assert "layer_failed" in events


def test_another_release_tries_its_template_and_records_why_it_could_not(
        ctx: RunContext, tmp_path: Path) -> None:
    sandbox = LayeredSandbox(vm([LIBC]))
    bullseye = OsRelease("debian", "11", "bullseye", "Debian GNU/Linux 11 (bullseye)")
    facts = TargetFacts(bullseye, "amd64", packages=(APACHE, LIBC))
    used = host_layer(ctx, sandbox, capture(tmp_path, facts), [WEB])
    assert "use_release:bullseye" in sandbox.calls and sandbox.asked == []
    assert "vmrepair image build --suite bullseye" in used.fallback
    assert "no template for bullseye: no releases in the fake sandbox" in used.fallback


def test_unknown_facts_or_disabled_layers_stay_on_the_template(
        ctx: RunContext, tmp_path: Path, make_settings: Callable[..., Settings],
        make_built_image: Callable[..., BuiltImage]) -> None:
    sandbox = LayeredSandbox(vm([LIBC]))
    unknown = host_layer(ctx, sandbox, capture(tmp_path, None), [WEB])
    assert unknown.fallback == "the target's facts are unknown"
    off = make_ctx(make_settings(layers=LayerSettings(enabled=False), state_dir=tmp_path / "off"),
                   make_built_image)
    facts = ON_BOOKWORM
    assert host_layer(off, sandbox, capture(tmp_path, facts), [WEB]).fallback == "layers are disabled"
    assert sandbox.asked == []


class GuessedSandbox(LayeredSandbox):
    """Started on the last run's layer (TroubleshootingVm.start's guess)."""

    def __init__(self, guest: FakeTransport, *, boots: bool = True) -> None:
        super().__init__(guest)
        self.boots = boots

    def use_template(self) -> None:
        self.calls.append("use_template")
        if not self.boots:
            raise BootError("the template's clone did not boot", domain="vmrepair-trb-debian-12")


def test_a_guessed_layer_the_plan_no_longer_wants_is_left_for_the_template(
        ctx: RunContext, tmp_path: Path) -> None:
    sandbox = GuessedSandbox(vm([APACHE, LIBC]))        # the template now has what the target has
    used = host_layer(ctx, sandbox, capture(tmp_path, ON_BOOKWORM), [WEB])
    assert sandbox.calls == ["use_template"] and sandbox.asked == [] and used.key == ""
    assert "layer" not in json.loads((ctx.session.dir / "session.json").read_text())


def test_a_failed_return_to_the_template_is_recorded_not_raised(ctx: RunContext, tmp_path: Path) -> None:
    sandbox = GuessedSandbox(vm([APACHE, LIBC]), boots=False)
    used = host_layer(ctx, sandbox, capture(tmp_path, ON_BOOKWORM), [WEB])
    assert used.fallback == "no layer; back on the template: the template's clone did not boot"
