"""Reboot analysis: boot-critical paths, a strategy's declaration, a validation that needed a boot."""

from __future__ import annotations

import pytest

from orchestrator.boot.critical import analyse, boot_critical


@pytest.mark.parametrize("path", [
    "/etc/fstab", "/etc/crypttab", "/etc/default/grub", "/etc/default/grub.d/50-cloud.cfg",
    "/boot/grub/grub.cfg", "/etc/initramfs-tools/modules", "/etc/modprobe.d/blacklist.conf",
    "/etc/systemd/system/data.mount", "/usr/lib/systemd/system-generators/x", "/etc/kernel/cmdline",
])
def test_boot_critical_paths(path: str) -> None:
    assert boot_critical(path)


@pytest.mark.parametrize("path", [
    "/etc/nginx/nginx.conf", "/etc/fstab.d", "/etc/bootstrap", "/etc/systemd/system/nginx.service",
    "/var/log/syslog", "/etc/default/sampleapp",
])
def test_ordinary_paths(path: str) -> None:
    assert not boot_critical(path)


def test_analysis_names_each_reason() -> None:
    result = analyse(["/etc/nginx/nginx.conf", "/etc/fstab"], strategy_requires=True)
    assert result.required
    assert result.reasons == ("touches boot-critical /etc/fstab", "the strategy declares reboot_required")


def test_a_validation_that_needed_a_boot_requires_one_on_the_target() -> None:
    assert analyse(["/etc/app.conf"], validated_with_reboot=True).as_dict() == {
        "required": True, "reasons": ["its validation in the troubleshooting VM needed a reboot"]}
    assert not analyse(["/etc/app.conf"]).required
