"""`vmrepair daemon`: watch one target on intervals, act by policy, and answer a local API.

Layout (each module small and tested on its own):

- :mod:`.service`    lifecycle: start-up hooks, API, job thread, watchdog, stop on SIGTERM/SIGINT
- :mod:`.scheduler`  runs the jobs one at a time on one thread (no overlap), failures audited
- :mod:`.detection`  the detection job and the policies (auto-repair, ask, detect-only)
- :mod:`.jobs`       baseline recording and health polling jobs, escalation to detection
- :mod:`.state`      what the daemon knows now (issues, readiness, counters), shared under a lock
- :mod:`.api`        the endpoints; :mod:`.server` the accept loop with SO_PEERCRED;
  :mod:`.http` the bounded request parser; :mod:`.socketpath` the socket's safety checks
- :mod:`.metrics`    Prometheus text; :mod:`.audit_tap` counts what the audit log records
- :mod:`.notify`     sd_notify (READY, STATUS, WATCHDOG, STOPPING)
- :mod:`.client`     the API client behind `vmrepair status`
- :mod:`.wiring`     builds all of it from an App (where the other components plug in)
- :mod:`.__main__`   the lean entry point `vmrepair daemon` re-executes into; :mod:`.logsetup` its logging
"""
