"""Template definitions (``vm_templates/NAME.yaml``), validated once at the edge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orchestrator.config.loading import load_model
from orchestrator.errors import ConfigError

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,40}$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_RECIPE_PATTERN = r"^[a-z0-9][a-z0-9.-]*$"


class TemplateFile(BaseModel):
    """Schema of a template YAML file. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    suite: str = Field(pattern=r"^[a-z]+$")
    recipe: str = Field(pattern=_RECIPE_PATTERN, description="directory under images/")
    #: A second recipe layered on the first, so a template can add services to another's guest
    #: without copying its recipe: its overlay is copied after the first one's (its files win) and
    #: its customize.sh runs after the first one's.
    extra_recipe: str | None = Field(
        default=None, pattern=_RECIPE_PATTERN,
        description="directory under images/ applied after `recipe` (overlay, then customize.sh)",
    )
    variant: str = Field(default="minbase", pattern=r"^(minbase|buildd|fakechroot|-)$")
    packages: list[str] = Field(min_length=1)
    package_cache: list[str] = Field(
        default_factory=list,
        description="packages whose .deb stays in /var/cache/apt/archives for pristine restores",
    )
    memory_mib: int = Field(ge=256, le=16384)
    vcpus: int = Field(ge=1, le=16)
    disk_size_gib: int = Field(ge=1, le=64)
    kernel_cmdline: str = Field(min_length=1, max_length=1024)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("lowercase letters, digits, '.' and '-', at most 41 characters")
        return value

    @field_validator("packages", "package_cache")
    @classmethod
    def _check_packages(cls, value: list[str]) -> list[str]:
        for pkg in value:
            if not _PACKAGE_RE.match(pkg):
                raise ValueError(f"{pkg!r} is not a Debian package name")
        return value

    @field_validator("extra_recipe")
    @classmethod
    def _check_extra_recipe(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value == info.data.get("recipe"):
            # Applying one recipe twice would run its customize.sh twice: never what was meant.
            raise ValueError(f"{value!r} is already the recipe")
        return value

    @property
    def recipes(self) -> tuple[str, ...]:
        """The recipe directories in the order the builder applies them."""
        return (self.recipe,) if self.extra_recipe is None else (self.recipe, self.extra_recipe)


@dataclass(frozen=True)
class Template:
    """A loaded template: its validated spec and where it came from."""

    spec: TemplateFile
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name


def template_path(templates_dir: Path, name_or_path: str) -> Path:
    """Resolve ``debian-12`` to ``templates_dir/debian-12.yaml``; an explicit path is used as is."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path)
    if not _NAME_RE.match(name_or_path):
        raise ConfigError(f"{name_or_path!r} is not a valid template name")
    return templates_dir / f"{name_or_path}.yaml"


def load_template(templates_dir: Path, name_or_path: str) -> Template:
    """Load and validate a template.

    Raises:
        ConfigError: missing file, malformed YAML, unknown keys, or the name inside does not match
            the file name.
    """
    path = template_path(templates_dir, name_or_path)
    if not path.exists():
        available = ", ".join(sorted(p.stem for p in templates_dir.glob("*.yaml"))) or "none"
        raise ConfigError(
            f"template {name_or_path!r} not found at {path}",
            file=str(path),
            remedy=f"available templates: {available}",
        )
    spec = load_model(path, TemplateFile)
    if spec.name != path.stem:
        raise ConfigError(
            f"{path}: name: {spec.name!r} does not match the file name {path.stem!r}", file=str(path)
        )
    return Template(spec=spec, path=path)


def list_templates(templates_dir: Path) -> list[Path]:
    return sorted(templates_dir.glob("*.yaml"))
