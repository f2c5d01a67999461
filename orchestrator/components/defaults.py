"""Sensible defaults for the template's services; `watch:` in config.yaml replaces or extends them."""

from __future__ import annotations

from orchestrator.model import Component, HttpCheck

DEFAULT_COMPONENTS: tuple[Component, ...] = (
    Component(
        name="nginx",
        units=("nginx.service",),
        config_paths=("/etc/nginx",),
        unit_paths=("/etc/systemd/system/nginx.service.d",),
        config_test=("nginx", "-t"),
        http=(HttpCheck("http://127.0.0.1:80/"),),
        packages=("nginx", "nginx-common"),
        log_paths=("/var/log/nginx",),
    ),
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
    Component(
        name="sshd",
        units=("ssh.service",),
        # Not all of /etc/ssh: host private keys never leave the target.
        config_paths=("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d"),
        unit_paths=("/etc/systemd/system/ssh.service.d",),
        config_test=("sshd", "-t"),
        packages=("openssh-server",),
    ),
    Component(
        name="cron",
        vital=False,
        units=("cron.service",),
        config_paths=("/etc/crontab", "/etc/cron.d"),
        packages=("cron",),
    ),
    Component(
        name="rsyslog",
        vital=False,
        units=("rsyslog.service",),
        config_paths=("/etc/rsyslog.conf", "/etc/rsyslog.d"),
        config_test=("rsyslogd", "-N1"),
        packages=("rsyslog",),
        log_paths=("/var/log",),
    ),
    # What the next boot reads. No units on purpose: nothing here is fixed by a restart, so a boot
    # issue always goes to a troubleshooting VM and is proven there by a reboot.
    Component(
        name="boot",
        config_paths=("/etc/fstab",),
        fstab=("/etc/fstab",),
    ),
)
