"""`vmrepair config check [FILE]` and `vmrepair config show`: the configuration, checked and explained.

``check`` without FILE validates what every command would load: ``config.yaml`` (or
``VMREPAIR_CONFIG``) and each drop-in of ``config_dropin_dir``, merged in order; with FILE it validates
that one file, a config.yaml or a drop-in being prepared (same schema). Exit 0 with ``ok: ...``, or 2
with one ``FILE: path.to.key: message`` line per problem, naming the file at fault.

``show`` prints every key's effective value and where it came from: ``default``, ``file PATH``,
``drop-in PATH`` or ``environment NAME``.

Both work without loading the settings first (``settings_free``): their point is to explain a
configuration that may be broken.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pydantic import ValidationError

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info, table
from orchestrator.config.dropins import read_mapping
from orchestrator.config.effective import effective_values
from orchestrator.config.loading import render_validation_error
from orchestrator.config.settings import ConfigFile, load_config
from orchestrator.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="check the configuration, show effective values and their source")
    csub = config.add_subparsers(dest="config_cmd", required=True, metavar="{check,show}")
    check = csub.add_parser("check", help="validate config.yaml and its drop-ins, or one FILE (exit 0 / 2)")
    check.add_argument("file", nargs="?", type=Path, help="one config file or drop-in to validate")
    check.set_defaults(handler=cmd_check, settings_free=True)
    show = csub.add_parser("show", help="every key's effective value and where it came from")
    show.set_defaults(handler=cmd_show, settings_free=True)


def cmd_check(_app: App | None, args: argparse.Namespace) -> int:
    """Raises: ConfigError (exit 2): a file is unreadable, malformed or invalid; the message names it."""
    if args.file is not None:
        _validate_one(args.file)
        files = [args.file]
    else:
        layered = load_config(os.environ)
        files = [*([layered.path] if layered.path else []), *layered.dropins]
    if args.json:
        emit_json({"ok": True, "files": [str(f) for f in files]})
    else:
        info(f"ok: {', '.join(map(str, files))}" if files else "ok: no config file (defaults)")
    return 0


def _validate_one(path: Path) -> None:
    data = read_mapping(path)
    try:
        ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(render_validation_error(str(path), exc), file=str(path)) from exc


def cmd_show(_app: App | None, args: argparse.Namespace) -> int:
    """Raises: ConfigError (exit 2): the configuration is invalid (see `vmrepair config check`)."""
    layered = load_config(os.environ)
    values = effective_values(layered, os.environ)
    if args.json:
        emit_json({"config_file": None if layered.path is None else str(layered.path),
                   "dropin_dir": str(layered.dropin_dir), "dropins": [str(p) for p in layered.dropins],
                   "values": [v.as_dict() for v in values]})
        return 0
    table("effective configuration", ["key", "value", "source"],
          [[v.key, json.dumps(v.value), v.source] for v in values])
    info(f"config file: {layered.path or 'none (defaults)'}; drop-ins from {layered.dropin_dir}: "
         f"{len(layered.dropins)}")
    return 0
