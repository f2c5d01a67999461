"""One section per repaired component, in pipeline order: triage → (in place) → reproduction → diagnosis →
attempts → validation → change → apply → validation on the target."""

from __future__ import annotations

from typing import Any

from orchestrator.report.attempts import attempts_section, diagnosis_section
from orchestrator.report.change import apply_section, fix_package_section
from orchestrator.report.escape import code, inline
from orchestrator.report.files import Loaded, SessionFiles, as_dict, as_list
from orchestrator.report.fold import Fold
from orchestrator.report.generic import evidence_block, nested_block, records_table, scalar_bullets
from orchestrator.report.manual import manual_steps_section
from orchestrator.report.overview import status_label, unreadable
from orchestrator.report.validation import render_validation
from orchestrator.session.evidence import Evidence

MAX_EVIDENCE = 8
#: Outcomes whose missing stage files are worth listing one by one (where the run stopped).
_UNFINISHED = frozenset({None, "error", "running"})


def component_fold(files: SessionFiles, component: str, detail: dict[str, Any]) -> Fold:
    """The component's whole story, folded under a title that says how it ended."""
    status = detail.get("status")
    title = f"Component {component or '(unnamed)'}" + (f": {status_label(status)}" if status else "")
    if detail.get("strategy"):
        title += f" with {detail['strategy']}"
    return Fold(title, component_section(files, component, detail))


def component_section(files: SessionFiles, component: str, detail: dict[str, Any]) -> str:
    out = []
    if detail.get("issue"):
        out.append(f"- **Issue:** {code(detail['issue'])}")
    if detail.get("summary"):
        out.append(f"- **Outcome:** {inline(detail['summary'], 1000)}")
    out += scalar_bullets(detail, skip=("component", "issue", "summary", "status"))
    out.append("")
    if detail.get("status") not in _UNFINISHED and all(files.stage(e, component).missing for e in Evidence):
        # Cleared by another component's repair, or reported only: seven "Not reached" said nothing.
        return "\n".join([*out, "_No repair of its own: no troubleshooting stage ran for it._\n"])
    # The triaged issue is in *Issues found* already.
    out.append(_simple("Triage", files.stage(Evidence.TRIAGE, component), skip=("issue",)))
    in_place = files.stage(Evidence.IN_PLACE, component)
    if not in_place.missing:
        out.append(_records("Restart in place", in_place))
    if detail.get("in_place"):
        out.append("_Resolved by the in-place restart; no troubleshooting VM was needed._\n")
        return "\n".join(out)
    out.append(_reproduce(files.stage(Evidence.REPRODUCE, component)))
    out.append(diagnosis_section(files.stage(Evidence.DIAGNOSIS, component)))
    attempts = files.stage(Evidence.ATTEMPTS, component)
    out.append(attempts_section(attempts))
    manual = manual_steps_section(attempts, detail) if detail.get("status") != "repaired" else ""
    if manual:
        out.append(manual)
    final = files.stage(Evidence.VALIDATION, component)
    if not final.missing:
        out += ["### Validation", "", render_validation(final.data) if final.ok else unreadable(final)]
    out.append(fix_package_section(files.stage(Evidence.FIX_PACKAGE, component)))
    out.append(apply_section(files.stage(Evidence.APPLY, component), detail))
    target = files.stage(Evidence.TARGET_VALIDATION, component)
    out += ["### Validation on the target", "",
            render_validation(target.data) if target.ok else unreadable(target)]
    return "\n".join(out)


def _simple(title: str, loaded: Loaded, skip: tuple[str, ...] = ()) -> str:
    out = [f"### {title}", ""]
    if not loaded.ok:
        return "\n".join([*out, unreadable(loaded)])
    data = as_dict(loaded.data)
    out += scalar_bullets(data, skip) or ["_Nothing recorded._"]
    out.append("")
    rest = nested_block(data, skip)
    return "\n".join(out + ([rest] if rest else []))


def _records(title: str, loaded: Loaded) -> str:
    if not loaded.ok:
        return f"### {title}\n\n" + unreadable(loaded)
    if isinstance(loaded.data, list):
        return f"### {title}\n\n" + records_table(loaded.data)
    return _simple(title, loaded)


def _layer(layer: dict[str, object]) -> list[str]:
    """Which environment the VM was: a host layer (what it added, where from) or the template (why)."""
    if not layer:
        return []
    if layer.get("used"):
        added = [code(a, limit=120) for a in as_list(layer.get("added"))]
        sources = as_dict(layer.get("sources"))
        how = (f"built now in {inline(layer.get('build_seconds'), 20)} s" if layer.get("built_now")
               else "cached")
        lines = [f"- **Host layer:** {code(str(layer.get('used'))[:16])} ({how}): {len(added)} packages "
                 f"of the target's added to the template ("
                 + ", ".join(f"{inline(v, 10)} from {inline(k, 40)}" for k, v in sources.items()) + ")",
                 f"- **Packages the layer added:** {', '.join(added[:MAX_EVIDENCE])}"
                 + (f" and {len(added) - MAX_EVIDENCE} more" if len(added) > MAX_EVIDENCE else "")]
        lines += [f"- **Layer note:** {inline(n, 300)}" for n in as_list(layer.get("notes"))[:MAX_EVIDENCE]]
        return lines
    template = f"template {code(layer.get('template'))}" if layer.get("template") else "template"
    notes = [f"- **Environment note:** {inline(n, 300)}"
             for n in as_list(as_dict(layer.get("plan")).get("notes"))[:MAX_EVIDENCE]]
    if layer.get("fallback"):
        return [f"- **Environment:** the plain {template}; no host layer: "
                f"{inline(layer.get('fallback'), 600)}", *notes]
    return [f"- **Environment:** the plain {template} (it already has the packages that matter at the "
            "target's versions)", *notes]


def _reproduce(loaded: Loaded) -> str:
    out = ["### Reproduction in the troubleshooting VM", ""]
    if not loaded.ok:
        return "\n".join([*out, unreadable(loaded)])
    data = as_dict(loaded.data)
    environment = as_dict(data.get("environment"))
    missing = [inline(m, 300) for m in as_list(environment.get("missing_in_vm"))[:MAX_EVIDENCE]]
    if missing:
        verdict = "**NOT REPRODUCED**: the VM differs from the target, so its probe proves nothing"
    elif data.get("ok") is False:
        verdict = "reproduced: the probe fails in the VM as on the target"
    else:
        verdict = "**NOT REPRODUCED**: the probe passes in the VM"
    out += [f"- **Probe:** {code(data.get('probe'))}", f"- **Result:** {verdict}",
            f"- **Probe said:** {inline(data.get('summary'), 1000)}"]
    out += _layer(as_dict(data.get("layer")))
    if data.get("import_complete") is False:
        out.append("- **Import of the captured files:** **incomplete** (see the timeline)")
    states = [inline(s, 200) for s in as_list(data.get("unit_states"))[:MAX_EVIDENCE]]
    if states:
        out.append(f"- **Unit states mirrored from the target:** {'; '.join(states)}")
    packages = [inline(s, 200) for s in as_list(data.get("package_states"))[:MAX_EVIDENCE]]
    if packages:
        out.append(f"- **Package states mirrored from the target:** {'; '.join(packages)}")
    removed = [code(r, limit=300) for r in as_list(data.get("absent_removed"))[:MAX_EVIDENCE]]
    if removed:
        out.append(f"- **Removed from the VM (absent on the target):** {', '.join(removed)}")
    owners = [inline(o, 200) for o in as_list(data.get("owners_mapped"))[:MAX_EVIDENCE]]
    if owners:
        out.append(f"- **Owners set by name as on the target:** {'; '.join(owners)}")
    out += [f"- **The VM lacks:** {m}" for m in missing]
    out += [f"- **Differs:** {inline(n, 300)}" for n in as_list(environment.get("notes"))[:MAX_EVIDENCE]]
    out.append("")
    evidence = as_dict(data.get("evidence"))
    if evidence:
        out.append(evidence_block(evidence, MAX_EVIDENCE))
    return "\n".join(out)
