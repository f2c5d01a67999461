"""What discovery cannot know about the services vmrepair ships with, as configured overrides.

Everything else (units, config paths, config tests, packages, ports, users) is discovered on the
target (:mod:`orchestrator.discover`), and for daemons vmrepair knows, taken from their profile
(:mod:`orchestrator.discover.profiles`). An entry here applies only where its unit exists: on a host
without nginx, nginx's HTTP check is never run and raises nothing. ``watch:`` in config.yaml adds to
or replaces these.
"""

from __future__ import annotations

from orchestrator.model import Component, HttpCheck

DEFAULT_COMPONENTS: tuple[Component, ...] = (
    # Debian's nginx serves its default page on port 80: an answer there is the service working.
    Component(
        name="nginx",
        units=("nginx.service",),
        http=(HttpCheck("http://127.0.0.1:80/"),),
    ),
    # The template's in-house application: its endpoints, its interaction log (JSON lines a crash can
    # tear), the data the log lives in (captured, so a corrupt log reproduces in the VM) and its code.
    Component(
        name="sampleapp",
        units=("sampleapp.service",),
        config_paths=("/etc/default/sampleapp", "/opt/sampleapp"),
        unit_paths=("/etc/systemd/system/sampleapp.service", "/etc/systemd/system/sampleapp.service.d"),
        data_paths=("/var/lib/sampleapp",),
        http=(HttpCheck("http://127.0.0.1:8080/health"), HttpCheck("http://127.0.0.1:8080/ready")),
        jsonl_logs=("/var/lib/sampleapp/interactions.jsonl",),
        log_paths=("/var/log/sampleapp",),
    ),
    # What the next boot reads. No units on purpose: nothing here is fixed by a restart, so a boot
    # issue always goes to a troubleshooting VM and is proven there by a reboot.
    Component(
        name="boot",
        config_paths=("/etc/fstab",),
        fstab=("/etc/fstab",),
        origin="builtin",
    ),
)
