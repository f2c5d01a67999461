"""What the caller asks of one run (:class:`RunOptions`) and the same resolved against the settings once
(:class:`Resolved`): every stage reads the resolved value, none compares an option with a setting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from orchestrator.config.reboot import RebootPolicy
from orchestrator.config.settings import Settings

Confirm = Callable[[str], bool]
T = TypeVar("T")


def pick(option: T | None, setting: T) -> T:
    """The option when the caller gave one, else the setting."""
    return setting if option is None else option


@dataclass
class RunOptions:
    dry_run: bool = False
    assume_yes: bool = False
    confirm: Confirm | None = None
    #: Overrides settings.repair.stable_period_s (tests and demos use shorter periods).
    stable_period_s: float | None = None
    #: ``--reboot-policy``: overrides settings.reboot.policy, and is the operator's explicit consent
    #: to reboot automatically a target that has no boot fallback.
    reboot_policy: RebootPolicy | None = None
    #: Overrides settings.reboot.notice_s for ``automatic``.
    reboot_notice_s: float | None = None
    #: Overrides settings.reboot.attempt_budget.
    attempt_budget: int | None = None


@dataclass(frozen=True)
class Resolved:
    """Options after "an option overrides its setting": the only form the stages see."""

    dry_run: bool
    assume_yes: bool
    confirm: Confirm | None
    stable_period_s: float
    reboot_policy: RebootPolicy
    #: The operator chose the policy on this run (``--reboot-policy``): consent to reboot a target
    #: that has no boot fallback.
    reboot_policy_explicit: bool
    reboot_notice_s: float
    attempt_budget: int

    @classmethod
    def of(cls, options: RunOptions, settings: Settings) -> Resolved:
        return cls(
            dry_run=options.dry_run,
            assume_yes=options.assume_yes,
            confirm=options.confirm,
            stable_period_s=pick(options.stable_period_s, settings.repair.stable_period_s),
            reboot_policy=pick(options.reboot_policy, settings.reboot.policy),
            reboot_policy_explicit=options.reboot_policy is not None,
            reboot_notice_s=pick(options.reboot_notice_s, settings.reboot.notice_s),
            # 0 is not a budget: the CLI refuses it, and the old code treated it as "not given".
            attempt_budget=options.attempt_budget or settings.reboot.attempt_budget,
        )
