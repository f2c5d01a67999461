"""vmrepair's Prometheus metrics, built from what is persisted so every process reports the same.

- :mod:`.detections`  the last detection of each target (``<state>/detections/<slug>.json``), written
                      by `vmrepair detect`, `vmrepair run` and the daemon: open issues, detection age
- :mod:`.sessions`    repair outcomes, time to repair and troubleshooting-VM readiness, read from the
                      session store
- :mod:`.quarantined` components in quarantine, from the local quarantine directory
- :mod:`.collector`   the prometheus_client collector over all of the above and the state store
- :mod:`.textfile`    ``vmrepair.prom`` for node_exporter's textfile collector (never fails a command)
- :mod:`.listen`      the optional loopback HTTP port of the daemon

The daemon's own counters (jobs, restarts, readiness) live in memory and are only served by the
daemon (:mod:`orchestrator.daemon.metrics`); the textfile holds the persisted metrics only, so the
daemon and a CLI run write the same file for the same state.
"""
