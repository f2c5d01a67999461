"""What was changed on the target: the fix package's operations and diffs, and how it was applied.

Read from ``fix-package-<component>.json`` (``id``, ``directory``, ``strategy``, ``reboot_required``,
``operations`` in the form of :mod:`orchestrator.fixpkg.ops` — or ``before_sha256``/``after_sha256``/
``owner`` — and ``diffs`` as ``{path: unified diff}`` or a per-operation ``diff``) and
``apply-<component>.json`` (``status``, ``backup_dir``/``backup``/``backup_path``, ...).
"""

from __future__ import annotations

from typing import Any

from orchestrator.report.escape import code, code_block, duration, inline, table
from orchestrator.report.files import Loaded, as_dict, as_list, first
from orchestrator.report.generic import nested_block, scalar_bullets
from orchestrator.report.overview import unreadable

#: A diff is the most useful thing in the report; give it twice the usual room.
DIFF_LIMIT = 8192
_SHORT_SHA = 12
_BACKUP_KEYS = ("backup_dir", "backup", "backup_path", "backup_location")


def fix_package_section(loaded: Loaded) -> str:
    out = ["### Change (fix package)", ""]
    if not loaded.ok:
        return "\n".join([*out, unreadable(loaded)])
    pkg = as_dict(loaded.data)
    ops = [as_dict(op) for op in as_list(pkg.get("operations"))]
    out += [f"- **Package:** {code(pkg.get('id') or 'unnamed')}"
            + (f" in {code(pkg['directory'], limit=500)}" if pkg.get("directory") else ""),
            f"- **Strategy:** {code(pkg.get('strategy') or 'unknown')}",
            f"- **Reboot required:** {'yes' if pkg.get('reboot_required') else 'no'}",
            f"- **Operations:** {len(ops)}", ""]
    if not ops:
        return "\n".join([*out, "_The package changes nothing._\n"])
    out.append(table(["#", "Operation", "Path or unit", "Before (sha256)", "After (sha256)", "Mode", "Owner"],
                     [_op_row(n, op) for n, op in enumerate(ops, start=1)]))
    diffs = diffs_of(pkg)
    for path, diff in diffs:
        out += [f"#### Diff of {code(path, limit=500)}", "", code_block(diff, lang="diff", limit=DIFF_LIMIT)]
    if not diffs:
        out.append("_No text diff recorded (binary files, or the original could not be read)._\n")
    return "\n".join(out)


def apply_section(loaded: Loaded, detail: dict[str, Any]) -> str:
    out = ["### Apply and backup", ""]
    backup = first(as_dict(loaded.data), *_BACKUP_KEYS) or detail.get("backup")
    if not loaded.ok:
        text = "\n".join([*out, unreadable(loaded)])
        return text + (f"\nBackup recorded for this component: {code(backup, limit=500)}\n" if backup else "")
    data = as_dict(loaded.data)
    status = str(data.get("status") or "unknown")
    shown = status if status == "applied" else f"**{inline(status, 40).upper()}**"
    out += [f"- **Result:** {shown}",
            "- **Backup of the files before the change:** "
            + (code(backup, limit=500) if backup else "**none recorded**")]
    out += scalar_bullets(data, skip=("status", *_BACKUP_KEYS))
    durations = as_dict(data.get("durations"))
    if durations:
        out.append("- **Durations:** "
                   + ", ".join(f"{inline(k, 40)} {duration(v)}" for k, v in durations.items()))
    out.append("")
    rest = nested_block(data, skip=("durations",))
    if rest:
        out += ["Details:", "", rest]
    return "\n".join(out)


def _op_row(number: int, op: dict[str, Any]) -> list[str]:
    kind = str(op.get("op") or op.get("action") or "?")
    before = first(op, "before_sha256", "expect_sha256") or first(as_dict(op.get("before")), "sha256")
    after = first(op, "after_sha256", "sha256") or first(as_dict(op.get("after")), "sha256")
    target = op.get("path") or op.get("unit")
    if (node := _node_before_after(kind, op)) is not None:
        before, after = node
    elif kind == "remove_file":
        after = "removed"
    elif kind == "set_meta":
        after = "content unchanged"
    elif kind == "unit":
        target = f"systemctl {op.get('action', '?')} {op.get('unit', '?')}"
    elif kind == "daemon_reload":
        target = "systemctl daemon-reload"
    elif kind == "rotate_log":
        after = f"rotated ({op.get('method', '?')})"
    return [str(number), inline(kind, 40), code(target or "", limit=300, in_table=True), _sha(before),
            _sha(after), _mode(op.get("mode")), inline(_owner(op), 80)]


def _node_before_after(kind: str, op: dict[str, Any]) -> tuple[str, str] | None:
    """Before/after of the operations on symlinks, directories, modes and unit-file states."""
    old_link = op.get("expect_target")
    rows = {
        "symlink": (f"link → {old_link}" if old_link else "absent (new symlink)",
                    f"link → {op.get('target')}"),
        "remove_symlink": (f"link → {old_link}", "removed"),
        "make_dir": ("absent (new directory)", "directory"),
        "remove_dir": ("empty directory", "removed"),
        "set_owner_mode": (f"{op.get('kind')} {_mode(op.get('expect_mode'))} uid {op.get('expect_uid')} / "
                           f"gid {op.get('expect_gid')}", "content unchanged"),
        "unit_state": (f"is-enabled: {op.get('expect')}", str(op.get("state"))),
    }
    return rows.get(kind)


def _sha(value: object) -> str:
    if value is None:
        return "—"
    text = str(value)
    if text == "absent":
        return "absent (new file)"
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return f"`{text[:_SHORT_SHA]}`"
    return inline(text, 80)


def _mode(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:04o}"
    return inline(value, 16)


def _owner(op: dict[str, Any]) -> str:
    if op.get("owner") is not None:
        group = op.get("group")
        return f"{op['owner']}:{group}" if group is not None else str(op["owner"])
    if op.get("uid") is not None:
        return f"uid {op['uid']} / gid {op.get('gid', '?')}"
    return ""


def diffs_of(pkg: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path, unified diff) of a fix package, from its ``diffs`` or its operations' own ``diff``."""
    ops = [as_dict(op) for op in as_list(pkg.get("operations"))]
    diffs = pkg.get("diffs")
    found: dict[str, Any] = {}
    if isinstance(diffs, dict):
        found.update({str(k): v for k, v in diffs.items() if v})
    for entry in map(as_dict, as_list(diffs)):
        if entry.get("diff"):
            found[str(entry.get("path", "?"))] = entry["diff"]
    for op in ops:
        if op.get("diff"):
            found.setdefault(str(op.get("path", "?")), op["diff"])
    return list(found.items())
