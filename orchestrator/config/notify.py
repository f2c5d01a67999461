"""``notify:`` section of config.yaml: the channels notifications go to and which events go where.

.. code-block:: yaml

    notify:
      troubleshooting: summary          # immediate | summary | none
      channels:
        log: {kind: log}
        ops: {kind: webhook, url: "https://hooks.example/vmrepair", timeout_s: 5, retries: 2}
        page: {kind: command, argv: [/usr/local/bin/page-oncall], timeout_s: 30}
      routes:
        "*": [log]                      # every event without a route of its own
        not_repaired: [log, ops, page]
        budget_exhausted: [log, page]

An event goes to the channels of its own route, else to those of ``"*"``; a route to ``[]`` silences
that event. Routes and channels are checked against each other when the file loads.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.notify.event import EVENT_KINDS

#: ``immediate``: a notification when each escalation to a troubleshooting VM starts; ``summary``: one
#: per run listing the escalations and how each ended; ``none``: neither.
TroubleshootingPreference = Literal["immediate", "summary", "none"]
#: The route key for every event that has no route of its own.
ANY_EVENT = "*"
_CHANNEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LogChannelSettings(_Strict):
    kind: Literal["log"] = "log"


class WebhookChannelSettings(_Strict):
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    #: Per try. Short by default: the receiver only has to queue the event.
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    #: More tries after the first, on a 5xx, a timeout or no connection (never on a 4xx).
    retries: int = Field(default=2, ge=0, le=10)
    #: First wait between tries; doubles each time (at most 30 s).
    backoff_s: float = Field(default=1.0, ge=0, le=60)


class CommandChannelSettings(_Strict):
    kind: Literal["command"]
    #: argv of the command (no shell); the event is passed as JSON on stdin, never in the argv.
    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=30.0, gt=0, le=600)


ChannelSettings = Annotated[LogChannelSettings | WebhookChannelSettings | CommandChannelSettings,
                            Field(discriminator="kind")]


class NotifySettings(_Strict):
    """Who hears of what vmrepair does: channels, and which events go to which (see orchestrator.notify)."""

    #: immediate: each escalation to a troubleshooting VM as it starts; summary: one per run; none.
    troubleshooting: TroubleshootingPreference = "summary"
    #: Named channels: log, webhook (JSON POST, retried on 5xx/timeouts), command (event JSON on stdin).
    channels: dict[Annotated[str, Field(pattern=_CHANNEL_NAME)], ChannelSettings] = Field(
        default_factory=lambda: dict[str, ChannelSettings]({"log": LogChannelSettings()}))
    #: Event kind (or "*" for every event without a route of its own) → channel names; [] silences it.
    routes: dict[str, list[str]] = Field(default_factory=lambda: {ANY_EVENT: ["log"]})
    #: Events waiting for the background delivery (webhooks, commands); beyond it new ones are dropped
    #: (and the drop audited) rather than held in memory or slowing a repair.
    queue_size: int = Field(default=200, ge=1, le=10000)
    #: How long vmrepair waits at exit for queued notifications to be delivered.
    flush_timeout_s: float = Field(default=15.0, ge=0, le=600)

    @model_validator(mode="after")
    def _routes_name_known_things(self) -> NotifySettings:
        for key, names in self.routes.items():
            if key != ANY_EVENT and key not in EVENT_KINDS:
                # Short: the renderer clips a long message in its middle, where the name would be.
                raise ValueError(f"routes: unknown event {key!r} (use \"*\" or an event such as "
                                 "not_repaired; the README's Notifications section lists them)")
            for name in names:
                if name not in self.channels:
                    raise ValueError(f"routes.{key}: no channel named {name!r} (channels: "
                                     f"{', '.join(sorted(self.channels)) or 'none'})")
        return self

    def channels_for(self, kind: str) -> tuple[str, ...]:
        """The channel names an event of ``kind`` goes to (its own route, else ``"*"``'s)."""
        names = self.routes.get(kind, self.routes.get(ANY_EVENT, []))
        return tuple(dict.fromkeys(names))
