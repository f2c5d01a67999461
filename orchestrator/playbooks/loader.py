"""Load ``playbooks/*.yaml``: size cap → a strict SafeLoader (:mod:`orchestrator.config.strict_yaml`) →
pydantic → cross-reference checks → plain objects. Every problem is a :class:`PlaybookError` naming
the file and the key path."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from orchestrator.config.loading import load_model
from orchestrator.errors import ConfigError, PlaybookError
from orchestrator.playbooks import checks
from orchestrator.playbooks.convert import to_playbook
from orchestrator.playbooks.model import Playbook
from orchestrator.playbooks.schema import PlaybookFile
from orchestrator.playbooks.step_schema import STEP_KINDS

log = logging.getLogger(__name__)

#: Playbooks are short documents; a bigger file is a mistake (or an attempt at a YAML bomb).
MAX_PLAYBOOK_BYTES = 64 * 1024
#: The JSON schema shipped beside the playbooks, for editors (a unit test keeps it current).
SCHEMA_FILE = "playbook.schema.json"

# pydantic puts a tagged union's tag into the location ("steps[1].run.run.argv"); the step kind already
# is the key, so drop the repetition before the user reads it.
_DOUBLED_TAG = re.compile(r"(\.steps\[\d+\]\.)(" + "|".join(STEP_KINDS) + r")\.\2(?=[.:\[])")


def load_playbook(path: Path) -> Playbook:
    """Load and validate one playbook file.

    Raises:
        PlaybookError: unreadable, too large, malformed YAML, schema violation or dangling reference;
            the message names the file and the key path of every problem.
    """
    try:
        file = load_model(path, PlaybookFile, max_bytes=MAX_PLAYBOOK_BYTES)
    except ConfigError as exc:
        raise PlaybookError(_DOUBLED_TAG.sub(r"\1\2", exc.message), file=str(path),
                            remedy=exc.remedy) from exc
    found = checks.problems(file)
    if found:
        raise PlaybookError("\n".join(f"{path}: {line}" for line in found), file=str(path))
    return to_playbook(file, str(path))


def load_playbooks(directory: Path) -> list[Playbook]:
    """Every ``*.yaml`` playbook of ``directory``, in file-name order (that order breaks ranking ties).

    Raises:
        PlaybookError: the directory is missing, a file is invalid, or two files define the same
            playbook or strategy name (strategy names key the success history, so they must be unique).
    """
    if not directory.is_dir():
        raise PlaybookError(f"{directory}: playbook directory not found", file=str(directory))
    playbooks: list[Playbook] = []
    names: dict[str, str] = {}
    strategies: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        playbook = load_playbook(path)
        if playbook.name in names:
            raise PlaybookError(f"{path}: name: playbook {playbook.name!r} is already defined in "
                                f"{names[playbook.name]}", file=str(path))
        names[playbook.name] = str(path)
        for index, strategy in enumerate(playbook.strategies):
            if strategy.name in strategies:
                raise PlaybookError(f"{path}: strategies[{index}].name: strategy {strategy.name!r} is "
                                    f"already defined in {strategies[strategy.name]}", file=str(path))
            strategies[strategy.name] = str(path)
        playbooks.append(playbook)
    log.debug("loaded %d playbooks from %s", len(playbooks), directory)
    return playbooks


def export_schema() -> dict[str, Any]:
    """The JSON schema of a playbook file (what ``playbooks/playbook.schema.json`` holds)."""
    schema = PlaybookFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render_schema() -> str:
    """:func:`export_schema` as the exact text of the shipped file."""
    return json.dumps(export_schema(), indent=2, sort_keys=True) + "\n"
