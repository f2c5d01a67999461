"""`vmrepair fleet key|export|import`: share validated strategies' outcome counts as signed bundles.

``key create`` makes this host's Ed25519 signing key; ``key show`` prints its public line (give it to
the hosts that should import from here), ``key show --trusted`` the keys this host imports from;
``key trust FILE | --pubkey B64 --name N`` and ``key revoke KEY_ID`` change that list. ``export --out
FILE`` writes a signed bundle of this host's counts; ``import FILE`` accepts one only from a trusted,
unrevoked key, unexpired and newer than the last from that key. A refusal exits 17 (FleetError) with
the reason and the remedy. Imported counts only steer ranking: nothing runs on a target that did not
pass validation in this host's own troubleshooting VM.

:func:`register_bundle_commands` is called by ``cli/fleet.py`` with the subparsers of ``vmrepair fleet``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import sys
from pathlib import Path

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info, table, warning
from orchestrator.errors import FleetError
from orchestrator.facts.parse import parse_os_release
from orchestrator.fleet.bundle import MAX_BUNDLE_BYTES
from orchestrator.fleet.export import catalog_describer, export_bundle
from orchestrator.fleet.imports import import_bundle
from orchestrator.fleet.keys import (
    MAX_PUBLIC_FILE_BYTES,
    SigningKey,
    create_key,
    decode_public,
    key_path,
    load_key,
    parse_public_line,
)
from orchestrator.fleet.trust import TrustStore
from orchestrator.fsutil import atomic_write
from orchestrator.playbooks.catalog import load_catalog

OS_RELEASE_FILES = (Path("/etc/os-release"), Path("/usr/lib/os-release"))
MAX_DAYS = 3650


def register_bundle_commands(fleet_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``key``, ``export`` and ``import`` to ``vmrepair fleet``'s subparsers."""
    key = fleet_sub.add_parser("key", help="create, show, trust or revoke fleet signing keys")
    ksub = key.add_subparsers(dest="fleet_key_cmd", required=True, metavar="{create,show,trust,revoke}")
    ksub.add_parser("create", help="create this host's fleet signing key").set_defaults(
        handler=cmd_key_create)
    show = ksub.add_parser("show", help="print this host's public key line (or the trusted keys)")
    show.add_argument("--trusted", action="store_true", help="list the keys this host imports from")
    show.set_defaults(handler=cmd_key_show)
    trust = ksub.add_parser("trust", help="import bundles signed by this public key from now on")
    trust.add_argument("file", nargs="?", type=Path, help="a file holding `fleet key show`'s line")
    trust.add_argument("--pubkey", help="the base64 public key instead of a file")
    trust.add_argument("--name", help="a name for the key (default: the name in the file)")
    trust.set_defaults(handler=cmd_key_trust)
    revoke = ksub.add_parser("revoke", help="refuse this key's bundles and drop its imported counts")
    revoke.add_argument("key_id", help="the key id `fleet key show --trusted` lists")
    revoke.set_defaults(handler=cmd_key_revoke)

    export = fleet_sub.add_parser("export", help="write a signed bundle of this host's strategy outcomes")
    export.add_argument("--out", type=Path, required=True, help="the bundle file to write")
    export.add_argument("--since", type=_days, metavar="DAYS", help="only outcomes of the last DAYS days")
    export.add_argument("--expires-days", type=_days, default=30.0, metavar="N",
                        help="importers refuse the bundle after N days (default 30)")
    export.set_defaults(handler=cmd_export)
    imp = fleet_sub.add_parser("import", help="merge a signed bundle's counts from a trusted key")
    imp.add_argument("file", type=Path, help="the bundle file")
    imp.set_defaults(handler=cmd_import)


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_DAYS:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days above 0 and at most {MAX_DAYS}")
    return value


def cmd_key_create(app: App, args: argparse.Namespace) -> int:
    key = create_key(key_path(app.settings.state_dir))
    if getattr(args, "json", False):
        emit_json({"key_id": key.key_id, "public": _line(key)})
    else:
        info(f"created fleet signing key {key.key_id}; give this line to the hosts that import from here:")
        sys.stdout.write(_line(key) + "\n")  # the line alone on stdout: `> web1.pub` keeps it
    return 0


def cmd_key_show(app: App, args: argparse.Namespace) -> int:
    as_json = getattr(args, "json", False)
    if args.trusted:
        keys = TrustStore(app.state_view).all()
        if as_json:
            emit_json({"trusted": [k.as_dict() for k in keys]})
        elif keys:
            table("trusted fleet keys", ["key id", "name", "trusted at", "revoked at"],
                  [[k.key_id, k.name, k.trusted_at, k.revoked_at or "-"] for k in keys])
        else:
            info("no fleet key is trusted; add one with `vmrepair fleet key trust`")
        return 0
    key = load_key(key_path(app.settings.state_dir))
    if as_json:
        emit_json({"key_id": key.key_id, "public": _line(key)})
    else:
        sys.stdout.write(_line(key) + "\n")  # the line alone on stdout: `> web1.pub` keeps it
    return 0


def cmd_key_trust(app: App, args: argparse.Namespace) -> int:
    if (args.file is None) == (args.pubkey is None):
        raise FleetError("give either a public key FILE or --pubkey B64 (with --name)",
                         remedy="e.g. `vmrepair fleet key trust web1.pub` or "
                                "`vmrepair fleet key trust --pubkey AAAA... --name web-fleet`")
    if args.pubkey is not None:
        raw, name = decode_public(args.pubkey), ""
    else:
        text = _read_capped(args.file, MAX_PUBLIC_FILE_BYTES, "public key file").decode(errors="replace")
        raw, name = parse_public_line(text)
    name = args.name or name
    if not name:
        raise FleetError("the key has no name", remedy="pass --name NAME")
    trusted = TrustStore(app.state).trust(raw, name, pubkey_b64=base64.b64encode(raw).decode())
    if getattr(args, "json", False):
        emit_json(trusted.as_dict())
    else:
        info(f"trusted fleet key {trusted.key_id} ({trusted.name}): its bundles are imported from now on")
    return 0


def cmd_key_revoke(app: App, args: argparse.Namespace) -> int:
    revoked = TrustStore(app.state).revoke(args.key_id)
    if getattr(args, "json", False):
        emit_json(revoked.as_dict())
    else:
        info(f"revoked fleet key {revoked.key_id} ({revoked.name}) at {revoked.revoked_at}; "
             "its bundles are refused and its imported counts dropped")
    return 0


def cmd_export(app: App, args: argparse.Namespace) -> int:
    key = load_key(key_path(app.settings.state_dir))
    now = dt.datetime.now(dt.UTC)
    since = None if args.since is None else now - dt.timedelta(days=args.since)
    describe = catalog_describer(load_catalog(app.settings))
    result = export_bundle(app.state, key, since=since, expires=dt.timedelta(days=args.expires_days),
                           os_release=local_os_release(), describe=describe, now=now)
    atomic_write(args.out, result.data, mode=0o644)
    payload = result.payload
    if getattr(args, "json", False):
        emit_json({"file": str(args.out), "key_id": payload.key_id, "version": payload.version,
                   "strategies": len(payload.strategies), "expires_at": payload.expires_at,
                   "left_out": list(result.left_out)})
        return 0
    info(f"wrote {args.out}: {len(payload.strategies)} strategy count(s), key {payload.key_id}, "
         f"version {payload.version}, expires {payload.expires_at}")
    for reason in result.left_out:
        warning(f"left out {reason}")
    return 0


def cmd_import(app: App, args: argparse.Namespace) -> int:
    data = _read_capped(args.file, MAX_BUNDLE_BYTES, "bundle")
    result = import_bundle(app.state, data)
    if getattr(args, "json", False):
        emit_json(result.as_dict())
    else:
        since = "" if result.previous_version is None else f" (after version {result.previous_version})"
        info(f"imported version {result.version}{since} from key {result.key_id} ({result.key_name}): "
             f"{result.strategies} strategy count(s), made {result.payload.created_at} on "
             f"{result.payload.os_release}; they replace this key's earlier counts")
    return 0


def _read_capped(path: Path, cap: int, what: str) -> bytes:
    """Up to ``cap`` bytes of ``path``; one more means too large (refused by the caller's parser).

    Raises:
        FleetError: the file cannot be read.
    """
    try:
        with path.open("rb") as handle:
            return handle.read(cap + 1)
    except OSError as exc:
        raise FleetError(f"cannot read {what} {path}: {exc.strerror or exc}",
                         remedy="check the path and its permissions") from exc


def _line(key: SigningKey) -> str:
    # Named after the key, not the host: the line lands in other hosts' trust stores and tables, and
    # the importer chooses its own name with --name anyway.
    return key.public_line(f"vmrepair-{key.key_id[:8]}")


def local_os_release() -> str:
    """``debian 12 (bookworm)`` from this host's os-release; ``unknown`` without one."""
    for path in OS_RELEASE_FILES:
        try:
            parsed = parse_os_release(path.read_text(errors="replace"))
        except OSError:
            continue
        if parsed is not None:
            codename = f" ({parsed.codename})" if parsed.codename else ""
            return f"{parsed.id} {parsed.version_id}{codename}".strip()
    return "unknown"

