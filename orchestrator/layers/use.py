"""What a round did about host layers, for the evidence and the report: the layer it ran on (built now
or cached, what it added and where the .debs came from), or why it stayed on the template."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from orchestrator.layers.build import LayerResult
from orchestrator.layers.plan import LayerPlan


@dataclass(frozen=True)
class LayerUse:
    plan: LayerPlan | None = None
    result: LayerResult | None = None
    #: Why the sandbox runs the plain template although the target has packages it lacks (or "").
    fallback: str = ""
    #: The template under it: the default one, or its recipe built for the target's release.
    template: str = ""

    @property
    def key(self) -> str:
        return self.result.layer.key if self.result is not None else ""

    def describe(self) -> str:
        if self.result is not None:
            m = self.result.layer.manifest
            how = f"built in {m.build_seconds:.0f} s" if self.result.is_built else "cached"
            return f"layer {m.key[:12]} ({len(m.packages)} packages, {how})"
        name = f"the template {self.template}" if self.template else "the template"
        return name + (f" (no layer: {self.fallback})" if self.fallback else "")

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"plan": self.plan.as_dict() if self.plan else None,
                                   "fallback": self.fallback, "used": self.key, "template": self.template}
        if self.result is not None:
            m = self.result.layer.manifest
            data |= {"vm_name": m.vm_name, "built_now": self.result.is_built,
                     "seconds": round(self.result.seconds, 1), "build_seconds": m.build_seconds,
                     "added": sorted(m.packages), "sources": dict(Counter(m.packages.values())),
                     "notes": list(self.result.notes)}
        return data
