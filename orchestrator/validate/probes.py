"""What validation needs from the detect stage: re-running probes by name, or all of them.

``orchestrator.detect``'s Detector satisfies :class:`ProbeRunner` (directly or through a two-line
adapter); validation depends on nothing else of detect's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol, runtime_checkable

from orchestrator.errors import VmRepairError
from orchestrator.model import ProbeResult


class ProbeRunner(Protocol):
    """Runs the detect stage's probes against one host (here: the VM under validation)."""

    def run_all(self) -> list[ProbeResult]:
        """Run every configured probe once.

        Raises:
            VmRepairError: (usually a TransportError) the probes could not run at all.
        """
        ...

    def run_components(self, components: Collection[str]) -> list[ProbeResult]:
        """Run only the probes owned by ``components`` (the stability rounds: under TCG every probe is
        a guest process start, so running all of them each round would stretch the rounds).

        Raises:
            VmRepairError: (usually a TransportError) the probes could not run at all.
        """
        ...

    def run_probe(self, name: str) -> ProbeResult:
        """Run the probe called ``name`` (``unit:nginx.service``, ``http:http://127.0.0.1:8080/health``).

        Raises:
            ConfigError | KeyError: no probe has that name (the Detector raises ConfigError).
            VmRepairError: (usually a TransportError) the probe could not run.
        """
        ...


@runtime_checkable
class BatchProbeRunner(ProbeRunner, Protocol):
    """A runner that can run several named probes as one batch (the Detector: side by side)."""

    def run_named(self, names: Sequence[str]) -> list[ProbeResult | VmRepairError | KeyError]:
        """One entry per name, in order: the result, or the error that probe raised.

        Raises: nothing of our tree (errors are entries); bugs propagate.
        """
        ...


def run_named_many(probes: ProbeRunner, names: Sequence[str], *,
                   clock: Callable[[], float]) -> list[tuple[bool, str, float]]:
    """(passed, detail, seconds) per name, as :func:`run_named` judges them; one batch when the runner
    supports it (the seconds are then the batch's, shared), else one probe after the other."""
    if not isinstance(probes, BatchProbeRunner):
        out = []
        for name in names:
            began = clock()
            ok, detail = run_named(probes, name)
            out.append((ok, detail, clock() - began))
        return out
    began = clock()
    answers = probes.run_named(names)
    seconds = clock() - began
    return [(*_verdict(name, answer), seconds) for name, answer in zip(names, answers, strict=True)]


def _verdict(name: str, answer: ProbeResult | VmRepairError | KeyError) -> tuple[bool, str]:
    if isinstance(answer, KeyError):
        return False, f"no probe named {name!r} any more"
    if isinstance(answer, VmRepairError):
        return False, f"probe could not run: {answer.message}"
    return judge(answer)


def judge(result: ProbeResult) -> tuple[bool, str]:
    """(passed, detail) of one probe result; a probe that could not run does not pass."""
    if result.is_unavailable:
        return False, f"probe could not run: {result.summary}"
    return result.ok, result.summary or ("ok" if result.ok else "failed")


def run_named(probes: ProbeRunner, name: str) -> tuple[bool, str]:
    """Run one probe by name and judge it; an unknown name or a probe error is a failure.

    Raises: nothing of our tree (errors become a failed verdict); bugs propagate.
    """
    try:
        return judge(probes.run_probe(name))
    except KeyError:
        return False, f"no probe named {name!r} any more"
    except VmRepairError as exc:
        return False, f"probe could not run: {exc.message}"
