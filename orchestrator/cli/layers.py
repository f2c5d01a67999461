"""`vmrepair image layers [--prune]`: the cached host layers (the target's packages over a template)."""

from __future__ import annotations

import argparse
import time

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info, table
from orchestrator.layers.store import BuiltLayer, LayerStore
from orchestrator.timestamps import epoch_timestamp

DAY_S = 86400.0


def register(isub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    layers = isub.add_parser("layers", help="list (or prune) the cached host layers")
    layers.add_argument("--prune", action="store_true",
                        help="remove layers of template builds that are gone or outdated, partial builds, "
                             "and (with --unused-days) layers not used for that long")
    layers.add_argument("--unused-days", type=float, default=None, metavar="N",
                        help="with --prune: also remove layers unused for N days")
    layers.set_defaults(handler=cmd_layers)


def _is_current(app: App, layer: BuiltLayer) -> bool:
    image = app.images.get(layer.manifest.template)
    return image is not None and image.manifest.recipe_hash == layer.manifest.recipe_hash


def cmd_layers(app: App, args: argparse.Namespace) -> int:
    store = LayerStore(app.settings.image_store)
    removed: list[str] = []
    if args.prune:
        for leftover in store.leftovers():
            store.remove(leftover)
            removed.append(leftover.name)
        cutoff = time.time() - args.unused_days * DAY_S if args.unused_days is not None else None
        for layer in store.list():
            if not _is_current(app, layer) or (cutoff is not None and layer.last_used < cutoff):
                store.remove(layer.directory)
                removed.append(layer.key)
    kept = store.list()
    rows = [{
        "key": layer.key, "template": layer.manifest.template, "current": _is_current(app, layer),
        "packages": len(layer.manifest.packages), "size_bytes": layer.disk_bytes,
        "built_at": layer.manifest.built_at, "build_seconds": layer.manifest.build_seconds,
        "last_used": _iso(layer.last_used), "sources": sorted(set(layer.manifest.packages.values())),
    } for layer in kept]
    if args.json:
        emit_json({"layers": rows, "removed": removed})
        return 0
    for name in removed:
        info(f"removed {name}")
    table("host layers", ["layer", "template", "status", "packages", "size", "built", "last used"], [
        [layer.key[:12], layer.manifest.template, "current" if _is_current(app, layer) else "outdated",
         len(layer.manifest.packages), f"{layer.disk_bytes // 2**20} MiB", layer.manifest.built_at,
         _iso(layer.last_used)] for layer in kept])
    return 0


def _iso(timestamp: float) -> str:
    return epoch_timestamp(timestamp)
