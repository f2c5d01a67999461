"""Generated strategy names: safe everywhere a playbook's name goes, unique per subject, stable."""

from __future__ import annotations

import re

from orchestrator.playbooks.fields import NAME_PATTERN
from orchestrator.repair.generate.proposal import literal, strategy_name, to_steps


def test_plain_subjects_read_as_themselves() -> None:
    assert strategy_name("revert-file", "/etc/nginx/nginx.conf") == "gen-revert-file-etc-nginx-nginx.conf"
    assert strategy_name("unmask", "nginx.service") == "gen-unmask-nginx.service"
    assert strategy_name("reinstall", "nginx-common") == "gen-reinstall-nginx-common"


def test_lossy_subjects_get_a_hash_and_never_collide() -> None:
    odd = ["/etc/a-b", "/etc/a/b", "/etc/A", "/etc/a", "/etc/x y", "/etc/" + "long/" * 30 + "f",
           "/etc/{x}", "/etc/x."]
    names = [strategy_name("revert-file", s) for s in odd]
    assert len(set(names)) == len(odd)
    for name in names:
        assert re.fullmatch(NAME_PATTERN, name), name
    assert names == [strategy_name("revert-file", s) for s in odd]      # deterministic


def test_braces_in_a_path_stay_literal() -> None:
    steps = to_steps([{"restore_baseline": {"paths": [literal("/etc/app/{x}.conf")]}}])
    assert steps is not None
    (step,) = steps
    assert step.paths[0].is_literal and step.paths[0].render({}) == "/etc/app/{x}.conf"  # type: ignore[attr-defined]


def test_steps_that_do_not_validate_or_have_no_kind_are_dropped() -> None:
    assert to_steps([{"restore_baseline": {"paths": ["relative/path"]}}]) is None
    assert to_steps([{"no_such_kind": {}}]) is None
    assert to_steps([{"unit": {"name": "app.service", "action": "unmask"}}]) is not None
