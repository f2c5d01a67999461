#!/bin/sh
# Start virtlogd and libvirtd when they are not running. There may be no systemd as PID 1 (CI, containers):
# then the daemons are started by hand, as shared/FIELD_NOTES.md measured.
set -eu
URI="${LIBVIRT_URI:-qemu:///system}"

# Without udev, /dev/kvm can be root:root 0600. libvirt then probes QEMU as root (KVM "enabled") but
# checks the cache as libvirt-qemu (KVM "not available now"), declares its capability cache outdated and
# re-probes QEMU on *every* domain define: 32 s per `vm up` measured here instead of ~0.1 s. Debian's
# udev rule gives root:kvm 0660; apply the same. vmrepair itself still uses TCG unless the CPU has
# vmx/svm (orchestrator/hypervisor/accel.py).
if [ -c /dev/kvm ] && getent group kvm >/dev/null 2>&1; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
if virsh -c "$URI" version >/dev/null 2>&1; then
  echo "libvirtd: already answering at $URI"
  exit 0
fi
if [ "$(ps -p 1 -o comm= 2>/dev/null)" = "systemd" ]; then
  systemctl start virtlogd.socket libvirtd.service
else
  pgrep -x virtlogd >/dev/null 2>&1 || virtlogd -d
  pgrep -x libvirtd >/dev/null 2>&1 || libvirtd -d
fi
i=0
while [ $i -lt 100 ]; do
  if virsh -c "$URI" version >/dev/null 2>&1; then
    echo "libvirtd: started, answering at $URI"
    exit 0
  fi
  i=$((i + 1))
  sleep 0.2
done
echo "libvirtd did not answer at $URI within 20 s; see /var/log/libvirt/libvirtd.log" >&2
exit 1
