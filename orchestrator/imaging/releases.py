"""Templates for other Debian releases: the same recipe with another suite.

A target on Debian 11 is not mirrored by Debian 12 packages; the troubleshooting VM has to run the
target's release. The default template's recipe (packages, overlay, customize script) is built for the
target's suite under the name ``<template>-<suite>`` (``debian-12-bullseye``): its recipe hash covers
the suite, so it is cached like any template.
"""

from __future__ import annotations

import re

from orchestrator.errors import ConfigError
from orchestrator.imaging.template import Template

SUITE = re.compile(r"^[a-z][a-z0-9]{1,20}$")


def release_template(template: Template, suite: str) -> Template:
    """``template`` built for ``suite`` instead of its own.

    Raises:
        ConfigError: ``suite`` is not a Debian codename (it may come from a target's os-release).
    """
    if not SUITE.match(suite):
        raise ConfigError(f"{suite!r} is not a Debian release codename (bookworm, bullseye, trixie ...)")
    if suite == template.spec.suite:
        return template
    spec = template.spec.model_copy(update={"name": f"{template.spec.name}-{suite}"[:41], "suite": suite})
    return Template(spec=spec, path=template.path)
