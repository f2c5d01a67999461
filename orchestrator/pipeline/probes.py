"""Adapter: the detect stage's Detector as the ProbeRunner the validator and triage use."""

from __future__ import annotations

from collections.abc import Collection

from orchestrator.agent.api import AgentApi
from orchestrator.components.config import WatchConfig
from orchestrator.detect.detector import DetectionReport, Detector
from orchestrator.model import ProbeResult
from orchestrator.transport.base import Transport


class DetectorProbes:
    def __init__(self, watch: WatchConfig, transport: Transport, agent: AgentApi) -> None:
        self.watch = watch
        self.detector = Detector(watch, transport, agent)

    def detect(self) -> DetectionReport:
        return self.detector.run()

    def run_all(self) -> list[ProbeResult]:
        return list(self.detector.run().results)

    def run_components(self, components: Collection[str]) -> list[ProbeResult]:
        return self.detector.run_components(components)

    def run_probe(self, name: str) -> ProbeResult:
        return self.detector.run_probe(name)

    def component_results(self, component: str) -> list[ProbeResult]:
        return self.detector.run_components([component])
