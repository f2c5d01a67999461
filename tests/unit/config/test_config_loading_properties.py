"""Property: the config loader raises nothing but ConfigError, whatever the file holds (issue 13)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.config.loading import load_model
from orchestrator.config.settings import ConfigFile
from orchestrator.errors import ConfigError

#: Fragments that steer the text toward YAML's corners: indicators, anchors, tags, merges, flow
#: collections, timestamps, keys of the config file and numbers at their limits.
KEYS = ["libvirt_uri", "repair", "allowed_roots", "stable_period_s", "daemon", "allowed_uids", "audit",
        "path", "vm", "accel", "reboot", "notifiers", "kind", "watch", "units", "-x", "/", "relative"]
FRAGMENTS = ["\n", "  ", "- ", ": ", "? ", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", "!!str ",
             "!!binary ", "!!python/name:os.system ", "'", '"', "|\n", ">-\n", "#", "---\n", "...\n",
             "%YAML 1.1\n", "2024-13-45", "2024-02-29 12:00:00", "1e999", ".nan", "-.inf", "0x1F", "0o17",
             "~", "null", "yes", "[/x]", "\t", "\x00", "\ufeff", "\u2028", *KEYS]

yamlish = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=60).map("".join)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=4),
    max_leaves=25,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(data)
        try:
            load_model(path, ConfigFile)
        except ConfigError as exc:
            assert str(path) in exc.message


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_a_config_error_or_a_config(data: bytes) -> None:
    _load(data)


@SETTINGS
@given(yamlish)
def test_yamlish_text_gives_a_config_error_or_a_config(text: str) -> None:
    _load(text.encode())


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), json_like, max_size=6))
def test_wellformed_yaml_of_any_shape_gives_a_config_error_or_a_config(data: dict[str, object]) -> None:
    _load(yaml.safe_dump(data, allow_unicode=True).encode())
