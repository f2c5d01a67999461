"""Placement: least loaded among those holding the content, else least loaded; ties by config order."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from orchestrator.errors import HypervisorError, HypervisorUnavailableError
from orchestrator.hypervisor.placement import HypervisorLoad, Probe, choose_hypervisor

LAYER = "a" * 64


def _probe(loads: Mapping[str, HypervisorLoad | HypervisorError]) -> Probe:
    def probe(name: str) -> HypervisorLoad:
        found = loads[name]
        if isinstance(found, HypervisorError):
            raise found
        return found

    return probe


def _load(name: str, running: int, max_vms: int = 4, content: frozenset[str] = frozenset()) -> HypervisorLoad:
    return HypervisorLoad(name, running, max_vms, content)


def test_least_loaded_holder_of_the_layer_wins_over_an_emptier_one_without_it() -> None:
    loads = {"a": _load("a", 0), "b": _load("b", 2, content=frozenset({LAYER})),
             "c": _load("c", 3, content=frozenset({LAYER}))}
    chosen = choose_hypervisor(["a", "b", "c"], _probe(loads), frozenset({LAYER}))
    assert (chosen.name, chosen.has_content) == ("b", True)


def test_without_a_holder_the_least_loaded_is_chosen() -> None:
    loads = {"a": _load("a", 2), "b": _load("b", 1, max_vms=8), "c": _load("c", 1)}
    chosen = choose_hypervisor(["a", "b", "c"], _probe(loads), frozenset({LAYER}))
    assert (chosen.name, chosen.has_content) == ("b", False)


def test_load_is_relative_to_max_vms() -> None:
    loads = {"small": _load("small", 1, max_vms=2), "big": _load("big", 3, max_vms=12)}
    assert choose_hypervisor(["small", "big"], _probe(loads), frozenset()).name == "big"


def test_ties_go_to_config_order() -> None:
    loads = {"x": _load("x", 1), "y": _load("y", 1)}
    assert choose_hypervisor(["y", "x"], _probe(loads), frozenset()).name == "y"
    assert choose_hypervisor(["x", "y"], _probe(loads), frozenset()).name == "x"


def test_a_holder_needs_every_needed_id() -> None:
    loads = {"a": _load("a", 0), "b": _load("b", 0, content=frozenset({LAYER}))}
    chosen = choose_hypervisor(["a", "b"], _probe(loads), frozenset({LAYER, "b" * 64}))
    assert (chosen.name, chosen.has_content) == ("a", False)


def test_unreachable_and_full_ones_are_skipped_with_a_note() -> None:
    loads: dict[str, HypervisorLoad | HypervisorError] = {
        "down": HypervisorUnavailableError("cannot connect to libvirt at qemu+ssh://down/system"),
        "full": _load("full", 2, max_vms=2, content=frozenset({LAYER})),
        "ok": _load("ok", 3),
    }
    chosen = choose_hypervisor(["down", "full", "ok"], _probe(loads), frozenset({LAYER}))
    assert chosen.name == "ok"
    assert chosen.notes == ("down: unreachable (cannot connect to libvirt at qemu+ssh://down/system)",
                            "full: full (2/2 VMs)")


def test_none_usable_names_each_and_why() -> None:
    loads: dict[str, HypervisorLoad | HypervisorError] = {
        "a": HypervisorError("list domains: connection reset"), "b": _load("b", 1, max_vms=1)}
    with pytest.raises(HypervisorError) as info:
        choose_hypervisor(["a", "b"], _probe(loads), frozenset())
    assert info.value.message == ("no hypervisor can take a troubleshooting VM: "
                                  "a: unreachable (list domains: connection reset); b: full (1/1 VMs)")
