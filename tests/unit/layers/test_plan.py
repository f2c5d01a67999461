"""The layer planner: which packages matter (components' own, unit owners, dependency closure), what the
template lacks, the cache key, and refusals (another release, architecture, too many packages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.settings import LayerSettings
from orchestrator.facts.model import OsRelease, Package, TargetFacts
from orchestrator.layers.plan import DependencyGraph, LayerPlan, parse_relations, plan_layer
from orchestrator.model import Component
from orchestrator.transport.fake import FakeTransport

BOOKWORM = OsRelease("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")
GRAPH = (
    "apache2:amd64\t\tperl:any\tapache2-bin (= 2.4.62-1), apache2-utils, lsb-base | sysvinit-utils\n"
    "apache2-bin:amd64\t\t\tlibc6 (>= 2.34), libapr1 (>= 1.7)\n"
    "apache2-utils:amd64\t\t\tlibc6\n"
    "libapr1:amd64\t\t\tlibc6\n"
    "libc6:amd64\t\t\t\n"
    "perl-base:amd64\tperl\t\t\n"
    "sysvinit-utils:amd64\t\t\tlibc6\n"
    "mawk:amd64\tawk\t\tlibc6\n"
    "evil name\t\t\t\n"
)


def pkg(name: str, version: str = "1.0", arch: str = "amd64", status: str = "ii") -> Package:
    return Package(name, version, arch, status)


TARGET = [pkg("apache2", "2.4.62-1"), pkg("apache2-bin", "2.4.62-1"), pkg("apache2-utils", "2.4.62-1"),
          pkg("libapr1", "1.7.2-3"), pkg("libc6", "2.36-9"), pkg("perl-base", "5.36.0-7"),
          pkg("sysvinit-utils", "3.06-4"), pkg("mawk", "1.3.4")]
TEMPLATE = {p.name: p for p in [pkg("libc6", "2.36-9"), pkg("perl-base", "5.36.0-7"),
                                pkg("sysvinit-utils", "3.06-4"), pkg("apache2-utils", "2.4.57-2")]}
APACHE = Component("apache2", units=("apache2.service",))


OWNERS = b"apache2: /lib/systemd/system/apache2.service\n"


def target(graph: str = GRAPH, owners: bytes = OWNERS) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("dpkg-query", "-S"):
            return 1, owners, b"dpkg-query: no path found matching pattern /usr/lib/...\n"
        if argv[:2] == ("dpkg-query", "-W"):
            return 0, graph.encode(), b""
        return 127, b"", b""
    return FakeTransport(handler)


def plan(facts: TargetFacts | None = None, settings: LayerSettings | None = None,
         components: tuple[Component, ...] = (APACHE,),
         transport: FakeTransport | None = None) -> LayerPlan:
    return plan_layer(target=transport or target(),
                      facts=facts or TargetFacts(BOOKWORM, "amd64", packages=tuple(TARGET)),
                      components=components, template="debian-12", recipe_hash="r1", template_arch="amd64",
                      template_os=("debian", "bookworm"), in_template=TEMPLATE,
                      settings=settings or LayerSettings())


def test_relations_are_parsed_with_alternatives_versions_and_arch_qualifiers() -> None:
    assert parse_relations("a (>= 1) | b, c:any, d [amd64] <!nocheck>") == [["a", "b"], ["c"], ["d"]]
    assert parse_relations("") == []
    assert parse_relations("Evil;rm -rf /, ok") == [["ok"]]


def test_the_unit_owner_and_its_dependency_closure_minus_what_the_template_has_at_that_version() -> None:
    result = plan()
    # apache2 comes from the owner of apache2.service (the component names no package);
    # apache2-utils is in the template at another version: it is in the layer too.
    assert [p.name for p in result.needed] == ["apache2", "apache2-bin", "apache2-utils", "libapr1"]
    assert "mawk" not in result.wanted            # installed, but nothing the component needs
    assert "perl-base" in result.wanted           # `perl:any` is virtual: its provider is what is installed
    assert result.is_needed and not result.refused


def test_the_key_depends_only_on_the_template_build_and_the_package_set() -> None:
    first, second = plan(), plan()
    assert first.key == second.key and len(first.key) == 64
    other = plan_layer(target=target(), facts=TargetFacts(BOOKWORM, "amd64", packages=tuple(
        pkg(p.name, "9.9" if p.name == "libapr1" else p.version) for p in TARGET)),
        components=(APACHE,), template="debian-12", recipe_hash="r1", template_arch="amd64",
        template_os=("debian", "bookworm"), in_template=TEMPLATE, settings=LayerSettings())
    assert other.key != first.key
    assert LayerPlan("t", "r2", (), first.needed).key != first.key


def test_nothing_needed_when_the_template_already_has_everything() -> None:
    facts = TargetFacts(BOOKWORM, "amd64", packages=tuple(TEMPLATE.values()))
    result = plan(facts, components=(Component("x", packages=("libc6",)),))
    assert result.needed == () and not result.is_needed


def test_scope_all_takes_every_installed_package() -> None:
    result = plan(settings=LayerSettings(scope="all"))
    assert "mawk" in [p.name for p in result.needed]


def test_another_release_is_refused_with_the_command_that_builds_its_template() -> None:
    bullseye = OsRelease("debian", "11", "bullseye", "Debian GNU/Linux 11 (bullseye)")
    result = plan(TargetFacts(bullseye, "amd64", packages=tuple(TARGET)))
    assert result.refused and "vmrepair image build --suite bullseye" in result.refused
    assert not result.is_needed
    other_os = plan(TargetFacts(OsRelease("fedora", "40"), "x86_64", packages=tuple(TARGET)))
    assert "no Debian template can mirror" in other_os.refused


def test_another_architecture_and_too_many_packages_are_refused() -> None:
    assert "architecture arm64" in plan(TargetFacts(BOOKWORM, "arm64", packages=tuple(TARGET))).refused
    assert "layers.max_packages" in plan(settings=LayerSettings(max_packages=2)).refused


def test_hostile_dependency_output_is_ignored_not_followed() -> None:
    hostile = "apache2:amd64\t\t\t../../etc/passwd, $(reboot), apache2-bin\n" + "x" * 10_000 + "\n"
    result = plan(transport=target(graph=hostile))
    assert [p.name for p in result.needed] == ["apache2", "apache2-bin"]


def test_closure_stops_at_packages_the_target_does_not_have() -> None:
    graph = DependencyGraph.parse(GRAPH)
    installed = {p.name: p for p in TARGET if p.name != "libapr1"}
    assert "libapr1" not in graph.closure(["apache2"], installed)


def test_the_templates_facts_are_read_once_per_recipe_then_kept_beside_the_image(tmp_path: Path) -> None:
    from orchestrator.layers.plan import TEMPLATE_FACTS, template_facts
    from orchestrator.transport.fake import FakeTransport

    def answer(argv: tuple[str, ...], _stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("dpkg", "--print-architecture"):
            return 0, b"amd64\n", b""
        return 0, b"nginx\t1.22.1-9\tamd64\tii \tinstall ok installed\n", b""

    vm = FakeTransport(answer)
    arch, packages = template_facts(tmp_path, "r1", vm)
    assert (arch, list(packages)) == ("amd64", ["nginx"]) and len(vm.argvs) == 2
    assert template_facts(tmp_path, "r1", vm) == (arch, packages) and len(vm.argvs) == 2   # kept
    template_facts(tmp_path, "r2", vm)                       # another recipe: asked again
    assert len(vm.argvs) == 4
    (tmp_path / TEMPLATE_FACTS).write_text('{"recipe_hash": "r2", "arch": "amd64; rm -rf /"}')
    assert template_facts(tmp_path, "r2", vm)[0] == "amd64" and len(vm.argvs) == 6   # not trusted


def test_an_incomplete_template_listing_is_refused_never_kept(tmp_path: Path) -> None:
    """Half a listing would make the other half look missing from the template and build a layer
    for nothing: it is an error (the sandbox stays on the template and says why)."""
    from orchestrator.errors import LayerError
    from orchestrator.layers.plan import TEMPLATE_FACTS, template_facts

    def answer(argv: tuple[str, ...], _stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("dpkg", "--print-architecture"):
            return 0, b"amd64\n", b""
        return 2, b"nginx\t1.22.1-9\tamd64\tii \tinstall ok installed\n", b"dpkg-query: error\n"

    with pytest.raises(LayerError, match=r"package list failed \(exit 2\)") as info:
        template_facts(tmp_path, "r1", FakeTransport(answer))
    assert info.value.step == "plan"
    assert not (tmp_path / TEMPLATE_FACTS).exists()
