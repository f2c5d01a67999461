"""Does a fix package need a reboot? Yes when it touches boot-critical state, or when its validation in
the troubleshooting VM needed one to pass.

Boot-critical means: only a boot makes the change take effect, or a mistake in it shows only at the next
boot (fstab and crypttab are read by systemd generators at boot; the kernel, initramfs and bootloader
are only loaded then). Restarting a service is not enough to prove such a fix, so its validation
includes a real reboot of the troubleshooting VM, and the target is verified again after its own reboot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Exact files.
BOOT_CRITICAL_FILES = frozenset({
    "/etc/fstab", "/etc/crypttab", "/etc/default/grub", "/etc/kernel/cmdline", "/etc/kernel-img.conf",
    "/etc/modules", "/etc/initramfs-tools/initramfs.conf", "/etc/mkinitcpio.conf", "/etc/dracut.conf",
    "/etc/machine-id", "/etc/systemd/system.conf",
})
#: Everything below these directories.
BOOT_CRITICAL_DIRS = (
    "/boot", "/efi", "/etc/default/grub.d", "/etc/grub.d", "/etc/kernel", "/etc/initramfs-tools",
    "/etc/dracut.conf.d", "/etc/modprobe.d", "/etc/modules-load.d", "/usr/lib/modules", "/lib/modules",
    "/etc/systemd/system-generators", "/usr/lib/systemd/system-generators", "/lib/systemd/system-generators",
    "/usr/local/lib/systemd/system-generators", "/etc/systemd/system.conf.d", "/etc/cmdline.d",
    "/etc/systemd/system/local-fs.target.wants", "/etc/systemd/system/sysinit.target.wants",
)
#: Mount and swap units take part in the boot transaction just like fstab lines.
BOOT_CRITICAL_SUFFIXES = (".mount", ".automount", ".swap")


@dataclass(frozen=True)
class RebootAnalysis:
    required: bool
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"required": self.required, "reasons": list(self.reasons)}


def boot_critical(path: str) -> bool:
    if path in BOOT_CRITICAL_FILES:
        return True
    if any(path == d or path.startswith(d + "/") for d in BOOT_CRITICAL_DIRS):
        return True
    return path.startswith(("/etc/systemd/system/", "/usr/lib/systemd/system/")) and path.endswith(
        BOOT_CRITICAL_SUFFIXES)


def analyse(paths: Iterable[str], *, validated_with_reboot: bool = False,
            strategy_requires: bool = False) -> RebootAnalysis:
    """Why (if at all) applying a change to ``paths`` needs a reboot of the target."""
    reasons = [f"touches boot-critical {p}" for p in sorted(set(paths)) if boot_critical(p)]
    if strategy_requires:
        reasons.append("the strategy declares reboot_required")
    if validated_with_reboot and not reasons:
        reasons.append("its validation in the troubleshooting VM needed a reboot")
    return RebootAnalysis(bool(reasons), tuple(reasons))
