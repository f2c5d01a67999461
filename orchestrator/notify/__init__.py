"""Notifications: telling people what vmrepair did, for every event of a repair and of the daemon.

- :mod:`.event`    the typed :class:`~.event.Event` and its :class:`~.event.EventKind`
- :mod:`.channels` where an event goes: the log (and audit log), a JSON webhook, a local command
- :mod:`.hub`      :class:`~.hub.Notifications`: routes events to channels, delivers the slow ones in
  the background, never raises
- :mod:`.run`      :class:`~.run.RunNotices`: what one repair run emits (the troubleshooting preference)
- :mod:`.build`    the hub from the ``notify:`` settings (and the deprecated ``reboot.notifiers``)

Kept free of imports here: :mod:`orchestrator.reboot.notify` uses the channels, and the hub bridges
reboot events back in, so importing the whole package from here would make a cycle.
"""
