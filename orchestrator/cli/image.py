"""`vmrepair image build|list|warm|layers`."""

from __future__ import annotations

import argparse

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.app import App
from orchestrator.cli import layers
from orchestrator.cli.output import emit_json, err_console, info, table
from orchestrator.imaging.builder import ImageBuilder
from orchestrator.imaging.recipe import recipe_hash
from orchestrator.imaging.releases import release_template
from orchestrator.imaging.template import list_templates, load_template


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser("image", help="build and list template images")
    isub = image.add_subparsers(dest="image_cmd", required=True, metavar="{build,list,warm,layers}")
    build = isub.add_parser("build", help="build a template image (cached by recipe hash)")
    build.add_argument("template", nargs="?", help="template name or YAML path (default from config)")
    build.add_argument("--force", action="store_true", help="rebuild even when the cache is current")
    build.add_argument("--suite", metavar="NAME",
                       help="build the template's recipe for another Debian release (bullseye, trixie ...), "
                            "named TEMPLATE-NAME: the troubleshooting VM of a target on that release")
    build.set_defaults(handler=cmd_build)
    lst = isub.add_parser("list", help="list templates and their builds")
    lst.set_defaults(handler=cmd_list)
    warm = isub.add_parser("warm", help="boot the template once and save its state for fast VM starts")
    warm.add_argument("template", nargs="?", help="template name (default from config)")
    warm.set_defaults(handler=cmd_warm)
    layers.register(isub)


class _RichReporter:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=1, detail="")

    def step(self, index: int, total: int, name: str) -> None:
        self.progress.update(self.task, total=total, completed=index - 1, description=name)

    def output(self, line: str) -> None:
        self.progress.update(self.task, detail=line[:60])


def cmd_build(app: App, args: argparse.Namespace) -> int:
    template = load_template(app.settings.templates_dir, args.template or app.settings.default_template)
    if args.suite:
        template = release_template(template, args.suite)
    with Progress(
        TextColumn("{task.description:<14}", style="bold", markup=False), BarColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        console=err_console, transient=not err_console.is_terminal,
    ) as progress:
        reporter = _RichReporter(progress)
        result = ImageBuilder(app.settings, app.local, reporter).build(template, force=args.force)
        progress.update(reporter.task, completed=progress.tasks[0].total, description="done")
    manifest = result.image.manifest
    if args.json:
        emit_json({"template": manifest.template, "rebuilt": result.is_rebuilt,
                   "directory": str(result.image.directory), "recipe_hash": manifest.recipe_hash,
                   "build_seconds": manifest.build_seconds, "steps": result.step_seconds,
                   "host_key_fingerprint": manifest.host_key_fingerprint})
    elif result.is_rebuilt:
        info(f"built {manifest.template} in {manifest.build_seconds:.0f} s -> {result.image.directory}")
    else:
        info(f"{manifest.template} is up to date (recipe {manifest.recipe_hash[:12]}); "
             "use --force to rebuild")
    return 0


def cmd_warm(app: App, args: argparse.Namespace) -> int:
    template = args.template or app.settings.default_template
    info(f"preparing the warm state of {template} (one cold boot, then a saved memory state)...")
    state = app.vms.prepare_warm(template)
    if args.json:
        emit_json({"template": template, "directory": str(state.directory),
                   "recipe_hash": state.recipe_hash})
    else:
        info(f"warm state ready in {state.directory}")
    return 0


def cmd_list(app: App, args: argparse.Namespace) -> int:
    rows = []
    for path in list_templates(app.settings.templates_dir):
        template = load_template(app.settings.templates_dir, str(path))
        built = app.images.get(template.name)
        wanted = recipe_hash(app.settings.recipes_dir, template)
        status = "not built"
        if built is not None:
            status = "current" if built.manifest.recipe_hash == wanted else "outdated"
        rows.append({
            "template": template.name, "status": status,
            "built_at": built.manifest.built_at if built else None,
            "size_bytes": sum(a.size for a in built.manifest.artifacts.values()) if built else 0,
            "kernel": built.manifest.kernel_version if built else None,
            "host_key_fingerprint": built.manifest.host_key_fingerprint if built else None,
            "directory": str(built.directory) if built else None,
        })
    if args.json:
        emit_json({"images": rows})
    else:
        table("templates", ["template", "status", "built", "size", "kernel"], [
            [r["template"], r["status"], r["built_at"] or "-", _mib(r["size_bytes"]), r["kernel"] or "-"]
            for r in rows
        ])
    return 0


def _mib(size: object) -> str:
    return f"{size // 2**20} MiB" if isinstance(size, int) else "-"
