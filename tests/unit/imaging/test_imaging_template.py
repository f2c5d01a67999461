"""Template files: validated once when loaded, errors name the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.imaging.template import list_templates, load_template, template_path
from orchestrator.resources import shipped_templates_dir

SHIPPED = shipped_templates_dir()

VALID = """\
name: {name}
suite: bookworm
recipe: tiny
packages: [systemd-sysv, openssh-server]
memory_mib: 512
vcpus: 1
disk_size_gib: 1
kernel_cmdline: "root=/dev/vda console=ttyS0"
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_shipped_debian_template_loads() -> None:
    template = load_template(SHIPPED, "debian-12")
    assert template.name == "debian-12"
    assert template.path == SHIPPED / "debian-12.yaml"
    assert template.spec.suite == "bookworm"
    assert "openssh-server" in template.spec.packages
    assert "console=ttyS0" in template.spec.kernel_cmdline


def test_every_shipped_template_loads() -> None:
    paths = list_templates(SHIPPED)
    assert paths
    for path in paths:
        assert load_template(SHIPPED, str(path)).path == path


def test_minimal_template_gets_defaults(tmp_path: Path) -> None:
    _write(tmp_path, "tiny", VALID.format(name="tiny"))
    spec = load_template(tmp_path, "tiny").spec
    assert spec.variant == "minbase"
    assert spec.package_cache == []
    assert spec.description == ""


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny", VALID.format(name="tiny") + "colour: blue\n")
    with pytest.raises(ConfigError) as info:
        load_template(tmp_path, "tiny")
    assert info.value.message == f"{path}: colour: unknown key (not allowed here; check spelling)"
    assert info.value.file == str(path)


def test_bad_package_name_names_file_key_and_package(tmp_path: Path) -> None:
    text = VALID.format(name="tiny").replace("openssh-server", "Bad_Pkg")
    path = _write(tmp_path, "tiny", text)
    with pytest.raises(ConfigError) as info:
        load_template(tmp_path, "tiny")
    assert info.value.message.startswith(f"{path}: packages: ")
    assert "'Bad_Pkg' is not a Debian package name" in info.value.message


def test_bad_package_cache_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny", VALID.format(name="tiny") + "package_cache: ['x y']\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: package_cache: .*'x y' is not a Debian"):
        load_template(tmp_path, "tiny")


def test_name_must_match_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny", VALID.format(name="other"))
    with pytest.raises(ConfigError) as info:
        load_template(tmp_path, "tiny")
    assert info.value.message == f"{path}: name: 'other' does not match the file name 'tiny'"


def test_invalid_name_inside_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny", VALID.format(name="Tiny_1"))
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: name: .*lowercase letters"):
        load_template(tmp_path, "tiny")


@pytest.mark.parametrize(("key", "value"), [("memory_mib", "64"), ("vcpus", "0"),
                                            ("disk_size_gib", "1000")])
def test_out_of_range_numbers_name_the_key(tmp_path: Path, key: str, value: str) -> None:
    text = "\n".join(
        f"{key}: {value}" if line.startswith(f"{key}:") else line
        for line in VALID.format(name="tiny").splitlines()
    )
    path = _write(tmp_path, "tiny", text)
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}: {key}: ")):
        load_template(tmp_path, "tiny")


def test_missing_required_key(tmp_path: Path) -> None:
    text = VALID.format(name="tiny").replace("suite: bookworm\n", "")
    path = _write(tmp_path, "tiny", text)
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}: suite: Field required")):
        load_template(tmp_path, "tiny")


def test_missing_template_lists_available_ones(tmp_path: Path) -> None:
    _write(tmp_path, "tiny", VALID.format(name="tiny"))
    with pytest.raises(ConfigError) as info:
        load_template(tmp_path, "huge")
    assert info.value.message == f"template 'huge' not found at {tmp_path / 'huge.yaml'}"
    assert info.value.remedy == "available templates: tiny"


def test_invalid_template_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'UP' is not a valid template name"):
        template_path(tmp_path, "UP")


def test_explicit_path_is_used_as_is(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = _write(elsewhere, "tiny", VALID.format(name="tiny"))
    assert template_path(tmp_path, str(path)) == path
    assert load_template(tmp_path, str(path)).path == path


def test_extra_recipe_is_optional_and_applied_after_the_recipe(tmp_path: Path) -> None:
    _write(tmp_path, "tiny", VALID.format(name="tiny"))
    _write(tmp_path, "web", VALID.format(name="web") + "extra_recipe: web-services\n")
    assert load_template(tmp_path, "tiny").spec.extra_recipe is None
    assert load_template(tmp_path, "tiny").spec.recipes == ("tiny",)
    assert load_template(tmp_path, "web").spec.recipes == ("tiny", "web-services")


def test_extra_recipe_must_not_repeat_the_recipe(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny", VALID.format(name="tiny") + "extra_recipe: tiny\n")
    with pytest.raises(ConfigError) as info:
        load_template(tmp_path, "tiny")
    assert info.value.message == f"{path}: extra_recipe: Value error, 'tiny' is already the recipe"


def test_extra_recipe_must_be_a_directory_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny", VALID.format(name="tiny") + "extra_recipe: ../etc\n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}: extra_recipe: String should match")):
        load_template(tmp_path, "tiny")


def test_shipped_services_template_layers_its_recipe_on_debian_12() -> None:
    spec = load_template(SHIPPED, "debian-12-services").spec
    base = load_template(SHIPPED, "debian-12").spec
    assert spec.recipes == ("debian-12", "debian-12-services")
    assert (spec.suite, spec.variant, spec.kernel_cmdline) == (base.suite, base.variant, base.kernel_cmdline)
    # Everything the default guest has, plus the services.
    assert set(base.packages) <= set(spec.packages)
    assert {"apache2", "mariadb-server"} <= set(spec.packages)
    assert set(base.package_cache) <= set(spec.package_cache)
    # The layer code must download mariadb's packages from the mirror: none of them is kept.
    assert {"apache2", "apache2-bin", "apache2-data", "apache2-utils"} <= set(spec.package_cache)
    assert not [p for p in spec.package_cache if p.startswith(("mariadb", "mysql", "galera"))]
